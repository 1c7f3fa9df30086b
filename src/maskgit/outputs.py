"""Output paths, checked before any work: nothing existing is replaced unless asked, and a path that
cannot be written (a file where a directory is needed, a directory where a file is needed, a
read-only place, two outputs with the same name, a model, tokenizer or classifier directory or the
bundled models) is refused with a message that says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .bundled import PRETRAINED_DIR

# A directory holding one of these weight files is a saved model (save_pretrained, `train`'s final/, a training
# checkpoint), tokenizer or judge classifier: outputs never go into it or below it.
WEIGHT_KINDS = {"transformer.safetensors": "model", "tokenizer.safetensors": "tokenizer",
                "classifier.safetensors": "classifier", "model.safetensors": "model"}


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def directory_kind(directory: str | os.PathLike) -> str | None:
    """'model', 'tokenizer' or 'classifier' for a directory holding that kind of weights, else None."""
    directory = Path(directory)
    kinds = [kind for name, kind in WEIGHT_KINDS.items() if (directory / name).is_file()]
    return kinds[0] if kinds else None  # a model directory holds the tokenizer's weights too


def _check_not_a_model_directory(directory: Path, replacing: str | None) -> None:
    """Refuse writing into (or below) a model, tokenizer or classifier directory, or the bundled models' folder;
    `replacing` allows `directory` itself when it holds that kind (a judge retrained in place)."""
    directory = directory.resolve()
    if directory == PRETRAINED_DIR or PRETRAINED_DIR in directory.parents:
        raise ValueError(f"{directory} lies in the installed package's bundled models ({PRETRAINED_DIR}); write "
                         f"outputs elsewhere")
    for folder in [directory, *directory.parents]:
        kind = directory_kind(folder)
        if kind is not None and not (folder == directory and kind == replacing):
            where = f"is a {kind} directory" if folder == directory else f"lies inside the {kind} directory {folder}"
            raise ValueError(f"{directory} {where}; commands never write into a model, tokenizer or classifier "
                             f"directory: write outputs elsewhere")


def check_writable(paths: Sequence[str | os.PathLike], overwrite: bool, *, replacing: str | None = None) -> None:
    """Refuse outputs that exist (unless `overwrite`), collide, cannot be created, or would go into a model,
    tokenizer or classifier directory (except into one of kind `replacing`, which these outputs make); call before
    any work."""
    paths = [Path(p) for p in paths]
    seen: set[Path] = set()
    for directory in {path.parent.resolve() for path in paths}:
        _check_not_a_model_directory(directory, replacing)
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise ValueError(f"two outputs would be written to {path}; give the inputs distinct file names")
        seen.add(key)
        if path.is_dir():
            raise IsADirectoryError(f"output {path} is a directory; remove it or choose another output path")
        anchor = _nearest_existing(path.parent)
        if not anchor.is_dir():
            raise NotADirectoryError(f"cannot create {path}: {anchor} is a file, not a directory; "
                                     f"choose another output path")
        if not os.access(anchor, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write {path}: {anchor} is not writable; choose another output path")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{len(existing)} output file(s) exist already (first: {existing[0]}); "
                              f"choose another output directory or pass --overwrite")


def check_output_dir(out: str | os.PathLike, *, replacing: str | None = None) -> Path:
    """An output directory: it may exist (as a directory) or be creatable, and is no model directory."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a directory")
    check_writable([out / ".maskgit-write-check"], overwrite=True, replacing=replacing)
    return out


def result_paths(out: str | os.PathLike, overwrite: bool, *,
                 inputs: Sequence[str | os.PathLike] = ()) -> tuple[Path, Path]:
    """The JSON results file `out` and the PNG beside it, checked; `inputs` are directories never written into."""
    out = Path(out)
    if out.suffix.lower() != ".json":
        raise ValueError(f"--out {out} must name a .json file (a .png of the same name is written beside it)")
    for directory in inputs:
        directory = Path(directory).resolve()
        if directory.is_dir() and directory in out.resolve().parents:
            raise ValueError(f"--out {out} lies inside the input directory {directory}; write results elsewhere")
    png = out.with_suffix(".png")
    check_writable([out, png], overwrite)
    return out, png
