"""Image folders: one subfolder of images per class, alone or in an explicit split layout.

A single folder (`root/<class>/...`) is cut into our own train / val / test split (`maskgit.data.split_indices`);
a folder holding `train/` and `val/` (and optionally `test/`) side by side, each with the same class subfolders,
is used as given, as ImageNet ships. Hidden and OS metadata entries ('.ipynb_checkpoints', '._x.png', Thumbs.db,
__MACOSX) are skipped; class names are the folder names, and labels come from one name -> index dict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from .images import ImageTooLargeError, load_image, resize

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Never data: what macOS and Windows leave in folders and archives (hidden '.' entries are skipped as well)
OS_METADATA = ("__macosx", "thumbs.db", "ehthumbs.db", "desktop.ini", "$recycle.bin", "system volume information")
SPLIT_FOLDERS = ("train", "val", "test")  # the explicit layout: these side by side, each with class subfolders


def is_hidden_or_system(name: str) -> bool:
    """True for folder entries that are never data: hidden ones ('.ipynb_checkpoints', '.DS_Store', the '._x.png'
    AppleDouble files of macOS) and OS metadata ('__MACOSX', 'Thumbs.db', 'desktop.ini')."""
    return name.startswith(".") or name.lower() in OS_METADATA


def find_images(directory: str | Path, suffixes: Sequence[str] = IMAGE_EXTENSIONS) -> tuple[list[Path], int]:
    """Image files under `directory` at any depth, sorted, without hidden or system entries (see
    `is_hidden_or_system`; their folders are not entered) -> (files, number of entries skipped)."""
    files, skipped = [], 0
    for folder, dirs, names in os.walk(directory):
        kept = [d for d in dirs if not is_hidden_or_system(d)]
        skipped += len(dirs) - len(kept)
        dirs[:] = kept  # os.walk enters only these
        for name in names:
            if is_hidden_or_system(name):
                skipped += 1
            elif os.path.splitext(name)[1].lower() in suffixes:
                files.append(Path(folder) / name)
    return sorted(files), skipped


def list_image_folder(root: str | Path, with_files: bool = True) -> tuple[tuple[str, ...], list[Path], int]:
    """A folder with one subfolder of images per class -> (class names in sorted order, image files class by
    class, hidden or system entries skipped). Class names are the folder names, whatever they look like."""
    entries = list(Path(root).iterdir())
    skipped = sum(is_hidden_or_system(e.name) for e in entries)
    classes = tuple(sorted(e.name for e in entries if e.is_dir() and not is_hidden_or_system(e.name)))
    files = []
    for name in classes if with_files else ():
        found, hidden = find_images(Path(root) / name)
        files.extend(found)
        skipped += hidden
    return classes, files, skipped


def skipped_note(skipped: int, where: str | Path) -> str:
    """The note printed when hidden or system entries were left out of a folder."""
    return (f"skipped {skipped} hidden or system {'entry' if skipped == 1 else 'entries'} under {where} (names "
            f"starting with '.', __MACOSX, Thumbs.db, desktop.ini): not images")


def class_index(classes: Sequence[str]) -> dict[str, int]:
    """Class name -> label, built once (a dict lookup per file, not a search of the class list)."""
    return {name: i for i, name in enumerate(classes)}


def split_layout(root: str | Path) -> dict[str, Path] | None:
    """The split folders of an explicit layout (`train/` and `val/`, optionally `test/`, and nothing else beside
    them), or None for a single folder of class subfolders (cut into our own split)."""
    root = Path(root)
    names = {e.name for e in root.iterdir() if e.is_dir() and not is_hidden_or_system(e.name)}
    if not {"train", "val"} <= names or not names <= set(SPLIT_FOLDERS):
        return None
    return {name: root / name for name in SPLIT_FOLDERS if name in names}


def layout_split(root: str | Path, split: str) -> tuple[tuple[str, ...], list[Path], list[int], int]:
    """One split of an explicit layout -> (classes of train/, files, labels, entries skipped).

    'trainval' is train/ followed by val/. Classes are train/'s subfolders; val/ and test/ use the same indices.

    Raises:
        ValueError: no such split folder, or a class folder in val/ or test/ that train/ lacks.
    """
    folders = split_layout(root)
    parts = ("train", "val") if split == "trainval" else (split,)
    if folders is None or any(p not in folders for p in parts):
        have = ", ".join(f"{name}/" for name in (folders or {}))
        raise ValueError(f"{root} has no {split}/ folder (it has {have}): with an explicit layout the splits are "
                         f"its folders; use --split with one of them (val/ is the held-out split, as in ImageNet)")
    classes = list_image_folder(folders["train"], with_files=False)[0]
    index = class_index(classes)
    files, labels, skipped = [], [], 0
    for part in parts:
        found, _, hidden = list_image_folder(folders[part], with_files=False)
        skipped += hidden
        if extra := sorted(set(found) - set(index)):
            raise ValueError(f"{folders[part]} has class folder(s) {extra[:5]} that {folders['train']} lacks; every "
                             f"split needs train/'s classes")
        for name in found:
            images, more = find_images(folders[part] / name)
            files.extend(images)
            labels.extend([index[name]] * len(images))
            skipped += more
    return classes, files, labels, skipped


class ImageFolderDataset(Dataset):
    """One subfolder per class holding image files (any format PIL reads); resized and centre-cropped.

    Hidden and system entries are skipped (see `is_hidden_or_system`); `self.skipped` counts them (only those
    beside the class folders when `files` is given). `classes` and `labels` may be given with `files` (an
    explicit split layout, whose files lie one level deeper); else labels come from each file's class folder.
    """

    def __init__(self, root: str | Path, image_size: int, channels: int = 3, files: Sequence[Path] | None = None,
                 *, classes: Sequence[str] | None = None, labels: Sequence[int] | None = None):
        self.root, self.image_size, self.channels = Path(root), image_size, channels
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        if classes is None:
            self.classes, found, self.skipped = list_image_folder(self.root, with_files=files is None)
        else:
            self.classes, found, self.skipped = tuple(classes), [], 0
        files = found if files is None else files
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in class subfolders of {self.root}")
        self.files = list(files)
        if labels is None:
            index = class_index(self.classes)
            labels = [index[f.relative_to(self.root).parts[0]] for f in self.files]
        self.labels = torch.tensor(list(labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        """The image at its own size (C, H, W) in [0, 1] and its label (random-resized crops start here)."""
        # Files are read lazily (checking a large folder up front is too slow), so a broken one surfaces here.
        path = self.files[index]
        try:
            image = load_image(path, channels=self.channels)
        except ImageTooLargeError:
            raise  # its message names the file and the limit
        except (OSError, ValueError, SyntaxError) as err:
            raise ValueError(f"cannot read image {path}: {type(err).__name__}: {err}; remove or fix it") from err
        return image, int(self.labels[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.load(index)
        return resize(image[None], self.image_size)[0], label
