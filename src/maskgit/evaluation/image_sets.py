"""Image sets on disk in the formats the field's evaluators read.

A sample dump or reference batch is the ADM / guided-diffusion `.npz` (Dhariwal & Nichol 2021,
`evaluations/evaluator.py`): `arr_0` uint8 images (M, H, W, C) and, for class-conditional sets, `arr_1`
int64 labels. Reference statistics are an `.npz` with `mu` / `sigma` (the ADM ImageNet reference batches
carry both); ours may add `features`, `probs` and a JSON `meta`. Folders of PNG/JPEG images are read too.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_bytes_atomic
from ..data import build_dataset, find_images, skipped_note
from ..images import ImageTooLargeError, open_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class ImageSet:
    """Images (M, H, W, C) uint8 with optional labels (M,), or precomputed statistics only."""

    source: str
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    stats: dict[str, np.ndarray] = field(default_factory=dict)  # mu, sigma [, features, probs]; with images too
    meta: dict = field(default_factory=dict)  # what made the statistics (feature extractor, ...)

    def __len__(self) -> int:
        if self.images is not None:
            return len(self.images)
        return int(self.meta.get("num_images", 0))


def to_uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) float in [0, 1] -> (B, H, W, C) uint8, rounded as PNG writing rounds."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_float_nchw(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write arrays as an uncompressed `.npz`, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes_atomic(path, buffer.getvalue())


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of an `.npz` (no pickles), with a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass a sample dump / reference batch .npz or an image folder")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz file (truncated or foreign?): {err}") from None


def check_batch(images: np.ndarray, labels: np.ndarray | None, source: str) -> None:
    """The reference-batch layout: uint8 (M, H, W, C) with C in {1, 3}, labels (M,) integers."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{source}: arr_0 must be uint8 images (M, H, W, C) with C = 1 or 3 (the ADM "
                         f"reference-batch layout), got {images.dtype} {images.shape}")
    if labels is not None and (labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"{source}: arr_1 must hold one integer label per image, got {labels.dtype} "
                         f"{labels.shape} for {len(images)} images")


def save_batch(path: str | Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """Write a reference batch / sample dump: `arr_0` images and, when given, `arr_1` labels."""
    check_batch(images, labels, str(path))
    arrays = {"arr_0": images} if labels is None else {"arr_0": images, "arr_1": labels.astype(np.int64)}
    return save_npz(path, **arrays)


def save_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray, meta: dict, **extra: np.ndarray) -> Path:
    """Write reference statistics: ADM keys `mu`, `sigma`, plus `meta` (JSON) and extra arrays."""
    return save_npz(path, mu=mu, sigma=sigma, meta=np.array(json.dumps(meta, sort_keys=True)), **extra)


def _from_npz(path: Path) -> ImageSet:
    """Images (arr_0 [, arr_1]), statistics (mu, sigma [, meta, features, probs]), or both (the ADM ImageNet
    reference batches hold images and the statistics their evaluator reads)."""
    data = load_npz(path)
    stats, meta = {}, {}
    if "mu" in data and "sigma" in data:
        meta = json.loads(str(data.pop("meta"))) if "meta" in data else {}
        mu, sigma = data["mu"], data["sigma"]
        if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
            raise ValueError(f"{path}: mu must be (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
        stats = {key: value for key, value in data.items() if key not in ("arr_0", "arr_1")}
    if "arr_0" in data:
        labels = data.get("arr_1")
        check_batch(data["arr_0"], labels, str(path))
        return ImageSet(str(path), images=data["arr_0"], labels=labels, stats=stats, meta=meta)
    if stats:
        return ImageSet(str(path), stats=stats, meta=meta)
    raise ValueError(f"{path} holds neither images (arr_0, the ADM reference-batch layout) nor statistics "
                     f"(mu and sigma); found keys {sorted(data)}")


def _from_folder(path: Path) -> ImageSet:
    files, skipped = find_images(path, IMAGE_SUFFIXES)
    if skipped:
        print(f"note: {skipped_note(skipped, path)}", file=sys.stderr)
    if not files:
        raise ValueError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}); pass a folder of images or an .npz")
    arrays = []
    for file in files:
        try:
            with open_image(file) as image:  # refuses a huge image from its header
                arrays.append(np.asarray(image.convert("L" if image.mode in ("1", "L", "I;16", "I") else "RGB")))
        except ImageTooLargeError:
            raise  # its message names the file and the limit
        except (OSError, SyntaxError, ValueError) as err:
            raise ValueError(f"{file} is not a readable image file ({err}); re-export it or remove it") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images under {path} differ in size or channels ({sorted(shapes)[:3]} ...); "
                         f"resize them to one size first")
    images = np.stack(arrays)
    return ImageSet(str(path), images=images[..., None] if images.ndim == 3 else images)


def load_image_set(path: str | Path) -> ImageSet:
    """A folder of images, a reference batch / dump `.npz` (arr_0 [, arr_1]), or a statistics `.npz` (mu, sigma)."""
    path = Path(path)
    if path.is_dir():
        return _from_folder(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"{path} is neither a folder of images nor an .npz file (a dump, reference batch or "
                         f"mu/sigma statistics)")
    return _from_npz(path)


def content_hash(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's image files as `load_image_set` reads them (relative names and bytes,
    in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = find_images(path, IMAGE_SUFFIXES)[0] if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def dataset_tensors(data: str, split: str, data_root: str | None = None, image_size: int | None = None,
                    channels: int | None = None):
    """A whole dataset split as (images (M, C, H, W) float in [0, 1], labels (M,) long)."""
    from torch.utils.data import DataLoader

    dataset = build_dataset(data, split=split, root=data_root, image_size=image_size, channels=channels)
    images, labels = zip(*DataLoader(dataset, batch_size=1000))
    return torch.cat(images), torch.cat([torch.as_tensor(x) for x in labels]).long()


def write_dataset_batch(data: str, split: str, out: str | Path, *, num: int | None = None, seed: int = 0,
                        data_root: str | None = None, overwrite: bool = False) -> Path:
    """Write a dataset split (or `num` images of it drawn with `seed`) as a labelled reference batch."""
    from ..outputs import check_writable

    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"--out {out} must name an .npz file (the ADM reference-batch format)")
    check_writable([out], overwrite)
    images, labels = dataset_tensors(data, split, data_root)
    if num is not None:
        if not 1 <= num <= len(images):
            raise ValueError(f"--num must be in [1, {len(images)}] for the {split} split of {data}, got {num}")
        picked = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:num]
        images, labels = images[picked], labels[picked]
    return save_batch(out, to_uint8_nhwc(images), labels.numpy())
