"""The bidirectional transformer of MaskGIT, in the official BERT layout (SPEC section 5).

Post-LayerNorm blocks (epsilon 1e-12), tanh-GELU, learned absolute positions, and an MLM head
whose output projection is tied to the word embedding. Submodule names follow the official
Flax modules (Embed_0, TransformerLayer_i, MlmLayer_0) so that official weights map one to one.
The network returns logits only; masking, loss and sampling live elsewhere. `hidden` also runs a subset
of positions against keys/values supplied by a callback (the KV-cached autoregressive baseline and cached
decoding passes); `maskgit.fastpath.inference_copy` sets the reduced-precision kernels (fused q/k/v, the
attention implementation, the GELU) on a copy of the network.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TransformerConfig

# (layer index, keys, values of the rows being computed) -> keys, values to attend to; see `MaskGITTransformer.hidden`
KeysValues = Callable[[int, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
ATTENTION_KERNELS = ("sdpa", "matmul")


def gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")  # JAX's default GELU


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: str = "sdpa", *, causal: bool = False,
              dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v over (B, heads, L, head_dim) tensors.

    `sdpa` is PyTorch's fused kernel (the flash kernel on CPU); `matmul` two batched matmuls around a softmax,
    which on CPUs with native bf16 beats the flash kernel at short sequences and small head dims (chosen by
    measurement in `maskgit.fastpath`). Both compute the softmax statistics in float32.
    """
    if kernel == "sdpa" or causal or dropout_p:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=causal)
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # (B, heads, Lq, Lk)
    return scores.softmax(-1) @ v


class Embed(nn.Module):
    """Word + position embeddings, LayerNorm, dropout."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.seq_len, config.hidden_size)
        self.embeddings_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor | int | None = None) -> torch.Tensor:
        """(B, M) ids at `positions` ((B, M) indices, one index, or None: 0 .. M-1) -> (B, M, D)."""
        pos = self.position_embeddings.weight[: ids.shape[1]] if positions is None else \
            self.position_embeddings.weight[positions]
        return self.dropout(self.embeddings_ln(self.word_embeddings(ids) + pos))


class Attention(nn.Module):
    """Multi-head self-attention with biases, then dropout, residual add and LayerNorm."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        d = config.hidden_size
        self.num_heads = config.num_heads
        self.query, self.key, self.value, self.out = (nn.Linear(d, d) for _ in range(4))
        self.attention_output_ln = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.causal = config.causal  # the autoregressive baseline: position i attends to positions <= i
        self.dropout_p = config.dropout
        self.dropout = nn.Dropout(config.dropout)
        self.fused_qkv: nn.Module | None = None  # D -> 3D: q, k and v in one matmul (set on inference copies)
        self.kernel = "sdpa"  # see `attention`

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, D) -> queries, keys, values, each (B, heads, L, head_dim)."""
        b, n, d = x.shape
        if self.fused_qkv is not None:
            return self.fused_qkv(x).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        return tuple(proj(x).view(b, n, self.num_heads, -1).transpose(1, 2)
                     for proj in (self.query, self.key, self.value))

    def forward(self, x: torch.Tensor, keys_values: Callable | None = None) -> torch.Tensor:
        """`keys_values(k, v) -> (k, v)` swaps in the keys and values to attend to (cached passes)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x)
        if keys_values is not None:
            k, v = keys_values(k, v)
        p = self.dropout_p if self.training else 0.0
        # (B, heads, N, head_dim); a subset of queries over supplied keys needs no causal mask (see `hidden`)
        y = attention(q, k, v, self.kernel, causal=self.causal and keys_values is None, dropout_p=p)
        y = self.out(y.transpose(1, 2).reshape(b, n, d))
        return self.attention_output_ln(x + self.dropout(y))


class Mlp(nn.Module):
    """Dense -> GELU -> dense, then dropout, residual add and LayerNorm."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.intermediate_output = nn.Linear(config.hidden_size, config.intermediate_size)
        self.layer_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.layer_output_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.activation: Callable[[torch.Tensor], torch.Tensor] = gelu  # a faster form of the same GELU may be set

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer_output(self.activation(self.intermediate_output(x)))
        return self.layer_output_ln(x + self.dropout(y))


class TransformerLayer(nn.Module):
    """One post-LN BERT block."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.Attention_0 = Attention(config)
        self.Mlp_0 = Mlp(config)

    def forward(self, x: torch.Tensor, keys_values: Callable | None = None) -> torch.Tensor:
        return self.Mlp_0(self.Attention_0(x, keys_values))


