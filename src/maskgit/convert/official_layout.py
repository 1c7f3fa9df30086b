"""The official MaskGIT array layout as a table: which official array (Flax path) is which parameter of ours,
under which layout rule (transposes, attention heads split or joined), and strict loading through that table.

`official.py` reads the checkpoints, infers the configs and writes the converted model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..config import TokenizerConfig, TransformerConfig

Shape = tuple[int, ...]


# ------------------------------------------------------------------------------------------- layout rules
@dataclass(frozen=True)
class Layout:
    """How one official array becomes one of our tensors (and which official shape fits ours)."""

    name: str
    convert: Callable[[np.ndarray], np.ndarray]  # official array -> ours
    official_shape: Callable[[Shape, int], Shape]  # (our shape, attention heads) -> the official shape


def _split_heads(width: int, heads: int) -> Shape:
    return (heads, width // heads)


COPY = Layout("copy", lambda a: a, lambda s, h: s)
# flax Dense kernel [in, out] -> torch Linear weight [out, in]
DENSE = Layout("dense", lambda a: a.T, lambda s, h: s[::-1])
# flax Conv kernel HWIO -> torch Conv2d weight OIHW
CONV = Layout("conv", lambda a: a.transpose(3, 2, 0, 1), lambda s, h: (s[2], s[3], s[1], s[0]))
# attention query/key/value kernel [hidden, heads, head_dim] -> Linear weight [heads * head_dim, hidden]
HEADS_IN = Layout("heads_in", lambda a: a.reshape(a.shape[0], -1).T, lambda s, h: (s[1], *_split_heads(s[0], h)))
# attention query/key/value bias [heads, head_dim] -> [heads * head_dim]
HEADS_BIAS = Layout("heads_bias", lambda a: a.reshape(-1), lambda s, h: _split_heads(s[0], h))
# attention output kernel [heads, head_dim, hidden] -> Linear weight [hidden, heads * head_dim]
HEADS_OUT = Layout("heads_out", lambda a: a.reshape(-1, a.shape[-1]).T, lambda s, h: (*_split_heads(s[1], h), s[0]))

# Module kind -> (official leaf, our leaf, layout) for each of its parameters. A leaf that our module lacks
# (a conv without bias) is simply not expected, so an official array there is reported as extra.
LEAVES: dict[str, tuple[tuple[str, str, Layout], ...]] = {
    "embed": (("embedding", "weight", COPY),),
    "dense": (("kernel", "weight", DENSE), ("bias", "bias", COPY)),
    "heads_in": (("kernel", "weight", HEADS_IN), ("bias", "bias", HEADS_BIAS)),
    "heads_out": (("kernel", "weight", HEADS_OUT), ("bias", "bias", COPY)),
    "norm": (("scale", "weight", COPY), ("bias", "bias", COPY)),  # LayerNorm and GroupNorm
    "conv": (("kernel", "weight", CONV), ("bias", "bias", COPY)),
    # The MLM head's output projection is tied to the word embedding (no array of its own); only its bias
    # is stored, in a module of its own: MlmLayer_0/mlm_bias/bias -> MlmLayer_0.mlm_bias.
    "mlm_bias": (("bias", "mlm_bias", COPY),),
    "codebook": (("codebook", "codebook", COPY),),  # quantizer/codebook [K, D], as ours
}
# Token ids need no conversion: the official class token is label + codebook_size (ours too), and the
# official mask id -1 wraps to the last embedding row, which is our `mask_id` (vocab_size - 1) because the
# official vocabulary has no null class (codebook + classes + mask = 2025 rows for ImageNet).


def transformer_rows(config: TransformerConfig) -> list[tuple[str, str, str]]:
    """(official module path, our module path, kind) for every module of the official transformer."""
    rows = [("Embed_0/word_embeddings", "Embed_0.word_embeddings", "embed"),
            ("Embed_0/position_embeddings", "Embed_0.position_embeddings", "embed"),
            ("Embed_0/embeddings_ln", "Embed_0.embeddings_ln", "norm")]
    for i in range(config.num_layers):
        attention, mlp = f"TransformerLayer_{i}/Attention_0", f"TransformerLayer_{i}/Mlp_0"
        ours = f"layers.{i}"
        rows += [(f"{attention}/self_attention/{p}", f"{ours}.Attention_0.{p}", "heads_in")
                 for p in ("query", "key", "value")]
        rows += [(f"{attention}/self_attention/out", f"{ours}.Attention_0.out", "heads_out"),
                 (f"{attention}/attention_output_ln", f"{ours}.Attention_0.attention_output_ln", "norm"),
                 (f"{mlp}/intermediate_output", f"{ours}.Mlp_0.intermediate_output", "dense"),
                 (f"{mlp}/layer_output", f"{ours}.Mlp_0.layer_output", "dense"),
                 (f"{mlp}/layer_output_ln", f"{ours}.Mlp_0.layer_output_ln", "norm")]
    return rows + [("MlmLayer_0/mlm_dense", "MlmLayer_0.mlm_dense", "dense"),
                   ("MlmLayer_0/mlm_ln", "MlmLayer_0.mlm_ln", "norm"),
                   ("MlmLayer_0/mlm_bias", "MlmLayer_0", "mlm_bias")]


def tokenizer_rows(config: TokenizerConfig) -> list[tuple[str, str, str]]:
    """(official module path, our module path, kind) for every module of the official VQGAN.

    Residual blocks are numbered ResBlock_i in call order in both encoder and decoder (ours: res_blocks.i);
    a block's Conv_2 is the 1x1 shortcut of a block that changes width. Plain convolutions are numbered in
    call order: encoder Conv_0 (in), Conv_1 (out, 1x1); decoder Conv_0 (in), Conv_1 .. Conv_{L-1} (after each
    nearest upsampling, top-down), Conv_L (out), for L levels.
    """
    levels = len(config.channel_mult)
    rows = [("encoder/Conv_0", "encoder.conv_in", "conv")]
    for part, widths in (("encoder", _encoder_block_widths(config)), ("decoder", _decoder_block_widths(config))):
        for i, (width_in, width_out) in enumerate(widths):
            block, ours = f"{part}/ResBlock_{i}", f"{part}.res_blocks.{i}"
            rows += [(f"{block}/GroupNorm_0", f"{ours}.norm_0", "norm"), (f"{block}/Conv_0", f"{ours}.conv_0", "conv"),
                     (f"{block}/GroupNorm_1", f"{ours}.norm_1", "norm"), (f"{block}/Conv_1", f"{ours}.conv_1", "conv")]
            if width_in != width_out:
                rows.append((f"{block}/Conv_2", f"{ours}.shortcut", "conv"))
    rows += [("encoder/GroupNorm_0", "encoder.norm_out", "norm"), ("encoder/Conv_1", "encoder.conv_out", "conv"),
             ("decoder/Conv_0", "decoder.conv_in", "conv")]
    rows += [(f"decoder/Conv_{j + 1}", f"decoder.upsamples.{j}.conv", "conv") for j in range(levels - 1)]
    return rows + [("decoder/GroupNorm_0", "decoder.norm_out", "norm"),
                   (f"decoder/Conv_{levels}", "decoder.conv_out", "conv"),
                   ("quantizer", "quantizer", "codebook")]


def _encoder_block_widths(config: TokenizerConfig) -> list[tuple[int, int]]:
    widths = [config.base_channels * m for m in config.channel_mult]
    out, prev = [], config.base_channels
    for width in widths + [widths[-1]]:  # each level, then the bottom blocks
        for _ in range(config.num_res_blocks):
            out.append((prev, width))
            prev = width
    return out


def _decoder_block_widths(config: TokenizerConfig) -> list[tuple[int, int]]:
    widths = [config.base_channels * m for m in config.channel_mult]
    out, prev = [], widths[-1]
    for width in [widths[-1]] + widths[::-1]:  # the bottom blocks, then the levels top-down
        for _ in range(config.num_res_blocks):
            out.append((prev, width))
            prev = width
    return out


# ------------------------------------------------------------------------------------------- strict loading
def _short(items: list[str], limit: int = 4) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def load_arrays_into(module: torch.nn.Module, arrays: dict[str, np.ndarray], rows: list[tuple[str, str, str]],
                     *, heads: int = 1, source: str = "checkpoint") -> None:
    """Fill every parameter of `module` from official `arrays` through `rows`, strictly.

    Raises a one-line ValueError naming the official paths that are missing, extra or mis-shaped.
    """
    state = module.state_dict()
    expected: dict[str, tuple[str, Layout]] = {}  # official path -> (our name, layout)
    for official, ours, kind in rows:
        for official_leaf, our_leaf, layout in LEAVES[kind]:
            if f"{ours}.{our_leaf}" in state:
                expected[f"{official}/{official_leaf}"] = (f"{ours}.{our_leaf}", layout)
    uncovered = sorted(set(state) - {name for name, _ in expected.values()})
    if uncovered:  # a config outside the official layout (checked earlier), or a bug in the table
        raise ValueError(f"{source}: our parameters {_short(uncovered)} have no official counterpart")
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    misshaped = []
    for path in sorted(set(expected) & set(arrays)):
        name, layout = expected[path]
        want = tuple(layout.official_shape(tuple(state[name].shape), heads))
        if tuple(arrays[path].shape) != want:
            misshaped.append(f"{path} {list(arrays[path].shape)} (expected {list(want)})")
    problems = [f"{label}: {_short(items)}" for label, items in
                (("missing arrays", missing), ("unexpected arrays", extra), ("mis-shaped arrays", misshaped)) if items]
    if problems:
        raise ValueError(f"{source} does not fit the official layout: " + "; ".join(problems))
    converted = {name: torch.from_numpy(np.ascontiguousarray(layout.convert(arrays[path]), dtype=np.float32))
                 for path, (name, layout) in expected.items()}
    module.load_state_dict(converted, strict=True)
