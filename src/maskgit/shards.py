"""WebDataset tar shards of an image folder, for clusters: few large files instead of a million small ones.

`write_shards` copies each image file's bytes (no re-encoding: the pixels are the folder's) into tar shards of
`shard_size` samples per split (`train-000000.tar`, ...; sample `<key>.<ext>` + `<key>.cls`, the `webdataset`
convention) and writes `shards.json` beside them: classes, per-shard counts and labels, image sizes. A killed
write resumes at the first missing shard. `ShardDataset` reads a split by index (from a member index built once
per shard and process), so the resumable samplers and the token cache work on shards as on folders;
`stream_shards` is the plain `webdataset` pipeline (whole shards per process and DataLoader worker) for
sequential reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .atomic import write_json_atomic
from .images import load_image, resize

INDEX_FILE = "shards.json"
FORMAT = "maskgit-shards/1"


def _webdataset():
    try:
        import webdataset
    except ImportError:
        raise ImportError("writing or streaming shards needs the webdataset package: pip install 'maskgit[shards]' "
                          "(reading them with ShardDataset does not)") from None
    return webdataset


def is_shard_directory(path: str | Path) -> bool:
    """True for a directory written by `write_shards` (it holds shards.json)."""
    return (Path(path) / INDEX_FILE).is_file()


def read_index(directory: str | Path) -> dict:
    """The parsed shards.json of a shard directory (ValueError naming it when it is not one of ours)."""
    path = Path(directory) / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read ({type(err).__name__}: {err}); write the shards again") from None
    if index.get("format") != FORMAT:
        raise ValueError(f"{path} is not a maskgit shard index (format {index.get('format')!r}, want {FORMAT!r})")
    return index


def _source_splits(source: Path) -> dict:
    """split -> ImageFolderDataset of the folder's own split (explicit layout) or of our cut of it."""
    from .data import build_dataset
    from .image_folders import split_layout

    names = list(split_layout(source) or {}) or ["train", "val", "test"]
    return {name: build_dataset(str(source), name, image_size=1) for name in names}  # image_size: never read here


def _plan_hash(splits: dict, shard_size: int) -> str:
    h = hashlib.sha256(f"{FORMAT}:{shard_size}".encode())
    for name, ds in splits.items():
        for path, label in zip(ds.files, ds.labels.tolist()):
            stat = path.stat()
            h.update(f"{name}:{path.relative_to(ds.root)}:{stat.st_size}:{stat.st_mtime_ns}:{label}".encode())
    return h.hexdigest()[:16]


def write_shards(source: str | Path, out: str | Path, *, shard_size: int = 1000, progress: bool = True,
                 overwrite: bool = False) -> dict:
    """Write an image folder's splits as tar shards in `out` (see the module docstring); returns the index.

    Args:
        source: a folder of class subfolders (its train / val / test cut of `maskgit.data.split_indices` is
            written) or an explicit layout with train/ and val/ (written as given).
        overwrite: write again over a finished set of shards in `out` (else refused).
        shard_size: samples per shard (ImageNet's 1.28M images at ~110 kB: 1000 gives ~1,281 shards of ~110 MB).
    Rerunning after a kill keeps the shards already written (each is written under a temporary name, then
    renamed) when the folder has not changed; `out/shards.json` is written last.
    """
    from .data_fit import inspect_image

    wds = _webdataset()

    from .outputs import check_output_dir

    source, out = Path(source), check_output_dir(out)  # never into a model directory
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if (out / INDEX_FILE).is_file() and not (out / "progress.json").is_file() and not overwrite:  # finished
        raise FileExistsError(f"{out} holds a finished set of shards ({INDEX_FILE}); choose another --out or pass "
                              f"--overwrite to write them again")
    splits = _source_splits(source)
    out.mkdir(parents=True, exist_ok=True)
    plan = _plan_hash(splits, shard_size)
    progress_file = out / "progress.json"
    keep = progress_file.is_file() and json.loads(progress_file.read_text()).get("plan") == plan
    write_json_atomic(progress_file, {"plan": plan})
    index = {"format": FORMAT, "source": str(source.resolve()), "classes": list(splits["train"].classes),
             "splits": {}, "sizes": {}, "channels": 1, "with_alpha": 0}
    sizes, total = Counter(), sum(len(ds) for ds in splits.values())
    bar = tqdm(total=total, desc="shards", disable=not progress)
    for name, ds in splits.items():
        entries = []
        for first in range(0, len(ds), shard_size):
            files, labels = ds.files[first:first + shard_size], ds.labels[first:first + shard_size].tolist()
            shard = out / f"{name}-{first // shard_size:06d}.tar"
            for path in files:  # the image facts describe_data needs, from the headers
                size, colour, alpha = inspect_image(path)
                sizes[size] += 1
                index["channels"] = 3 if colour else index["channels"]
                index["with_alpha"] += alpha
            if not (keep and shard.is_file()):
                tmp = shard.with_suffix(".tar.tmp")
                with open(tmp, "wb") as fh, wds.TarWriter(fh, mtime=0) as writer:
                    for i, (path, label) in enumerate(zip(files, labels)):
                        writer.write({"__key__": f"{name}-{first + i:08d}", _extension(path): path.read_bytes(),
                                      "cls": label})
                tmp.replace(shard)
            entries.append({"file": shard.name, "count": len(files), "labels": labels})
            bar.update(len(files))
        index["splits"][name] = {"count": len(ds), "shards": entries}
    bar.close()
    index["sizes"] = {f"{w}x{h}": n for (w, h), n in sorted(sizes.items())}
    write_json_atomic(out / INDEX_FILE, index)
    progress_file.unlink()
    return index


