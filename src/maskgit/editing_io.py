"""Editing on image files: the library half of `maskgit inpaint | outpaint | edit`.

Loads PNG/JPEG files, checks them against the model (size, channels) or resizes when asked, runs
one editing method of `MaskGIT`, and writes each result PNG with its settings as a JSON of the same
name (`<input>_<task>.png` + `<input>_<task>.json`), so results of several runs can share a folder and
each keeps the settings that made it. Nothing existing is replaced unless asked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import torch

from .atomic import write_json_atomic
from .config import to_dict
from .images import load_image, save_image
from .images import resize as resize_to
from .outputs import check_output_dir, check_writable

EDITING_OPTIONS = ("blur_radius", "overlap", "start_iter")  # editing arguments that are not decoding settings


def load_inputs(paths: Sequence[str | Path], channels: int, size: int, resize: bool,
                notes: list[str] | None = None) -> torch.Tensor:
    """Image files -> (B, C, size, size) in [0, 1]; a file of another size is resized (shorter side scaled, centre
    crop, as for training data: `maskgit.images.resize`) or refused.

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
            image = resize_to(image[None], size)[0]
        images.append(image)
    return torch.stack(images)


def load_mask(path: str | Path, size: tuple[int, int], resize: bool) -> torch.Tensor:
    """A mask image (white = regenerate; colour masks by their mean channel value) -> (1, 1, H, W) bool; with
    `resize`, a mask of another size is resized as its image is (shorter side scaled, centre crop)."""
    mask = load_image(path, channels=3).mean(0, keepdim=True)
    if mask.shape[-2:] != size:
        if not resize:
            raise ValueError(f"mask {path} is {mask.shape[2]}x{mask.shape[1]} but the images are "
                             f"{size[1]}x{size[0]}; pass --resize or make a matching mask")
        if size[0] != size[1]:
            raise ValueError(f"--resize makes images square; the images are {size[1]}x{size[0]}")
        mask = resize_to(mask[None], size[0], mode="nearest")[0]
    return (mask > 0.5)[None]


def edit_files(model: str, task: str, inputs: Sequence[str | Path], out: str | Path, *, mask: str | None = None,
               box: Sequence[int] | None = None, pad: Sequence[int] | None = None, width: int | None = None,
               labels: Sequence[str] | None = None, resize: bool = False, overwrite: bool = False, seed: int = 0,
               device: str = "cpu", **sampling) -> list[Path]:
    """Run `task` ('inpaint', 'outpaint', 'extrapolate' or 'edit') on image files; returns written paths: per input
    `<stem>_<task>.png` and `<stem>_<task>.json` (every setting that made it)."""
    from .pipeline import MaskGIT

    out = check_output_dir(out)  # a model directory or a file in the way is refused before loading anything
    pipe = MaskGIT.from_pretrained(model, device=device)
    targets = [out / f"{Path(p).stem}_{task}.png" for p in inputs]
    records = [t.with_suffix(".json") for t in targets]
    check_writable(targets + records, overwrite)
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
    run = {"model": str(model), "task": task, "inputs": [str(p) for p in inputs], "mask": mask, "box": box,
           "pad": pad, "width": width, "labels": labels, "resize": resize, "seed": seed, "device": str(device),
           "generator": "one torch.Generator(seed) for the whole run: the inputs together reproduce each output",
           "notes": notes, "sampling": settings_record(pipe, task, sampling), "overrides": sampling,
           "config": to_dict(pipe.config)}
    for i, (path, record, image) in enumerate(zip(targets, records, result)):
        save_image(image, path)
        write_json_atomic(record, {"output": path.name, "input": str(inputs[i]), "index": i, **run})
    return [p for pair in zip(targets, records) for p in pair]


def settings_record(pipe, task: str, sampling: dict) -> dict:
    """The settings an editing call decodes with: the model's defaults (class edits: the official 12 steps from
    iteration 2) overridden by `sampling`, plus the editing options given."""
    from .editing import EDIT_START_ITER, EDIT_STEPS

    editing = {k: v for k, v in sampling.items() if k in EDITING_OPTIONS}
    decoding = {k: v for k, v in sampling.items() if k not in EDITING_OPTIONS}
    if task == "edit":
        decoding.setdefault("steps", EDIT_STEPS)
        editing.setdefault("start_iter", EDIT_START_ITER)
    return {**pipe.sampling_settings(**decoding), **editing}
