"""Sample dumps: class-balanced, seeded per sample, sharded over processes, resumable; ADM `.npz` output.

Sample i has class i // num_per_class and draws every random number from its own generator, seeded
from (seed, i) (`pipeline.MaskGIT.generate` accepts one generator per sample). Work is cut into fixed
chunks of `batch_size` consecutive indices; process r of `accelerate launch` takes chunks r, r + W, ...
and writes each finished chunk atomically, so a dump made on N processes, or in pieces after kills,
equals the one-process dump bit for bit. The main process then joins the chunks into `arr_0` / `arr_1`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..atomic import write_json_atomic
from .image_sets import load_npz, save_batch, save_npz, to_uint8_nhwc

FORMAT = "maskgit-sample-dump/1"


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit seed for sample `index` of a dump made with `seed` (distinct pairs, distinct streams)."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint64)
    return int(state[0]) & (2**63 - 1)


def sample_generators(seed: int, indices: range | list[int], device: str | torch.device = "cpu"):
    """One seeded `torch.Generator` per sample index."""
    return [torch.Generator(device).manual_seed(sample_seed(seed, int(i))) for i in indices]


def balanced_labels(num_classes: int, num_per_class: int) -> np.ndarray:
    """(num_classes * num_per_class,) labels 0, 0, ..., 1, 1, ...: sample i has class i // num_per_class."""
    return np.repeat(np.arange(num_classes, dtype=np.int64), num_per_class)


def chunk_ranges(total: int, batch_size: int) -> list[range]:
    """The fixed chunks of consecutive indices that make up a dump."""
    return [range(start, min(start + batch_size, total)) for start in range(0, total, batch_size)]


def shard(chunks: list, rank: int, world_size: int) -> list:
    """The chunks process `rank` of `world_size` makes (round robin)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return chunks[rank::world_size]


@torch.inference_mode()
def generate_samples(pipe, indices: range | list[int], labels: np.ndarray, *, seed: int, **sampling) -> np.ndarray:
    """Samples `indices` of a dump: (len(indices), H, W, C) uint8, independent of how indices are batched."""
    label_ids = torch.as_tensor(labels[list(indices)], device=pipe.device)
    generators = sample_generators(seed, indices, pipe.device)
    return to_uint8_nhwc(pipe.generate(label_ids, generator=generators, **sampling))


def dump_paths(out: str | Path) -> dict[str, Path]:
    """The dump `.npz`, its settings `.json` and the working folder of finished chunks."""
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"--out {out} must name an .npz file (the ADM reference-batch format)")
    return {"npz": out, "json": out.with_suffix(".json"), "parts": out.with_name(out.stem + ".parts")}


def _stale_parts(parts: Path, settings: dict, overwrite: bool) -> bool:
    """True if `parts` holds an unfinished dump with other settings (an error unless `overwrite`)."""
    found = parts / "settings.json"
    if not found.is_file():
        return False
    try:
        old = json.loads(found.read_text())
    except (OSError, json.JSONDecodeError):
        old = None
    if old != settings and not overwrite:
        raise ValueError(f"{parts} holds an unfinished dump made with other settings; rerun with the same "
                         f"settings to resume it, or pass --overwrite to discard it")
    return old != settings


def _load_chunk(path: Path, chunk: range) -> np.ndarray | None:
    """A finished chunk's images, or None if it is missing or not the expected chunk."""
    if not path.is_file():
        return None
    try:
        data = load_npz(path)
    except ValueError:
        return None
    ok = "indices" in data and np.array_equal(data["indices"], np.arange(chunk.start, chunk.stop))
    return data["images"] if ok else None


def _make_chunks(pipe, chunks: list[range], labels: np.ndarray, parts: Path, seed: int, sampling: dict,
                 progress: bool, rank: int) -> None:
    todo = [c for c in chunks if _load_chunk(parts / f"chunk-{c.start:09d}.npz", c) is None]
    done = sum(len(c) for c in chunks) - sum(len(c) for c in todo)
    bar = tqdm(total=sum(len(c) for c in chunks), initial=done, desc=f"sample-dump [{rank}]", position=rank,
               disable=not progress, unit="img")
    for chunk in todo:
        images = generate_samples(pipe, chunk, labels, seed=seed, **sampling)
        save_npz(parts / f"chunk-{chunk.start:09d}.npz", images=images, indices=np.arange(chunk.start, chunk.stop))
        bar.update(len(chunk))
    bar.close()


