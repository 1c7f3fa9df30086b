"""Sample dumps: generate with a model and write PNGs, a grid, a decoding-steps strip and the config.

Images are generated in batches and written as they come, so memory does not grow with the request. Image i is
drawn from its own generator (seeded from the seed and i), so the images do not depend on the batch size.
Every dump carries `sampling.json`, the resolved model and sampling settings that made it and the files they
describe. Existing files are never overwritten unless asked, and a folder is refused when it holds samples of an
earlier run that this one would not replace: `sampling.json` always describes every sample beside it.
`sampling.json` is written first with "complete": false; the same command run again after an interruption keeps
the PNGs already written (each is written atomically) and generates the rest.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .atomic import write_json_atomic
from .config import to_dict
from .images import load_image, save_grid, save_image
from .outputs import check_output_dir, check_writable

GRID_COLUMNS = 16  # grid.png shows at most this many images per label ...
GRID_ROWS = 32  # ... for at most this many labels (and at most GRID_COLUMNS * GRID_ROWS images without labels)
STEPS_SHOWN = 16  # steps.png shows the decoding of the first images only
SEED_STRIDE = 1_000_003  # image i of --seed s is drawn from torch.Generator().manual_seed(s * SEED_STRIDE + i)
SAMPLE_FILE = re.compile(r"\d{4,}(_.*)?\.png|grid\.png|steps\.png")  # the names `sample` writes (see _image_name)


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

    out = check_output_dir(out)  # a model directory or a file in the way is refused before loading anything
    pipe = MaskGIT.from_pretrained(model, device=device)
    num_classes = pipe.transformer.config.num_classes
    if num_per_label < 1:
        raise ValueError(f"--num must be >= 1, got {num_per_label}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if labels is None:
        labels = list(range(num_classes)) if num_classes else None  # indices: a class may be named "1"
    if labels is not None and not labels:
        raise ValueError("--labels is empty; give class indices or names, e.g. 0,3,7 or sneaker,bag")
    label_ids = pipe.resolve_labels(labels) if labels is not None else None
    if label_ids is not None:
        label_ids = label_ids.repeat_interleave(num_per_label)
    total = len(label_ids) if label_ids is not None else num_per_label
    names = [_image_name(pipe, i, label_ids) for i in range(total)]
    paths = [out / n for n in names] + [out / "grid.png", out / "sampling.json"] + ([out / "steps.png"] * show_steps)
    shown, nrow = grid_indices(total, num_per_label if label_ids is not None else None)
    record = {
        "model": str(model), "seed": seed, "labels": None if label_ids is None else label_ids.tolist(),
        "num_per_label": num_per_label, "device": str(device), "show_steps": show_steps,
        "generators": f"image i: torch.Generator().manual_seed(seed * {SEED_STRIDE} + i)",
        "grid": f"{len(shown)} of {total} images", "files": sorted(p.name for p in paths if p.suffix == ".png"),
        "sampling": pipe.sampling_settings(**sampling), "overrides": sampling, "config": to_dict(pipe.config),
    }
    done = set() if overwrite else unfinished_files(out, record)  # an interrupted run of these very settings
    check_writable([p for p in paths if p.name not in done and not (done and p.name == "sampling.json")], overwrite)
    check_no_earlier_samples(out, paths)

    write_json_atomic(out / "sampling.json", {**record, "batch_size": batch_size, "complete": False})
    grid = generate_to_files(pipe, out, names, label_ids, seed=seed, batch_size=batch_size, show_steps=show_steps,
                             keep=shown, progress=progress, done=done, **sampling)
    save_grid(torch.stack([grid[i] for i in sorted(grid)]), out / "grid.png", nrow=nrow)
    write_json_atomic(out / "sampling.json", {**record, "batch_size": batch_size, "complete": True})
    return sorted(set(paths))


def unfinished_files(out: Path, record: dict) -> set[str]:
    """The files an interrupted `sample` run with the same settings (`record`, the batch size aside: images do not
    depend on it) left in `out`: the same command goes on from them. Empty if there is no such run."""
    try:
        earlier = json.loads((out / "sampling.json").read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(earlier, dict) or earlier.get("complete", True) or \
            any(earlier.get(key) != value for key, value in json.loads(json.dumps(record)).items()):
        return set()
    return {name for name in record["files"] if (out / name).is_file()}


def generate_to_files(pipe, out: Path, names: Sequence[str], label_ids: torch.Tensor | None, *, seed: int,
                      batch_size: int, show_steps: bool, keep: set[int], progress: bool = True,
                      done: set[str] = frozenset(), **sampling) -> dict[int, torch.Tensor]:
    """Generate image i (label_ids[i], or unconditional) into out / names[i], batch by batch; returns the images
    whose indices are in `keep` (for the grid). With `show_steps`, the first images' steps go to steps.png.
    Files named in `done` (written by an interrupted run) are read back instead of generated."""
    grid, total = {}, len(names)
    channels = pipe.tokenizer.config.in_channels
    for i in keep:
        if names[i] in done:
            grid[i] = load_image(out / names[i], channels=channels)
    todo = [i for i in range(total) if names[i] not in done]
    with tqdm(total=total, initial=total - len(todo), desc="sample", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            index = todo[start:start + batch_size]
            chunk = label_ids[index] if label_ids is not None else None
            # the decoding history of the first batch only (unless an interrupted run wrote it already)
            history = show_steps and index[0] == 0 and "steps.png" not in done
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


def check_no_earlier_samples(out: Path, paths: Sequence[Path]) -> None:
    """Refuse a folder holding samples (or a grid or steps strip) that this run would not replace: the new
    `sampling.json` would sit beside images it does not describe."""
    written = {p.name for p in paths}
    earlier = sorted(p.name for p in out.glob("*.png") if SAMPLE_FILE.fullmatch(p.name) and p.name not in written) \
        if out.is_dir() else []
    if earlier:
        raise FileExistsError(f"--out {out} holds {len(earlier)} sample file(s) of an earlier run that this run would "
                              f"not replace ({', '.join(earlier[:3])}{' ...' if len(earlier) > 3 else ''}), so its "
                              f"sampling.json would not describe them; remove them or choose another --out")


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
