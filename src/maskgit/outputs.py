"""Output paths, checked before any work: nothing existing is replaced unless asked, and a path that
cannot be written (a file where a directory is needed, a directory where a file is needed, a
read-only place, two outputs with the same name) is refused with a message that says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def check_writable(paths: Sequence[str | os.PathLike], overwrite: bool) -> None:
    """Refuse outputs that exist (unless `overwrite`), collide, or cannot be created; call before any work."""
    paths = [Path(p) for p in paths]
    seen: set[Path] = set()
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


def check_output_dir(out: str | os.PathLike) -> Path:
    """An output directory: it may exist (as a directory) or be creatable."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a directory")
    check_writable([out / ".maskgit-write-check"], overwrite=True)
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