class MlmLayer(nn.Module):
    """Dense -> GELU -> LayerNorm; logits come from the tied word embedding plus a bias."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.mlm_dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.mlm_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.activation: Callable[[torch.Tensor], torch.Tensor] = gelu

    def forward(self, x: torch.Tensor, embedding: torch.Tensor, num_outputs: int) -> torch.Tensor:
        h = self.mlm_ln(self.activation(self.mlm_dense(x)))
        # Only the first num_outputs rows (the codebook) can be sampled; skip the rest.
        return F.linear(h, embedding[:num_outputs], self.mlm_bias[:num_outputs])


class MaskGITTransformer(nn.Module):
    """Bidirectional transformer: (tokens, labels) -> logits over the codebook at every grid position.

    With `config.causal` the same network is the autoregressive baseline: the input is shifted right
    behind the class token ([class, t0 .. t_{N-2}]) and the logits at position i predict token i.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.Embed_0 = Embed(config)
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.num_layers))
        self.MlmLayer_0 = MlmLayer(config)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor | None = None,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            tokens: (B, N) long, codebook ids or `config.mask_id`, raster order.
            labels: (B,) long class indices in [0, num_classes) or `config.null_label`;
                None for an unconditional model (num_classes == 0).
            rows: optional (B, N) bool: compute the MLM head only at these positions (a decoder needs
                logits only where tokens are still unknown).
        Returns:
            (B, N, codebook_size) logits; for a causal model, logits[:, i] depend on tokens[:, :i] only.
            With `rows`: (M, codebook_size) logits at the M selected positions, in row-major order.
        """
        cfg = self.config
        ids = self.input_ids(tokens, labels)
        x = self.hidden(ids)[:, ids.shape[1] - cfg.num_tokens :]  # (B, N, D): the image tokens (causal: all)
        if rows is not None:
            if rows.shape != tokens.shape or rows.dtype != torch.bool:
                raise ValueError(f"rows must be a {tuple(tokens.shape)} bool tensor, got {tuple(rows.shape)} "
                                 f"{rows.dtype}")
            x = x[rows]  # (M, D)
        return self.logits(x)

    def input_ids(self, tokens: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """(B, N) tokens (+ labels) -> (B, L) input ids: [class token] + tokens (causal: shifted right)."""
        cfg = self.config
        if tokens.shape[1] != cfg.num_tokens:
            raise ValueError(f"expected {cfg.num_tokens} tokens per sample, got {tokens.shape[1]}")
        if cfg.num_classes > 0:
            if labels is None:
                raise ValueError("this transformer is class-conditional: pass labels")
            ids = torch.cat([(labels + cfg.codebook_size).unsqueeze(1), tokens], dim=1)  # class token first
        else:
            ids = tokens
        if cfg.causal:  # next-token prediction: drop the last token, start from the class (or mask) token
            ids = ids[:, :-1] if cfg.num_classes > 0 else torch.cat([torch.full_like(ids[:, :1], cfg.mask_id),
                                                                    ids[:, :-1]], dim=1)
        return ids

    def hidden(self, ids: torch.Tensor, positions: torch.Tensor | int | None = None,
               keys_values: KeysValues | None = None) -> torch.Tensor:
        """Final hidden states of input `ids` (B, M) at `positions` (None: the whole sequence 0 .. M-1).

        With `keys_values`, layer i attends to the keys/values `keys_values(i, k, v)` returns for the fresh
        (B, heads, M, head_dim) keys and values of these rows: the rest of the sequence comes from a cache.
        Returns:
            (B, M, D).
        """
        x = self.Embed_0(ids, positions)
        for i, layer in enumerate(self.layers):
            x = layer(x, None if keys_values is None else lambda k, v, i=i: keys_values(i, k, v))
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) final hidden states -> (..., codebook_size) logits (the tied MLM head)."""
        return self.MlmLayer_0(x, self.Embed_0.word_embeddings.weight, self.config.codebook_size)
