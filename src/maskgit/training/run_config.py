"""From a training command to its resolved config: a JSON file and/or a preset (or the preset nearest the data),
fitted to the tokenizer and data, with the run length given in steps or epochs, and the plan in words.

Everything here is a pure function of the command, the tokenizer and the data, so re-running the same command
resolves the same config and resumes (a resumed run compares configs field by field).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TypeVar

from ..config import TokenizerConfig, TokenizerTrainingConfig, TransformerTrainingConfig
from ..data_fit import DataInfo
from ..presets import config_with_preset, get_preset, nearest_preset

T = TypeVar("T", TokenizerTrainingConfig, TransformerTrainingConfig)


def _with_preset(config: dict | None, preset: str | None) -> dict | None:
    """The JSON fields of `config` with the `--preset` name added (a file naming another preset is an error)."""
    if preset is None:
        return config
    get_preset(preset)  # unknown names fail here, listing the choices
    config = dict(config or {})
    if config.get("preset", preset) != preset:
        raise ValueError(f"--preset {preset} but the config file names preset {config['preset']!r}; give one")
    return {**config, "preset": preset}


def tokenizer_config(info: DataInfo, *, config: dict | None = None, preset: str | None = None,
                     max_steps: int | None = None, epochs: float | None = None) -> tuple[TokenizerTrainingConfig, list]:
    """The tokenizer training config of a command, and notes to print.

    With neither `config` (parsed JSON, may name a "preset") nor `preset`, the preset nearest the data's channels
    and most common size is used, at the data's size when its downsampling factor divides it.
    """
    data, notes = _with_preset(config, preset), []
    if data is None:
        p = nearest_preset(info.channels, info.image_size)
        data = {"preset": p.name}
        size = info.image_size
        if size != p.tokenizer.image_size and size % p.tokenizer.downsample_factor == 0:
            data["tokenizer"] = {"image_size": size}
        notes.append(f"no --config or --preset: the data are {size}x{size} with {info.channels} channel(s) (most "
                     f"common size); using the nearest preset {p.name} ({p.description})"
                     + (f" at {size}x{size}" if "tokenizer" in data else "") + "; `maskgit presets` lists the others")
    cfg = config_with_preset(TokenizerTrainingConfig, data)
    return rescale_length(cfg, max_steps=max_steps, epochs=epochs, num_images=info.split_size("train")), notes


def transformer_config(info: DataInfo, tokenizer: TokenizerConfig, *, config: dict | None = None,
                       preset: str | None = None, max_steps: int | None = None, epochs: float | None = None,
                       split: str = "trainval") -> tuple[TransformerTrainingConfig, list]:
    """The transformer training config of a command, and notes to print.

    With a preset (named, or the one nearest the tokenizer's images when no config is given), the transformer's
    codebook size and grid come from the tokenizer and its class count from the data, unless the file sets them.
    """
    data, notes = _with_preset(config, preset), []
    if data is None:
        p = nearest_preset(tokenizer.in_channels, tokenizer.image_size)
        data = {"preset": p.name}
        notes.append(f"no --config or --preset: using the preset nearest the tokenizer's {tokenizer.image_size}x"
                     f"{tokenizer.image_size}x{tokenizer.in_channels} images, {p.name} ({p.description})")
    fit = None
    if "preset" in data:
        fit = {"transformer": {"codebook_size": tokenizer.codebook_size, "grid_size": tokenizer.grid_size,
                               "num_classes": len(info.classes)}}
    cfg = config_with_preset(TransformerTrainingConfig, data, fit)
    views = 2 if cfg.hflip else 1  # flipped copies are cached as extra token sequences
    return rescale_length(cfg, max_steps=max_steps, epochs=epochs, num_images=info.split_size(split) * views), notes


def rescale_length(cfg: T, *, max_steps: int | None = None, epochs: float | None = None, num_images: int) -> T:
    """`cfg` with its run length set to `max_steps` (or `epochs` over `num_images`), the warm-up (and the
    tokenizer's discriminator start) scaled by the same factor, so the schedule still ends in its decay."""
    if max_steps is not None and epochs is not None:
        raise ValueError("give --max-steps or --epochs, not both")
    if max_steps is None and epochs is None:
        return cfg
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {max_steps}")
    if epochs is not None:
        if not epochs > 0:
            raise ValueError(f"--epochs must be > 0, got {epochs}")
        max_steps = max(1, math.ceil(epochs * num_images / (cfg.batch_size * cfg.grad_accum_steps)))
    scale = max_steps / cfg.max_steps
    changes = {"max_steps": max_steps, "warmup_steps": round(cfg.warmup_steps * scale)}
    if isinstance(cfg, TokenizerTrainingConfig):
        changes["disc_start_step"] = round(cfg.disc_start_step * scale)
    return replace(cfg, **changes)


def plan_text(cfg: TokenizerTrainingConfig | TransformerTrainingConfig, num_images: int, stop: int) -> str:
    """The run in words: steps, images seen, epochs, warm-up and decay (and an early stop, if any)."""
    per_step = cfg.batch_size * cfg.grad_accum_steps
    seen = stop * per_step
    text = (f"plan: {stop:,} steps x {per_step:,} images (batch_size, the total over all processes"
            f"{' x grad_accum_steps' if cfg.grad_accum_steps > 1 else ''}) = {seen:,} images = "
            f"{seen / max(1, num_images):.2f} epochs of {num_images:,} training images; LR warm-up "
            f"{cfg.warmup_steps:,} steps, then cosine decay to step {cfg.max_steps:,}")
    if stop < cfg.max_steps:
        text += (f"; stopping early at step {stop:,}, before the decay ends (the schedule runs to {cfg.max_steps:,}; "
                 f"set the run length with --max-steps or --epochs to rescale it)")
    return text
