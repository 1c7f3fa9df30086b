"""Datasets for tokenizer and transformer training: Fashion-MNIST (IDX files), image folders, scikit-learn digits,
WebDataset shards.

Every source yields (image float (C, H, W) in [0, 1], label int) and is split deterministically into
train / val / test (Fashion-MNIST keeps its official 10k test set; folders with `train/` and `val/` keep theirs).
Image folders live in `image_folders.py`, shards in `shards.py`.
Augmentation (random crop, flip) is applied to whole batches with an explicit generator, so a resumed run sees
the same images.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
import zlib
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from .image_folders import (  # noqa: F401  (re-exported: image folders were defined here)
    IMAGE_EXTENSIONS,
    OS_METADATA,
    ImageFolderDataset,
    find_images,
    is_hidden_or_system,
    layout_split,
    list_image_folder,
    skipped_note,
    split_layout,
)
from .images import resize

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
SPLITS = ("train", "val", "test", "trainval")
VAL_SIZE_FASHION_MNIST = 5000  # held out of the official training set
HOLDOUT_FRACTION = 0.1  # val and test fractions for sources without an official test split


# ---------------------------------------------------------------------------------------------- Fashion-MNIST
FASHION_MNIST_ADVICE = (
    f"Install it with `apt-get install dataset-fashion-mnist` (files go to {FASHION_MNIST_DIR}), or download the "
    f"four IDX files from {FASHION_MNIST_URL} (e.g. `python -c 'from maskgit.data import download_fashion_mnist; "
    f"download_fashion_mnist(\"DIR\")'`) and pass that directory as the data root."
)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array.

    Raises:
        ValueError: the file is corrupt, truncated or not an unsigned-byte IDX file (the message says how
            to get the Fashion-MNIST files again).
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    except (gzip.BadGzipFile, EOFError, zlib.error, struct.error) as err:
        raise ValueError(f"{path} is corrupt or truncated ({type(err).__name__}: {err}); delete it and get it "
                         f"again. {FASHION_MNIST_ADVICE}") from err
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file; replace it with the original. "
                         f"{FASHION_MNIST_ADVICE}")
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {array.size}; delete "
                         f"it and get it again. {FASHION_MNIST_ADVICE}")
    return array.reshape(shape)


def _find_idx(root: Path, name: str) -> Path:
    for candidate in (root / name, root / name[:-3]):  # gzipped or already unpacked
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Fashion-MNIST file {name} not found in {root}. {FASHION_MNIST_ADVICE}")


def load_fashion_mnist(root: str | Path | None = None, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Official split 'train' (60k) or 'test' (10k) -> (images uint8 (N, 28, 28), labels long (N,))."""
    if split not in FASHION_MNIST_FILES:
        raise ValueError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    root = Path(root or os.environ.get("MASKGIT_FASHION_MNIST", FASHION_MNIST_DIR))
    image_file, label_file = FASHION_MNIST_FILES[split]
    images = read_idx(_find_idx(root, image_file))
    labels = read_idx(_find_idx(root, label_file))
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def download_fashion_mnist(directory: str | Path) -> Path:
    """Download the four official Fashion-MNIST IDX files into `directory` (needs internet)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in sum(FASHION_MNIST_FILES.values(), ()):
        target = directory / name
        if not target.exists():
            tmp = target.with_suffix(".part")
            urllib.request.urlretrieve(FASHION_MNIST_URL + name, tmp)
            tmp.replace(target)
    return directory


# ---------------------------------------------------------------------------------------------- datasets
def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, channels, H, W): grey is repeated to RGB, RGB is averaged to grey."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1:
        return images.expand(-1, channels, -1, -1)
    if channels == 1:
        return images.mean(1, keepdim=True)
    raise ValueError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")


class TensorImageDataset(Dataset):
    """Images held in memory as uint8 (N, C, H, W); yields (float (C, H, W) in [0, 1], label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str] = ()):
        if images.dim() == 3:
            images = images[:, None]
        self.images, self.labels, self.classes = images, labels.long(), tuple(classes)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float() / 255.0, int(self.labels[index])


