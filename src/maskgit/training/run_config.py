"""From a training command to its resolved config: a JSON file and/or a preset (or the preset nearest the data),
fitted to the tokenizer and data, with the run length given in steps or epochs, and the plan in words.

Everything here is a pure function of the command, the tokenizer and the data, so re-running the same command
resolves the same config and resumes (a resumed run compares configs field by field).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import TypeVar

from ..config import (
    ModelConfig,
    TokenizerConfig,
    TokenizerTrainingConfig,
    TransformerTrainingConfig,
    from_dict,
    to_dict,
)
from ..data_fit import DataInfo
from ..presets import config_with_preset, get_preset, merge, nearest_preset

T = TypeVar("T", TokenizerTrainingConfig, TransformerTrainingConfig)


def _with_preset(config: dict | None, preset: str | None) -> dict | None:
    """The JSON fields of `config` with the `--preset` name added (a file naming another preset is an error)."""
    if preset is None:
        return config
    get_preset(preset)  # unknown names fail here, listing the choices
    config = dict(config or {})
    if config.get("preset") not in (None, preset):
        raise ValueError(f"--preset {preset} but the config file names preset {config['preset']!r}; give one")
    return {**config, "preset": preset}


def _check_stage(config: dict | None, other: str, command: str) -> None:
    """Refuse the other training command's config (it has the `other` network's section) with a clear word."""
    if config and other in config:
        mine = "`maskgit train` config" if other == "transformer" else "train-tokenizer config"
        owner = "maskgit train" if other == "transformer" else "maskgit train-tokenizer"
        raise ValueError(f"this is a {mine} (it has a {other} section): give it to `{owner}`; `maskgit {command}` "
                         f"takes a {'Tokenizer' if other == 'transformer' else 'Transformer'}TrainingConfig (see "
                         f"configs/)")


def _resolve(config: dict | None, preset: str | None, derived: dict, why: str) -> tuple[dict, str]:
    """The JSON a command resolves, and where it started: the file's fields on top of the preset named (in the
    file or by --preset), else on top of `derived` (what the data, or --init-from, give; `why` says which)."""
    named = _with_preset(config, preset) or {}
    if named.get("preset") is not None:
        return named, f"preset {named['preset']} ({'--preset' if preset else 'named in the config'})"
    return merge(derived, {k: v for k, v in named.items() if k != "preset"}), why


def _plan_note(config: dict | None, start: str) -> str:
    """Where the config started and which fields the file set (dotted paths)."""
    if config is None:
        return f"no --config: starting from {start}"
    fields = ", ".join(sorted(_field_paths({k: v for k, v in config.items() if k != "preset"}))) or "none"
    return f"config: {start}; fields from the file: {fields}"


def _field_paths(data: dict, prefix: str = "") -> list[str]:
    return [path for key, value in data.items()
            for path in (_field_paths(value, f"{prefix}{key}.") if isinstance(value, dict) and value
                         else [f"{prefix}{key}"])]


def _init_network(init_from: str | None, cls: type, file_name: str, section: str | None = None):
    """The network config (`cls`) in `init_from`'s `file_name` (a bundled name or a directory), or None when there
    is none to read (the trainer then says what is wrong with `init_from`)."""
    if init_from is None:
        return None
    from ..bundled import bundled_or_path

    try:
        data = json.loads((bundled_or_path(init_from, file_name) / file_name).read_text())
        return from_dict(cls, data[section] if section else data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _names_preset(config: dict | None, preset: str | None) -> bool:
    return preset is not None or (config or {}).get("preset") is not None


def tokenizer_config(info: DataInfo, *, config: dict | None = None, preset: str | None = None,
                     max_steps: int | None = None, epochs: float | None = None,
                     init_from: str | None = None) -> tuple[TokenizerTrainingConfig, list]:
    """The tokenizer training config of a command, and notes to print.

    The fields of `config` (parsed JSON) go on top of the preset it (or `preset`) names. Naming none, they go on
    top of the `init_from` tokenizer's network (with the training settings of the preset nearest its images), else
    of the preset nearest the data's channels and most common size, at the data's size when its downsampling
    factor divides it: what a command without a config starts from.
    """
    _check_stage(config, "transformer", "train-tokenizer")
    size, p = info.image_size, nearest_preset(info.channels, info.image_size)
    at_size = size != p.tokenizer.image_size and size % p.tokenizer.downsample_factor == 0
    derived = {"preset": p.name, **({"tokenizer": {"image_size": size}} if at_size else {})}
    why = (f"preset {p.name} (the nearest to the data's {size}x{size} images with {info.channels} channel(s), as "
           f"without a config" + (f"; at {size}x{size})" if at_size else ")"))
    init = None if _names_preset(config, preset) else _init_network(init_from, TokenizerConfig, "tokenizer.json")
    if init is not None:
        q = nearest_preset(init.in_channels, init.image_size)
        derived = {"preset": q.name, "tokenizer": to_dict(init)}
        why = f"the network of --init-from {init_from}, with the training settings of preset {q.name}"
    data, start = _resolve(config, preset, derived, why)
    if config is None and preset is None and init is None:
        notes = [f"no --config or --preset: the data are {size}x{size} with {info.channels} channel(s) (most "
                 f"common size); using the nearest preset {p.name} ({p.description})"
                 + (f" at {size}x{size}" if at_size else "") + "; `maskgit presets` lists the others"]
    else:
        notes = [_plan_note(config, start)]
    cfg = config_with_preset(TokenizerTrainingConfig, data)
    return rescale_length(cfg, max_steps=max_steps, epochs=epochs, num_images=info.split_size("train")), notes


def transformer_config(info: DataInfo, tokenizer: TokenizerConfig, *, config: dict | None = None,
                       preset: str | None = None, max_steps: int | None = None, epochs: float | None = None,
                       split: str = "trainval", init_from: str | None = None) -> tuple[TransformerTrainingConfig, list]:
    """The transformer training config of a command, and notes to print.

    The fields of `config` go on top of the preset it (or `preset`) names; naming none, on top of the `init_from`
    model's transformer, else of the preset nearest the tokenizer's images, exactly as without a config. The
    codebook size and grid come from the tokenizer and the class count from the data, unless the file (or the
    `init_from` network) sets them.
    """
    _check_stage(config, "tokenizer", "train")
    p = nearest_preset(tokenizer.in_channels, tokenizer.image_size)
    image = f"{tokenizer.image_size}x{tokenizer.image_size}x{tokenizer.in_channels}"
    derived = {"preset": p.name}
    why = f"preset {p.name} (the nearest to the tokenizer's {image} images, as without a config)"
    init = None if _names_preset(config, preset) else _init_network(init_from, ModelConfig, "config.json")
    if init is not None:
        derived = {"preset": p.name, "transformer": to_dict(init.transformer)}
        why = f"the network of --init-from {init_from}, with the training settings of preset {p.name}"
    data, start = _resolve(config, preset, derived, why)
    if config is None and preset is None and init is None:
        notes = [f"no --config or --preset: using the preset nearest the tokenizer's {image} images, {p.name} "
                 f"({p.description})"]
    else:
        notes = [_plan_note(config, start)]
    fit = {"transformer": {"codebook_size": tokenizer.codebook_size, "grid_size": tokenizer.grid_size,
                           "num_classes": len(info.classes)}}
    cfg = config_with_preset(TransformerTrainingConfig, data, fit)
    views = (1 + cfg.crop_views) * (2 if cfg.hflip else 1)  # flips and crop views are cached as extra sequences
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
