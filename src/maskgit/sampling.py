"""Sample dumps: generate with a model and write PNGs, a grid, a decoding-steps strip and the config.

Every dump carries `sampling.json`, the resolved model and sampling settings that made it.
Existing files are never overwritten unless asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from .atomic import write_json_atomic
from .config import to_dict
from .images import save_grid, save_image
from .outputs import check_writable


def sample_to_directory(model: str, out: str | Path, *, labels: Sequence[str] | None = None, num_per_label: int = 1,
                        seed: int = 0, device: str = "cpu", show_steps: bool = False, overwrite: bool = False,
                        **sampling) -> list[Path]:
    """Generate `num_per_label` images per label and write them under `out`; returns the written paths."""
    from .pipeline import MaskGIT

    pipe = MaskGIT.from_pretrained(model, device=device)
    num_classes = pipe.transformer.config.num_classes
    if num_per_label < 1:
        raise ValueError(f"--num must be >= 1, got {num_per_label}")
    if labels is None:
        labels = [str(c) for c in range(num_classes)] if num_classes else None
    if labels is not None and not labels:
        raise ValueError("--labels is empty; give class indices or names, e.g. 0,3,7 or sneaker,bag")
    label_ids = pipe.resolve_labels(labels) if labels is not None else None
    if label_ids is not None:
        label_ids = label_ids.repeat_interleave(num_per_label)
    batch = len(label_ids) if label_ids is not None else num_per_label
    out = Path(out)
    names = [_image_name(pipe, i, label_ids) for i in range(batch)]
    paths = [out / n for n in names] + [out / "grid.png", out / "sampling.json"] + ([out / "steps.png"] * show_steps)
    check_writable(paths, overwrite)

    generator = torch.Generator(pipe.device).manual_seed(seed)
    images, history = pipe.generate(label_ids, num_samples=None if label_ids is not None else batch,
                                    generator=generator, return_history=True, **sampling)
    for name, image in zip(names, images):
        save_image(image, out / name)
    save_grid(images, out / "grid.png", nrow=num_per_label if label_ids is not None and num_per_label > 1 else None)
    if show_steps:
        steps = pipe.decode_history(history)  # (B, T, C, H, W): one row per image, one column per step
        save_grid(steps.flatten(0, 1), out / "steps.png", nrow=steps.shape[1])
    write_json_atomic(out / "sampling.json", {
        "model": str(model), "seed": seed, "labels": None if label_ids is None else label_ids.tolist(),
        "overrides": sampling, "config": to_dict(pipe.config),
    })
    return sorted(set(paths))


def _image_name(pipe, index: int, labels: torch.Tensor | None) -> str:
    if labels is None:
        return f"{index:04d}.png"
    label = int(labels[index])
    name = pipe.class_names[label].split(",")[0] if pipe.class_names else f"class{label}"  # first synonym
    return f"{index:04d}_{name.replace('/', '-').replace(' ', '-').lower()}.png"