def split_indices(num_items: int, split: str, holdout: float = HOLDOUT_FRACTION, seed: int = 0) -> torch.Tensor:
    """Deterministic split of range(num_items): a seeded permutation cut into train / val / test."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    perm = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))
    n_hold = max(1, int(round(num_items * holdout))) if holdout > 0 else 0
    val, test, train = perm[:n_hold], perm[n_hold:2 * n_hold], perm[2 * n_hold:]
    parts = {"train": train, "val": val, "test": test, "trainval": torch.cat([train, val])}
    return parts[split].sort().values


def min_split_size(holdout: float = HOLDOUT_FRACTION) -> int:
    """The fewest items for which `split_indices` leaves train, val and test all non-empty."""
    parts = ("train", "val", "test") if holdout > 0 else ("train",)
    for n in range(1, 1000):
        if all(len(split_indices(n, s, holdout)) for s in parts):
            return n
    raise ValueError(f"holdout fraction {holdout} leaves no training items")


def fashion_mnist_dataset(split: str, root: str | Path | None = None) -> TensorImageDataset:
    """Fashion-MNIST: 'test' is the official 10k; 'val' is 5k held out of the official 60k; 'train' the rest."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    images, labels = load_fashion_mnist(root, "test" if split == "test" else "train")
    if split in ("train", "val"):
        perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        keep = perm[:VAL_SIZE_FASHION_MNIST] if split == "val" else perm[VAL_SIZE_FASHION_MNIST:]
        images, labels = images[keep.sort().values], labels[keep.sort().values]
    return TensorImageDataset(images, labels, FASHION_MNIST_CLASSES)


