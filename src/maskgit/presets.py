"""Named model sizes: tokenizer + transformer architectures and the training settings that suit them.

`maskgit presets` lists them; `--preset NAME` or `"preset": NAME` in a JSON config starts from one (fields
given beside it override it); with neither, `nearest_preset` picks one from the data's channels and size.
The per-network tables (`TOKENIZER_PRESETS`, `TRANSFORMER_PRESETS`) live here too; `config.py` holds only the
config classes and never imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from .config import (
    DiscriminatorConfig,
    TokenizerConfig,
    TokenizerTrainingConfig,
    TransformerConfig,
    TransformerTrainingConfig,
)
from .typed_config import from_dict, to_dict

T = TypeVar("T")

TOKENIZER_PRESETS: dict[str, TokenizerConfig] = {
    # Test-sized: 8x8 grayscale (scikit-learn digits), factor 2 -> 4x4 grid.
    "tiny": TokenizerConfig(in_channels=1, image_size=8, base_channels=16, channel_mult=(1, 2),
                            num_res_blocks=1, embed_dim=8, codebook_size=16, norm_groups=8),
    # Test-sized RGB: the tiny network on 8x8 RGB images.
    "tiny-rgb": TokenizerConfig(in_channels=3, image_size=8, base_channels=16, channel_mult=(1, 2),
                                num_res_blocks=1, embed_dim=8, codebook_size=16, norm_groups=8),
    # 28x28 grayscale (Fashion-MNIST), factor 4 -> 7x7 grid: the architecture of the bundled tokenizer
    # (configs/tokenizer-fashion-mnist.json; results/tokenizer-fashion-mnist.json).
    "fashion-mnist": TokenizerConfig(in_channels=1, image_size=28, base_channels=32, channel_mult=(1, 2, 4),
                                     num_res_blocks=2, embed_dim=64, codebook_size=512, l2_normalize=True,
                                     norm_groups=16),
    # 32x32 grayscale, factor 4 -> 8x8 grid.
    "gray-32": TokenizerConfig(in_channels=1, image_size=32, base_channels=32, channel_mult=(1, 2, 4),
                               num_res_blocks=2, embed_dim=64, codebook_size=512, l2_normalize=True,
                               norm_groups=16),
    # 32x32 RGB (CIFAR-sized), factor 4 -> 8x8 grid; the gray-32 network with three input channels.
    "rgb-32": TokenizerConfig(in_channels=3, image_size=32, base_channels=32, channel_mult=(1, 2, 4),
                              num_res_blocks=2, embed_dim=64, codebook_size=512, l2_normalize=True,
                              norm_groups=16),
    # 64x64 RGB, factor 8 -> 8x8 grid.
    "rgb-64": TokenizerConfig(in_channels=3, image_size=64, base_channels=64, channel_mult=(1, 1, 2, 2),
                              num_res_blocks=2, mid_attention=True, embed_dim=128, codebook_size=1024),
    # Official ImageNet VQGAN layout (SPEC 5b): factor 16, 1024 codes of 256 dims.
    "imagenet": TokenizerConfig(in_channels=3, image_size=256, base_channels=128, channel_mult=(1, 1, 2, 2, 4),
                                num_res_blocks=2, embed_dim=256, codebook_size=1024, official_shortcut=True,
                                downsample="avgpool", signed_pixels=False),
}

TRANSFORMER_PRESETS: dict[str, TransformerConfig] = {
    "tiny": TransformerConfig(codebook_size=16, num_classes=10, grid_size=4, hidden_size=32, num_layers=2,
                              num_heads=2, intermediate_size=64),
    "small": TransformerConfig(),
    "imagenet-256": TransformerConfig(codebook_size=1024, num_classes=1000, grid_size=16, hidden_size=768,
                                      num_layers=24, num_heads=16, intermediate_size=3072, null_class=False),
    "imagenet-512": TransformerConfig(codebook_size=1024, num_classes=1000, grid_size=32, hidden_size=768,
                                      num_layers=24, num_heads=16, intermediate_size=3072, null_class=False),
}


def preset(table: dict[str, T], name: str) -> T:
    """Look a preset up by name, with an error that lists the choices."""
    if name not in table:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(table)}")
    return table[name]


@dataclass(frozen=True)
class Preset:
    """A model size: both networks, plus the training fields (beyond the networks) each stage starts from."""

    name: str
    description: str
    tokenizer: TokenizerConfig
    transformer: TransformerConfig
    tokenizer_training: dict[str, Any] = field(default_factory=dict)
    transformer_training: dict[str, Any] = field(default_factory=dict)

    @property
    def image(self) -> str:
        return f"{self.tokenizer.image_size}x{self.tokenizer.image_size}x{self.tokenizer.in_channels}"


# Small presets train on a CPU: the settings of the bundled Fashion-MNIST model (configs/*-fashion-mnist.json)
# without bf16. The ImageNet presets keep the dataclass defaults (the official optimiser settings).
_SMOKE_TOKENIZER = dict(batch_size=16, max_steps=20, lr=1e-3, warmup_steps=5, init_batches=2, kmeans_iters=3,
                        dead_code_threshold=0.5, restart_every=5, num_threads=1, log_every=1, sample_every=10,
                        checkpoint_every=2)
_SMOKE_TRANSFORMER = dict(sampling={"steps": 4}, batch_size=16, max_steps=6, lr=1e-3, warmup_steps=2, ema_decay=0.9,
                          log_every=1, sample_every=0, checkpoint_every=2)
_SMALL_TOKENIZER = dict(batch_size=64, max_steps=3200, lr=1e-3, betas=(0.9, 0.99), warmup_steps=100,
                        min_lr_ratio=0.02, init_batches=16, kmeans_iters=10, dead_code_threshold=1.0,
                        restart_every=25, restart_until=0.85, log_every=25, sample_every=300, checkpoint_every=100)
_SMALL_TRANSFORMER = dict(sampling={"steps": 8}, batch_size=128, max_steps=2200, lr=6e-4, warmup_steps=200,
                          min_lr_ratio=0.05, ema_decay=0.995, log_every=25, sample_every=500, checkpoint_every=250)
_SMALL = TRANSFORMER_PRESETS["small"]

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("tiny", "test-sized, 8x8 grayscale (scikit-learn digits)", TOKENIZER_PRESETS["tiny"],
           TRANSFORMER_PRESETS["tiny"], _SMOKE_TOKENIZER, _SMOKE_TRANSFORMER),
    Preset("tiny-rgb", "test-sized, 8x8 RGB", TOKENIZER_PRESETS["tiny-rgb"], TRANSFORMER_PRESETS["tiny"],
           _SMOKE_TOKENIZER, _SMOKE_TRANSFORMER),
    Preset("fashion-mnist", "28x28 grayscale; the bundled model's networks", TOKENIZER_PRESETS["fashion-mnist"],
           _SMALL, _SMALL_TOKENIZER, _SMALL_TRANSFORMER),
    Preset("gray-32", "32x32 grayscale", TOKENIZER_PRESETS["gray-32"], replace(_SMALL, grid_size=8),
           _SMALL_TOKENIZER, _SMALL_TRANSFORMER),
    Preset("rgb-32", "32x32 RGB (CIFAR-sized)", TOKENIZER_PRESETS["rgb-32"], replace(_SMALL, grid_size=8),
           _SMALL_TOKENIZER, _SMALL_TRANSFORMER),
    Preset("rgb-64", "64x64 RGB", TOKENIZER_PRESETS["rgb-64"], replace(_SMALL, grid_size=8, codebook_size=1024),
           dict(_SMALL_TOKENIZER, batch_size=32), dict(_SMALL_TRANSFORMER, max_steps=10_000)),
    Preset("imagenet-256", "official ImageNet 256x256 networks (GPU-sized)", TOKENIZER_PRESETS["imagenet"],
           TRANSFORMER_PRESETS["imagenet-256"]),
    Preset("imagenet-512", "official ImageNet 512x512 networks (GPU-sized)",
           replace(TOKENIZER_PRESETS["imagenet"], image_size=512), TRANSFORMER_PRESETS["imagenet-512"]),
)}


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a KeyError listing the choices."""
    return preset(PRESETS, name)