def _extension(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def split_shards(index: dict, split: str) -> list[dict]:
    """The shard entries of `split` ('trainval': train's, then val's)."""
    parts = ("train", "val") if split == "trainval" else (split,)
    missing = [p for p in parts if p not in index["splits"]]
    if missing:
        raise ValueError(f"the shards hold splits {sorted(index['splits'])}, not {missing[0]!r}")
    return [entry for part in parts for entry in index["splits"][part]["shards"]]


def tar_members(path: str | Path) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """(key, {extension: (data offset, size)}) per sample of a tar shard, in file order (headers only)."""
    samples: dict[str, dict[str, tuple[int, int]]] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile():
                key, _, ext = member.name.partition(".")
                samples.setdefault(key, {})[ext] = (member.offset_data, member.size)
    return list(samples.items())


class ShardDataset(Dataset):
    """One split of a shard directory as a map-style dataset: (float (C, size, size) in [0, 1], label).

    Reads are `os.pread` at the member's offset (safe in forked DataLoader workers); each process builds the
    member index of a shard the first time it reads from it.
    """

    def __init__(self, directory: str | Path, split: str, image_size: int, channels: int = 3):
        self.root, self.split, self.image_size, self.channels = Path(directory), split, image_size, channels
        self.index = read_index(self.root)
        self.classes = tuple(self.index["classes"])
        self.shards = split_shards(self.index, split)
        self.offsets = np.cumsum([0] + [s["count"] for s in self.shards])
        self.labels = torch.tensor([label for s in self.shards for label in s["labels"]], dtype=torch.long)
        self._members: dict[int, list] = {}
        self._fds: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _read(self, shard: int, offset: int, size: int) -> bytes:
        key = (os.getpid(), shard)  # a forked worker opens its own descriptor
        if key not in self._fds:
            self._fds[key] = os.open(self.root / self.shards[shard]["file"], os.O_RDONLY)
        return os.pread(self._fds[key], size, offset)

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        """The image at its own size (C, H, W) in [0, 1] and its label."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        shard = int(np.searchsorted(self.offsets, index, side="right")) - 1
        if shard not in self._members:
            self._members[shard] = tar_members(self.root / self.shards[shard]["file"])
        key, members = self._members[shard][index - int(self.offsets[shard])]
        ext = next(e for e in members if e != "cls")
        data = self._read(shard, *members[ext])
        name = f"{self.shards[shard]['file']}:{key}.{ext}"
        try:
            image = load_image(name, channels=self.channels, data=data)
        except (OSError, ValueError, SyntaxError) as err:
            raise ValueError(f"cannot read image {name}: {type(err).__name__}: {err}; write the shards again") from err
        return image, int(self.labels[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.load(index)
        return resize(image[None], self.image_size)[0], label

    def fingerprint(self) -> str:
        """A hash of the index and each shard's name, size and modification time (as image folders are hashed)."""
        h = hashlib.sha256((self.root / INDEX_FILE).read_bytes())
        h.update(f"{self.split}:{self.image_size}:{self.channels}".encode())
        for entry in self.shards:
            stat = (self.root / entry["file"]).stat()
            h.update(f"{entry['file']}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return h.hexdigest()[:16]

    def __getstate__(self) -> dict:  # descriptors stay with the process that opened them
        return {**self.__dict__, "_fds": {}}

    def __del__(self):
        for (pid, _), fd in getattr(self, "_fds", {}).items():
            if pid == os.getpid():
                os.close(fd)


def stream_shards(directory: str | Path, split: str, image_size: int, channels: int = 3):
    """The `webdataset` pipeline over a split's shards: (image (C, size, size), label) in shard order, whole shards
    per process (`split_by_node`) and DataLoader worker (`split_by_worker`); for sequential reading at speed."""
    wds = _webdataset()
    directory = Path(directory)
    urls = [str(directory / entry["file"]) for entry in split_shards(read_index(directory), split)]

    def decode(sample: dict) -> tuple[torch.Tensor, int]:
        ext = next(k for k in sample if not k.startswith("__") and k != "cls")
        image = load_image(f"{sample['__url__']}:{sample['__key__']}.{ext}", channels=channels, data=sample[ext])
        return resize(image[None], image_size)[0], int(sample["cls"])

    return wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node,
                          workersplitter=wds.split_by_worker, empty_check=False).map(decode)
