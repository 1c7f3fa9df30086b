"""Sample dumps: generate with a model and write PNGs, a grid, a decoding-steps strip and the config.

Images are generated in batches and written as they come, so memory does not grow with the request. Image i is
drawn from its own generator (seeded from the seed and i), so the images do not depend on the batch size.
Every dump carries `sampling.json`, the resolved model and sampling settings that made it. Existing files are
never overwritten unless asked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .atomic import write_json_atomic
from .config import to_dict
from .images import save_grid, save_image
from .outputs import check_writable

GRID_COLUMNS = 16  # grid.png shows at most this many images per label ...
GRID_ROWS = 32  # ... for at most this many labels (and at most GRID_COLUMNS * GRID_ROWS images without labels)
STEPS_SHOWN = 16  # steps.png shows the decoding of the first images only
SEED_STRIDE = 1_000_003  # image i of --seed s is drawn from torch.Generator().manual_seed(s * SEED_STRIDE + i)


def sample_generators(seed: int, indices: Sequence[int], device) -> list[torch.Generator]:
    """One generator per image index, so an image is the same whatever batch it is decoded in."""
    return [torch.Generator(device).manual_seed(seed * SEED_STRIDE + i) for i in indices]


def sample_to_directory(model: str, out: str | Path, *, labels: Sequence[str] | None = None, num_per_label: int = 1,
                        seed: int = 0, device: str = "cpu", show_steps: bool = False, overwrite: bool = False,
                        batch_size: int = 64, progress: bool = True, **sampling) -> list[Path]:
    """Generate `num_per_label` images per label in batches of `batch_size`, writing each PNG as it is made, a grid
    of at most GRID_ROWS x GRID_COLUMNS of them, and (with `show_steps`) the first images' decoding steps.

    Returns:
        The written paths.
    """
    from .pipeline import MaskGIT

    pipe = MaskGIT.from_pretrained(model, device=device)
    num_classes = pipe.transformer.config.num_classes
    if num_per_label < 1:
        raise ValueError(f"--num must be >= 1, got {num_per_label}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if labels is None:
        labels = [str(c) for c in range(num_classes)] if num_classes else None
    if labels is not None and not labels:
        raise ValueError("--labels is empty; give class indices or names, e.g. 0,3,7 or sneaker,bag")
    label_ids = pipe.resolve_labels(labels) if labels is not None else None
    if label_ids is not None:
        label_ids = label_ids.repeat_interleave(num_per_label)
    total = len(label_ids) if label_ids is not None else num_per_label
    out = Path(out)
    names = [_image_name(pipe, i, label_ids) for i in range(total)]
    paths = [out / n for n in names] + [out / "grid.png", out / "sampling.json"] + ([out / "steps.png"] * show_steps)
    check_writable(paths, overwrite)

    shown, nrow = grid_indices(total, num_per_label if label_ids is not None else None)
    grid = generate_to_files(pipe, out, names, label_ids, seed=seed, batch_size=batch_size, show_steps=show_steps,
                             keep=shown, progress=progress, **sampling)
    save_grid(torch.stack([grid[i] for i in sorted(grid)]), out / "grid.png", nrow=nrow)
    write_json_atomic(out / "sampling.json", {
        "model": str(model), "seed": seed, "labels": None if label_ids is None else label_ids.tolist(),
        "generators": f"image i: torch.Generator().manual_seed(seed * {SEED_STRIDE} + i)", "batch_size": batch_size,
        "grid": f"{len(grid)} of {total} images", "overrides": sampling, "config": to_dict(pipe.config),
    })
    return sorted(set(paths))


def generate_to_files(pipe, out: Path, names: Sequence[str], label_ids: torch.Tensor | None, *, seed: int,
                      batch_size: int, show_steps: bool, keep: set[int], progress: bool = True,
                      **sampling) -> dict[int, torch.Tensor]:
    """Generate image i (label_ids[i], or unconditional) into out / names[i], batch by batch; returns the images
    whose indices are in `keep` (for the grid). With `show_steps`, the first images' steps go to steps.png."""
    grid, total = {}, len(names)
    with tqdm(total=total, desc="sample", unit="img", disable=not progress) as bar:
        for start in range(0, total, batch_size):
            index = list(range(start, min(start + batch_size, total)))
            chunk = label_ids[start:start + len(index)] if label_ids is not None else None
            history = show_steps and start == 0  # the decoding history of the first batch only
            result = pipe.generate(chunk, num_samples=None if chunk is not None else len(index),
                                   generator=sample_generators(seed, index, pipe.device), return_history=history,
                                   **sampling)
            images = result[0] if history else result
            if history:
                steps = pipe.decode_history(result[1][:STEPS_SHOWN])  # (B, T, C, H, W): a row per image
                save_grid(steps.flatten(0, 1), out / "steps.png", nrow=steps.shape[1])
            for i, image in zip(index, images):
                save_image(image, out / names[i])
                if i in keep:
                    grid[i] = image.cpu()
            bar.update(len(index))
    return grid


def grid_indices(total: int, per_label: int | None) -> tuple[set[int], int | None]:
    """Which images grid.png shows, and its images per row: the first GRID_COLUMNS of each of the first
    GRID_ROWS labels (one row each), or without labels the first GRID_ROWS * GRID_COLUMNS images."""
    if per_label is None or per_label == 1:
        count = min(total, GRID_ROWS * GRID_COLUMNS)
        return set(range(count)), min(GRID_COLUMNS * 2, math.ceil(math.sqrt(count)))
    columns = min(per_label, GRID_COLUMNS)
    rows = min(total // per_label, GRID_ROWS)
    return {r * per_label + c for r in range(rows) for c in range(columns)}, columns


def _image_name(pipe, index: int, labels: torch.Tensor | None) -> str:
    if labels is None:
        return f"{index:04d}.png"
    label = int(labels[index])
    name = pipe.class_names[label].split(",")[0] if pipe.class_names else f"class{label}"  # first synonym
    return f"{index:04d}_{name.replace('/', '-').replace(' ', '-').lower()}.png"