def nearest_preset(channels: int, image_size: int) -> Preset:
    """The preset for images of `channels` closest in size to `image_size` (log scale; ties go to the larger)."""
    same = [p for p in PRESETS.values() if p.tokenizer.in_channels == channels] or list(PRESETS.values())
    return min(same, key=lambda p: (abs(math.log2(p.tokenizer.image_size / image_size)), -p.tokenizer.image_size))


def training_config(cls: type[T], preset_name: str) -> T:
    """The `TokenizerTrainingConfig` or `TransformerTrainingConfig` a preset starts from."""
    return from_dict(cls, _preset_fields(cls, get_preset(preset_name)))


def _preset_fields(cls: type, p: Preset) -> dict:
    if cls is TokenizerTrainingConfig:
        disc = DiscriminatorConfig(in_channels=p.tokenizer.in_channels, image_size=p.tokenizer.image_size)
        return {**p.tokenizer_training, "tokenizer": to_dict(p.tokenizer), "discriminator": to_dict(disc)}
    if cls is TransformerTrainingConfig:
        return {**p.transformer_training, "transformer": to_dict(p.transformer)}
    raise TypeError(f"presets make TokenizerTrainingConfig or TransformerTrainingConfig, not {cls.__name__}")


def merge(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` applied; nested objects are merged field by field."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def config_with_preset(cls: type[T], data: dict, fit: dict | None = None) -> T:
    """A training config from JSON `data`: with a "preset" key, the preset's config with the other fields of
    `data` applied on top. `fit` (e.g. the tokenizer's grid size) goes between the preset and `data`."""
    data = dict(data)
    name = data.pop("preset", None)
    if name is None:
        return from_dict(cls, merge(fit or {}, data) if fit else data)
    if not isinstance(name, str):
        raise ValueError(f"preset must be a string naming a preset, got {name!r}; choose one of {sorted(PRESETS)}")
    base = merge(_preset_fields(cls, get_preset(name)), fit or {})
    if cls is TokenizerTrainingConfig and isinstance(data.get("tokenizer"), dict):
        shape = {k: data["tokenizer"][k] for k in ("in_channels", "image_size") if k in data["tokenizer"]}
        base["discriminator"] = merge(base["discriminator"], shape)  # the discriminator sees the same images
    return from_dict(cls, merge(base, data))


def parameter_counts(p: Preset) -> tuple[int, int]:
    """(tokenizer, transformer) parameter counts, from networks built on the meta device (no memory)."""
    import torch

    from .transformer import MaskGITTransformer
    from .vq import VQGAN

    with torch.device("meta"):
        return (sum(t.numel() for t in VQGAN(p.tokenizer).parameters()),
                sum(t.numel() for t in MaskGITTransformer(p.transformer).parameters()))


def preset_rows() -> list[dict]:
    """One row per preset for `maskgit presets`: name, image size, token grid, codebook, parameter counts."""
    rows = []
    for p in PRESETS.values():
        tok, tf = parameter_counts(p)
        rows.append({"name": p.name, "image": p.image, "grid": f"{p.tokenizer.grid_size}x{p.tokenizer.grid_size}",
                     "codebook": p.tokenizer.codebook_size, "tokenizer_params": tok, "transformer_params": tf,
                     "classes": p.transformer.num_classes, "description": p.description})
    return rows
