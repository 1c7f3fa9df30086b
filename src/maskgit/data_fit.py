"""What a dataset's images are (channels, sizes, classes), and whether a network made for other images fits them.

Read before any training or evaluation step, so that data is never converted silently: colour images need a
3-channel network, and images of another size than the network's need an explicit `resize` (`--resize`).
Image folders are inspected from the file headers (palette images from their pixels).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .data import FASHION_MNIST_CLASSES, IMAGE_EXTENSIONS, list_image_folder, skipped_note, split_indices
from .image_folders import layout_split, split_layout
from .images import ImageTooLargeError, open_image

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
    skipped: int = 0  # hidden or system entries of a folder, left out (see `maskgit.data.is_hidden_or_system`)
    split_sizes: dict[str, int] | None = None  # images per split of data that comes split (train/ val/, shards)

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
        if self.split_sizes is not None:
            parts = ("train", "val") if split == "trainval" else (split,)
            return sum(self.split_sizes.get(part, 0) for part in parts)
        return len(split_indices(self.num_items, split))


def describe_data(data: str, progress: bool = True) -> DataInfo:
    """Channels, sizes and classes of 'fashion-mnist', 'digits', an image folder (one subfolder per class, or
    train/ and val/ side by side) or a shard directory (from its index).

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
    from .shards import is_shard_directory

    if is_shard_directory(root):
        return _describe_shards(root)
    split_sizes = None
    if (layout := split_layout(root)) is not None:  # train/ and val/ side by side: classes are train/'s
        files, split_sizes, skipped = [], {}, 0
        for name in layout:
            classes, found, _, hidden = layout_split(root, name)
            files, split_sizes[name], skipped = files + found, len(found), skipped + hidden
    else:
        classes, files, skipped = list_image_folder(root)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in class subfolders of {root}")
    sizes, colour, alpha = Counter(), False, 0
    for path in tqdm(files, desc="inspecting images", disable=not progress or len(files) < 2000):
        size, has_colour, has_alpha = inspect_image(path)
        sizes[size] += 1
        colour, alpha = colour or has_colour, alpha + has_alpha
    return DataInfo(str(data), 3 if colour else 1, dict(sizes), classes, len(files), alpha, skipped, split_sizes)


def _describe_shards(root: Path) -> DataInfo:
    """A shard directory's facts, from the index `maskgit.shards.write_shards` wrote (no image is read)."""
    from .shards import read_index

    index = read_index(root)
    sizes = {tuple(int(v) for v in key.split("x")): n for key, n in index["sizes"].items()}
    counts = {name: split["count"] for name, split in index["splits"].items()}
    return DataInfo(str(root), index["channels"], sizes, tuple(index["classes"]), sum(counts.values()),
                    index["with_alpha"], 0, counts)


def inspect_image(path: Path) -> tuple[tuple[int, int], bool, bool]:
    """(size, has colour, has alpha) of one file, from its header (palette images: from their colours)."""
    try:
        with open_image(path) as image:  # refuses a huge image from its header
            mode, size = image.mode, image.size
            if mode in ("P", "PA"):
                rgb = image.convert("RGB")
                colour = any(r != g or g != b for _, (r, g, b) in rgb.getcolors(1 << 24))
                return size, colour, mode == "PA" or "transparency" in image.info
    except ImageTooLargeError:
        raise  # its message names the file and the limit
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path} ({type(err).__name__}: {err}); remove or fix it") from None
    return size, mode not in GREY_MODES, mode in ("LA", "RGBA")


def check_fit(info: DataInfo, channels: int, image_size: int, *, resize: bool, what: str,
              advice: str | None = None) -> list[str]:
    """Refuse data that `what` (e.g. "the tokenizer") cannot take unchanged; returns notes to print.

    `advice` replaces the default advice for a trainer (pick another preset or config) in the errors.

    Raises:
        ValueError: colour images for a 1-channel network, or images of another size without `resize`.
    """
    notes = [skipped_note(info.skipped, f"--data {info.name}")] if info.skipped else []
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