def _join_chunks(chunks: list[range], parts: Path) -> np.ndarray:
    images = [_load_chunk(parts / f"chunk-{c.start:09d}.npz", c) for c in chunks]
    missing = [c.start for c, im in zip(chunks, images) if im is None]
    if missing:
        raise RuntimeError(f"chunks starting at {missing[:5]} are missing from {parts}; rerun the same command")
    return np.concatenate(images)


def sample_dump(model: str, out: str | Path, *, num_per_class: int, seed: int = 0, batch_size: int = 100,
                device: str | None = None, png_dir: str | Path | None = None, overwrite: bool = False,
                progress: bool = True, rank: int | None = None, world_size: int | None = None,
                barrier: Callable[[], None] | None = None, **sampling) -> Path | None:
    """Write `num_per_class` samples of every class of `model` to `out` (.npz) with settings JSON beside it.

    Args:
        rank, world_size, barrier: the process layout; default: accelerate's (`accelerate launch`), else 1.
        png_dir: also write one PNG per sample there (`{index:06d}_class{label}.png`).
        **sampling: steps, schedule, temperature, choice_temperature, guidance_scale, guidance_schedule
            (a causal model: temperature, top_k, sampler), dtype, compile.
    Returns:
        `out` on the main process, None on the others.
    """
    from ..config import to_dict
    from ..outputs import check_output_dir, check_writable
    from ..pipeline import MaskGIT

    if rank is None:
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())
        rank, world_size, barrier, device = state.process_index, state.num_processes, state.wait_for_everyone, \
            device or state.device
    world_size, barrier = world_size or 1, barrier or (lambda: None)
    if num_per_class < 1 or batch_size < 1:
        raise ValueError(f"--num-per-class and --batch-size must be >= 1, got {num_per_class} and {batch_size}")
    paths = dump_paths(out)
    check_writable([paths["npz"], paths["json"]], overwrite)
    if png_dir:
        check_output_dir(png_dir)  # before loading the model: never into a model directory
    pipe = MaskGIT.from_pretrained(model, device=device or "cpu")
    num_classes = pipe.transformer.config.num_classes
    if num_classes < 1:
        raise ValueError(f"{model} is unconditional; class-balanced dumps need a class-conditional model")
    labels = balanced_labels(num_classes, num_per_class)
    png_names = [f"{i:06d}_class{int(c)}.png" for i, c in enumerate(labels)] if png_dir else []
    if png_dir:
        check_writable([Path(png_dir) / n for n in png_names], overwrite)
    settings = {"format": FORMAT, "model": str(model), "num_per_class": num_per_class, "num_classes": num_classes,
                "num_images": len(labels), "seed": seed, "batch_size": batch_size,
                "sampling": pipe.sampling_settings(**sampling), "model_config": to_dict(pipe.config),
                "labels": "sample i has class i // num_per_class",
                "seeding": "sample i draws from torch.Generator(sample_seed(seed, i)) (SeedSequence([seed, i]))"}
    stale = _stale_parts(paths["parts"], settings, overwrite)  # every process checks, so all stop together
    if rank == 0:
        if stale:
            shutil.rmtree(paths["parts"])
        write_json_atomic(paths["parts"] / "settings.json", settings)
    barrier()
    chunks = chunk_ranges(len(labels), batch_size)
    _make_chunks(pipe, shard(chunks, rank, world_size), labels, paths["parts"], seed, sampling, progress, rank)
    barrier()
    if rank != 0:
        return None
    images = _join_chunks(chunks, paths["parts"])
    if png_dir:
        _write_pngs(images, Path(png_dir), png_names, progress)
    save_batch(paths["npz"], images, labels)
    write_json_atomic(paths["json"], {**settings, "world_size": world_size, "npz": paths["npz"].name})
    shutil.rmtree(paths["parts"])
    return paths["npz"]


def _write_pngs(images: np.ndarray, directory: Path, names: list[str], progress: bool = True) -> None:
    from ..images import save_image
    from .image_sets import to_float_nchw

    for start in tqdm(range(0, len(images), 1000), desc="png", unit="k img", disable=not progress):
        batch = to_float_nchw(images[start:start + 1000])
        for name, image in zip(names[start:start + 1000], batch):
            save_image(image, directory / name)
