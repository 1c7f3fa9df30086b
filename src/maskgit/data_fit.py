"""What a dataset's images are (channels, sizes, classes), and whether a network made for other images fits them.

Read before any training or evaluation step, so that data is never converted silently: colour images need a
3-channel network, and images of another size than the network's need an explicit `resize` (`--resize`).
Image folders are inspected from the file headers (palette images from their pixels).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from .data import FASHION_MNIST_CLASSES, IMAGE_EXTENSIONS, split_indices

GREY_MODES = ("1", "L", "LA", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")
FASHION_MNIST_SPLITS = {"train": 55_000, "val": 5_000, "test": 10_000, "trainval": 60_000}


@dataclass(frozen=True)
class DataInfo:
    """The images of a dataset: `channels` is 3 when any image has colour; `sizes` counts (width, height)."""

    name: str
    channels: int
    sizes: dict[tuple[int, int], int]
    classes: tuple[str, ...]
    num_items: int
    with_alpha: int = 0  # images with an alpha channel (composited on black when read)

    @property
    def image_size(self) -> int:
        """The side the images are trained at without resizing most of them: the shorter side of the most
        common size (ties: the smaller)."""
        (w, h), _ = min(self.sizes.items(), key=lambda item: (-item[1], min(item[0])))
        return min(w, h)

    def describe_sizes(self, limit: int = 4) -> str:
        common = sorted(self.sizes.items(), key=lambda item: -item[1])
        text = ", ".join(f"{w}x{h} ({n})" for (w, h), n in common[:limit])
        return text + (f" and {len(common) - limit} other sizes" if len(common) > limit else "")

    def split_size(self, split: str) -> int:
        """Images in one split, as `maskgit.data.build_dataset` cuts it."""
        if self.name == "fashion-mnist":
            return FASHION_MNIST_SPLITS[split]
        return len(split_indices(self.num_items, split))


def describe_data(data: str, progress: bool = True) -> DataInfo:
    """Channels, sizes and classes of 'fashion-mnist', 'digits' or an image folder (one subfolder per class).

    Raises:
        FileNotFoundError: an unknown name or an empty folder. ValueError: a file that is not a readable image.
    """
    if data == "fashion-mnist":
        return DataInfo(data, 1, {(28, 28): 70_000}, FASHION_MNIST_CLASSES, 70_000)
    if data == "digits":
        return DataInfo(data, 1, {(8, 8): 1797}, tuple(str(d) for d in range(10)), 1797)
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"unknown dataset {data!r}: use 'fashion-mnist', 'digits' or a folder with one "
                                f"subfolder of images per class")
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir()))
    files = [f for c in classes for f in sorted((root / c).rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in class subfolders of {root}")
    sizes, colour, alpha = Counter(), False, 0
    for path in tqdm(files, desc="inspecting images", disable=not progress or len(files) < 2000):
        size, has_colour, has_alpha = _inspect(path)
        sizes[size] += 1
        colour, alpha = colour or has_colour, alpha + has_alpha
    return DataInfo(str(data), 3 if colour else 1, dict(sizes), classes, len(files), alpha)


def _inspect(path: Path) -> tuple[tuple[int, int], bool, bool]:
    """(size, has colour, has alpha) of one file, from its header (palette images: from their colours)."""
    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
            if mode in ("P", "PA"):
                rgb = image.convert("RGB")
                colour = any(r != g or g != b for _, (r, g, b) in rgb.getcolors(1 << 24))
                return size, colour, mode == "PA" or "transparency" in image.info
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image {path} ({type(err).__name__}: {err}); remove or fix it") from None
    return size, mode not in GREY_MODES, mode in ("LA", "RGBA")


def check_fit(info: DataInfo, channels: int, image_size: int, *, resize: bool, what: str,
              advice: str | None = None) -> list[str]:
    """Refuse data that `what` (e.g. "the tokenizer") cannot take unchanged; returns notes to print.

    `advice` replaces the default advice for a trainer (pick another preset or config) in the errors.

    Raises:
        ValueError: colour images for a 1-channel network, or images of another size without `resize`.
    """
    notes = []
    if info.channels == 3 and channels == 1:
        raise ValueError(f"--data {info.name} holds colour images but {what} takes 1-channel (grayscale) images, so "
                         f"it would see grey versions; " + (advice or "use a 3-channel preset (see `maskgit presets`) "
                                                            "or set tokenizer.in_channels to 3"))
    if info.channels == 1 and channels == 3:
        notes.append(f"--data {info.name} is grayscale; {what} takes RGB, so each image's channel is repeated")
    other = sum(n for (w, h), n in info.sizes.items() if (w, h) != (image_size, image_size))
    if other and not resize:
        raise ValueError(f"--data {info.name} holds images of {info.describe_sizes()} pixels but {what} works on "
                         f"{image_size}x{image_size}; " + (advice or _size_advice(info, image_size)))
    if other:
        notes.append(f"resizing {other} of {info.num_items} images ({info.describe_sizes()}) to {image_size}x"
                     f"{image_size} (shorter side, centre crop)")
    if info.with_alpha:
        notes.append(f"{info.with_alpha} images have an alpha channel: transparent pixels are composited on black")
    return notes


def _size_advice(info: DataInfo, image_size: int) -> str:
    text = f"pass --resize to scale them (shorter side to {image_size}, centre crop)"
    if info.image_size != image_size:
        text += f", or choose a preset / config with image_size {info.image_size}"
    return text
