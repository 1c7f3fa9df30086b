"""A synthetic ImageNet-shaped folder for loader and cache measurements: JPEG files in an explicit train/ val/ layout.

Each image is 256x256 RGB, JPEG quality 90, made from seeded low-frequency noise tinted by its class plus fine
noise, so files are a realistic few tens of kB and decode like photographs. Deterministic for a seed.

    python benchmarks/synthetic_imagenet.py --out /tmp/synthetic-imagenet --classes 1000 --train 20 --val 2
"""

from __future__ import annotations

import argparse
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image


def make_image(seed: int, class_index: int, size: int = 256) -> Image.Image:
    """One synthetic photo-like image."""
    g = np.random.default_rng(seed)
    coarse = g.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)
    tint = np.array([(class_index * 37) % 256, (class_index * 91) % 256, (class_index * 53) % 256], np.float32)
    pixels = 0.6 * base + 0.4 * tint + g.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write(job: tuple[str, int, int, int, int]) -> int:
    folder, class_index, first, count, seed = job
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        target = path / f"img_{i:05d}.JPEG"
        if not target.exists():
            make_image(seed * 1_000_003 + class_index * 10_007 + i, class_index).save(target, quality=90)
    return count


def make_folder(out: Path, classes: int, train: int, val: int, seed: int = 0, processes: int = 2) -> dict:
    """Write out/train/nXXXXXXXX/*.JPEG (`train` per class) and out/val/... (`val` per class); returns counts."""
    jobs = [(str(out / split / f"n{c:08d}"), c, 0 if split == "train" else train, n, seed)
            for split, n in (("train", train), ("val", val)) for c in range(classes) if n]
    start = time.perf_counter()
    with Pool(processes) as pool:
        total = sum(pool.imap_unordered(_write, jobs, chunksize=16))
    return {"images": total, "classes": classes, "train_per_class": train, "val_per_class": val,
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--train", type=int, default=20, help="training images per class")
    parser.add_argument("--val", type=int, default=2, help="validation images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    print(make_folder(args.out, args.classes, args.train, args.val, args.seed, args.processes))


if __name__ == "__main__":
    main()