def digits_dataset(split: str, image_size: int = 8) -> TensorImageDataset:
    """scikit-learn's 8x8 digits (1797 images, values 0..16) resized to `image_size`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float()[:, None] / 16.0
    images = resize(images, image_size)
    keep = split_indices(len(images), split)
    uint8 = (images[keep] * 255).round().to(torch.uint8)
    return TensorImageDataset(uint8, torch.from_numpy(digits.target)[keep], [str(d) for d in range(10)])


def build_dataset(name_or_path: str, split: str = "train", image_size: int | None = None, *,
                  root: str | Path | None = None, channels: int | None = None) -> Dataset:
    """The entry point of the training CLIs: 'fashion-mnist', 'digits', an image folder or a shard directory.

    A folder is either one subfolder of images per class (cut into our train / val / test split) or an
    explicit layout with `train/` and `val/` (and optionally `test/`) side by side, used as given (see
    `maskgit.image_folders`); a directory written by `maskgit.shards.write_shards` is read from its tar shards.

    Args:
        split: 'train', 'val', 'test' or 'trainval'.
        image_size: output size (default: the source's native size; required for folders and shards).
        root: Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist or $MASKGIT_FASHION_MNIST).
        channels: 1 or 3 (default: the source's own: 1 for Fashion-MNIST and digits, 3 for folders).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if name_or_path == "fashion-mnist":
        dataset = fashion_mnist_dataset(split, root)
        native = 28
    elif name_or_path == "digits":
        dataset = digits_dataset(split, image_size or 8)
        native = image_size or 8
    elif Path(name_or_path).is_dir():
        if image_size is None:
            raise ValueError("an image folder needs image_size")
        return _folder_dataset(Path(name_or_path), split, image_size, channels or 3)
    else:
        raise FileNotFoundError(f"unknown dataset {name_or_path!r}: use 'fashion-mnist', 'digits' or a folder "
                                f"with one subfolder of images per class")
    if (image_size and image_size != native) or (channels and channels != 1):
        images = resize(dataset.images.float() / 255.0, image_size or native)
        images = to_channels(images, channels or 1)
        dataset = TensorImageDataset((images * 255).round().to(torch.uint8), dataset.labels, dataset.classes)
    return dataset


def _folder_dataset(path: Path, split: str, image_size: int, channels: int) -> Dataset:
    """A shard directory, an explicit split layout, or one folder cut by `split_indices`."""
    from .shards import ShardDataset, is_shard_directory

    if is_shard_directory(path):
        return ShardDataset(path, split, image_size, channels)
    if split_layout(path) is not None:
        classes, files, labels, _ = layout_split(path, split)
        return ImageFolderDataset(path, image_size, channels, files, classes=classes, labels=labels)
    full = ImageFolderDataset(path, image_size, channels)
    if len(full) < (need := min_split_size()):
        raise ValueError(f"{path} holds {len(full)} image(s), too few for the train/val/test split; need at least "
                         f"{need}")
    keep = split_indices(len(full), split).tolist()
    return ImageFolderDataset(path, image_size, channels, [full.files[i] for i in keep], classes=full.classes,
                              labels=full.labels[keep].tolist())


def dataset_fingerprint(dataset: Dataset, samples: int = 16) -> str:
    """A short hash that changes when the dataset's contents, size, resolution, channels or labels change.

    In-memory datasets hash every pixel and label; image folders hash each file's path, size and
    modification time (reading every image would be too slow); other datasets hash `samples` items.
    """
    h = hashlib.sha256(f"{type(dataset).__name__}:{len(dataset)}".encode())
    if isinstance(dataset, TensorImageDataset):
        h.update(str(tuple(dataset.images.shape)).encode())
        h.update(dataset.images.contiguous().numpy().tobytes())
        h.update(dataset.labels.numpy().tobytes())
    elif isinstance(dataset, ImageFolderDataset):
        h.update(f"{dataset.root.resolve()}:{dataset.image_size}:{dataset.channels}".encode())
        for path in dataset.files:
            stat = path.stat()
            h.update(f"{path.relative_to(dataset.root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        h.update(dataset.labels.numpy().tobytes())
    elif hasattr(dataset, "fingerprint"):  # shards: their index and files (see `maskgit.shards`)
        h.update(dataset.fingerprint().encode())
    else:
        last = len(dataset) - 1
        for index in sorted({round(i * last / max(1, samples - 1)) for i in range(samples)} if last >= 0 else ()):
            image, label = dataset[index]
            h.update(torch.as_tensor(image).float().contiguous().numpy().tobytes())
            h.update(str(int(label)).encode())
    h.update(",".join(getattr(dataset, "classes", ())).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- sampling
class EpochBatchSampler(Sampler[list[int]]):
    """Batches of a seeded per-epoch permutation, starting at any batch (resumable, shardable).

    Batch b covers positions [b * batch_size, (b + 1) * batch_size) of the concatenated epoch
    permutations; each of `world` processes takes every world-th index of it.
    """

    def __init__(self, num_items: int, batch_size: int, *, seed: int = 0, start_batch: int = 0,
                 rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} is not divisible by {world} processes")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.start_batch, self.rank, self.world = start_batch, rank, world

    def permutation(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))

    def batch(self, index: int) -> list[int]:
        start = index * self.batch_size
        epoch, offset = divmod(start, self.num_items)
        out: list[torch.Tensor] = []
        needed = self.batch_size
        while needed > 0:
            part = self.permutation(epoch)[offset:offset + needed]
            out.append(part)
            needed -= len(part)
            epoch, offset = epoch + 1, 0
        return torch.cat(out)[self.rank::self.world].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        index = self.start_batch
        while True:
            yield self.batch(index)
            index += 1


def augment(images: torch.Tensor, generator: torch.Generator, *, hflip: bool = False,
            crop_pad: int = 0) -> torch.Tensor:
    """Random horizontal flips and random crops after reflect-padding by `crop_pad` (a translation)."""
    b = images.shape[0]
    if hflip:
        flip = torch.rand(b, generator=generator) < 0.5
        images = torch.where(flip[:, None, None, None].to(images.device), images.flip(-1), images)
    if crop_pad > 0:
        h, w = images.shape[-2:]
        padded = F.pad(images, (crop_pad,) * 4, mode="reflect")
        dy, dx = torch.randint(0, 2 * crop_pad + 1, (2, b), generator=generator).tolist()
        images = torch.stack([padded[i, :, y:y + h, x:x + w] for i, (y, x) in enumerate(zip(dy, dx))])
    return images
