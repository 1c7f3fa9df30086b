"""The models shipped inside the package (`src/maskgit/pretrained/`): where they are, their names, and how a
name or a path becomes a directory.

Defined once here, without torch, so that the command line can resolve bundled names while it parses
arguments and the pipeline, the judge classifier and the output checks share the one location.
"""

from __future__ import annotations

from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"  # the bundled models, part of the package
CONFIG_NAME = "config.json"  # what makes a directory a saved model (save_pretrained)


def bundled_models() -> list[str]:
    """Names accepted by `MaskGIT.from_pretrained` without a path (shipped inside the package)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def bundled_or_path(name_or_path: str | Path, file_name: str) -> Path:
    """`name_or_path` as a directory: itself when it holds `file_name`, else the bundled model of that name if
    there is one, else itself (the caller reports what is missing)."""
    directory = Path(name_or_path)
    if not (directory / file_name).is_file() and str(name_or_path) in bundled_models():
        return PRETRAINED_DIR / str(name_or_path)
    return directory

