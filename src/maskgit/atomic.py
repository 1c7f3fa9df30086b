"""Crash-safe file writes: a temporary file in the same directory, fsync, then a rename.

A process killed at any moment leaves either the old file or the new one, never half of one.
Every file maskgit writes (weights, checkpoints, JSON, PNG) goes through here; so do whole directories
(`write_dir_atomic`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    return 0o666 & ~_umask()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (parent directories are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _default_mode())  # mkstemp creates 0600 files; give them the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as indented, key-sorted JSON, atomically."""
    return write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def write_dir_atomic(path: str | os.PathLike, fill: Callable[[Path], Any]) -> Path:
    """Create directory `path` by `fill(tmp)` on a hidden sibling, then swap it in (replacing an old one).

    A kill at any moment leaves the old directory or the new one under `path`, never half of one; the
    replaced directory is renamed away before it is deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700 directories
        fill(tmp)
        if path.exists():
            old = tmp.with_suffix(".old")
            os.replace(path, old) if path.is_file() else os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.rename(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
