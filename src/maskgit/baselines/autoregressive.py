"""The autoregressive baseline: MaskGIT's transformer run causally in raster order (VQGAN-transformer setting).

The same network (`TransformerConfig.causal = True`) predicts token i from the class token and tokens < i.
Two samplers draw one token per step with temperature and top-k: `naive` recomputes the whole prefix every
step (N(N+1)/2 token-forwards per image, as the paper's baseline); `cached` keeps each layer's keys and values
and runs one token per step (N token-forwards). The post-LayerNorm blocks, the MLP and the learned absolute
positions are all per token, so only attention needs the cache. Random draws follow `decoding.decode`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..decoding import GeneratorArg, gumbel_noise
from ..transformer import MaskGITTransformer

SAMPLERS = ("cached", "naive")
Forward = Callable[..., torch.Tensor]


def start_ids(model: MaskGITTransformer, labels: torch.Tensor | None, batch: int, device) -> torch.Tensor:
    """(B, 1) first input token: the class token, or the mask id for an unconditional model."""
    cfg = model.config
    if cfg.num_classes > 0:
        if labels is None:
            raise ValueError("this transformer is class-conditional: pass labels")
        return (labels + cfg.codebook_size).view(batch, 1)
    return torch.full((batch, 1), cfg.mask_id, dtype=torch.long, device=device)


def prefix_logits(model: MaskGITTransformer, ids: torch.Tensor) -> torch.Tensor:
    """Naive step: (B, L) input ids [start, t0 .. t_{L-2}] -> (B, K) logits for token L-1 (whole prefix rerun)."""
    x = model.hidden(ids)  # (B, L, D); the causal attention masks future positions
    return model.logits(x[:, -1])  # only the last position is sampled: the head runs on it alone


def cached_logits(model: MaskGITTransformer, ids: torch.Tensor, pos: int, cache: list) -> torch.Tensor:
    """KV-cached step: (B, 1) input id at position `pos` -> (B, K) logits; appends keys/values to `cache`.

    `cache` holds one (keys, values) pair of (B, heads, L, head_dim) buffers per layer, allocated on first use.
    """
    def keys_values(i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(cache) <= i:  # buffers for the whole sequence, in the dtype the network computes k and v in
            shape = (*k.shape[:2], model.config.seq_len, k.shape[-1])
            cache.append((k.new_empty(shape), v.new_empty(shape)))
        keys, values = cache[i]
        keys[:, :, pos], values[:, :, pos] = k[:, :, 0], v[:, :, 0]
        return keys[:, :, : pos + 1], values[:, :, : pos + 1]  # one query over every position <= pos: no mask

    x = model.hidden(ids, pos, keys_values)  # (B, 1, D): the MLP and LayerNorms are per token
    return model.logits(x[:, 0])


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None, generator: GeneratorArg) -> torch.Tensor:
    """(B, K) logits -> (B,) token ids: Gumbel-max sampling from softmax(logits / temperature) over the top k."""
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return (logits + gumbel_noise(logits.shape, generator, logits.device)).argmax(-1)


def _check_args(model: MaskGITTransformer, sampler: str, temperature: float, top_k: int | None) -> None:
    if not model.config.causal:
        raise ValueError("autoregressive sampling needs a causal transformer (TransformerConfig.causal = true); "
                         "a bidirectional MaskGIT model samples by iterative decoding (generate)")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")


@torch.no_grad()
def sample_autoregressive(
    model: MaskGITTransformer,
    labels: torch.Tensor | None,
    *,
    num_samples: int | None = None,
    sampler: str = "cached",
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: GeneratorArg = None,
    return_history: bool = False,
    forward: Forward | None = None,
):
    """Sample (B, N) tokens in raster order, one token per step.

    Args:
        model: a causal `MaskGITTransformer` (in eval mode).
        labels: (B,) class indices, or None for an unconditional model (then pass num_samples).
        sampler: "cached" (keys/values kept per layer) or "naive" (the whole prefix recomputed each step).
        temperature: divides the logits; top_k: sample among the k most likely codes only (None = all).
        generator: as in `decode`: one generator, or one per sample.
        return_history: also return (B, grid_size, N) tokens after each completed row (mask id after it).
        forward: runs the network, `forward(fn, *args)`; e.g. under autocast (`fastpath`). Default: fn(*args).
    Returns:
        (B, N) long tokens; with return_history, a tuple (tokens, history).
    """
    _check_args(model, sampler, temperature, top_k)
    cfg = model.config
    batch = labels.shape[0] if labels is not None else num_samples
    if not batch:
        raise ValueError("nothing to sample: pass labels or num_samples")
    device = next(model.parameters()).device
    forward = forward or (lambda fn, *args: fn(*args))
    ids = torch.cat([start_ids(model, labels, batch, device),
                     torch.full((batch, cfg.num_tokens), cfg.mask_id, dtype=torch.long, device=device)], dim=1)
    cache: list = []
    history = []
    for i in range(cfg.num_tokens):  # ids[:, i] is the input at position i; token i goes to ids[:, i + 1]
        if sampler == "naive":
            logits = forward(prefix_logits, model, ids[:, : i + 1])  # (B, K)
        else:
            logits = forward(cached_logits, model, ids[:, i : i + 1], i, cache)
        ids[:, i + 1] = sample_next(logits, temperature, top_k, generator)
        if return_history and (i + 1) % cfg.grid_size == 0:
            history.append(ids[:, 1:].clone())
    tokens = ids[:, 1:]
    if return_history:
        return tokens, torch.stack(history, dim=1)
    return tokens
