"""Editing on image files: the library half of `maskgit inpaint | outpaint | edit`.

Loads PNG/JPEG files, checks them against the model (size, channels) or resizes when asked, runs
one editing method of `MaskGIT`, and writes PNGs plus the settings as JSON, never over an
existing file unless asked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from .atomic import write_json_atomic
from .config import to_dict
from .images import load_image, save_image
from .outputs import check_writable


def load_inputs(paths: Sequence[str | Path], channels: int, size: int, resize: bool,
                notes: list[str] | None = None) -> torch.Tensor:
    """Image files -> (B, C, size, size) in [0, 1]; a file of another size is resized or refused.

    Files are read exactly (see `maskgit.images.load_image`: 16-bit, palette, alpha); what was done to them
    (alpha composited on black) is appended to `notes`.
    """
    images = []
    for path in paths:
        image = load_image(path, channels=channels, notes=notes)
        if image.shape[-2:] != (size, size):
            if not resize:
                raise ValueError(f"{path} is {image.shape[2]}x{image.shape[1]} pixels but the model works on "
                                 f"{size}x{size}; pass --resize to resize it")
            image = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False,
                                  antialias=True)[0].clamp(0, 1)
        images.append(image)
    return torch.stack(images)


def load_mask(path: str | Path, size: tuple[int, int], resize: bool) -> torch.Tensor:
    """A mask image (white = regenerate; colour masks by their mean channel value) -> (1, 1, H, W) bool."""
    mask = load_image(path, channels=3).mean(0, keepdim=True)
    if mask.shape[-2:] != size:
        if not resize:
            raise ValueError(f"mask {path} is {mask.shape[2]}x{mask.shape[1]} but the images are "
                             f"{size[1]}x{size[0]}; pass --resize or make a matching mask")
        mask = F.interpolate(mask[None], size=size, mode="nearest")[0]
    return (mask > 0.5)[None]


def edit_files(model: str, task: str, inputs: Sequence[str | Path], out: str | Path, *, mask: str | None = None,
               box: Sequence[int] | None = None, pad: Sequence[int] | None = None, width: int | None = None,
               labels: Sequence[str] | None = None, resize: bool = False, overwrite: bool = False, seed: int = 0,
               device: str = "cpu", **sampling) -> list[Path]:
    """Run `task` ('inpaint', 'outpaint', 'extrapolate' or 'edit') on image files; returns written paths."""
    from .pipeline import MaskGIT

    pipe = MaskGIT.from_pretrained(model, device=device)
    out = Path(out)
    targets = [out / f"{Path(p).stem}_{task}.png" for p in inputs]
    check_writable(targets + [out / f"{task}.json"], overwrite)
    tcfg = pipe.tokenizer.config
    notes: list[str] = []
    images = load_inputs(inputs, tcfg.in_channels, tcfg.image_size, resize, notes).to(pipe.device)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if labels is not None and len(labels) not in (1, len(images)):
        raise ValueError(f"give one label, or one per image ({len(images)}), got {len(labels)}")
    labels = None if labels is None else list(labels) * (len(images) if len(labels) == 1 else 1)
    generator = torch.Generator(pipe.device).manual_seed(seed)
    if task == "inpaint":
        if mask is None:
            raise ValueError("inpaint needs --mask (an image, white where content is regenerated)")
        result = pipe.inpaint(images, load_mask(mask, tuple(images.shape[-2:]), resize).to(pipe.device), labels,
                              generator=generator, **sampling)
    elif task == "outpaint":
        result = pipe.outpaint(images, tuple(pad or ()), labels, generator=generator, **sampling)
    elif task == "extrapolate":
        result = pipe.extrapolate(images, int(width or 0), labels, generator=generator, **sampling)
    elif task == "edit":
        if labels is None or box is None:
            raise ValueError("edit needs --box x0,y0,x1,y1 and --label (the target class)")
        result = pipe.edit(images, tuple(box), labels, generator=generator, **sampling)
    else:
        raise ValueError(f"unknown editing task {task!r}")
    for path, image in zip(targets, result):
        save_image(image, path)
    write_json_atomic(out / f"{task}.json", {"model": str(model), "task": task, "inputs": [str(p) for p in inputs],
                                            "mask": mask, "box": box, "pad": pad, "width": width, "labels": labels,
                                            "seed": seed, "overrides": sampling, "config": to_dict(pipe.config)})
    return targets + [out / f"{task}.json"]
