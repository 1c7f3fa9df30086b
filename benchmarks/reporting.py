"""What the benchmark scripts write, and how: a result stem (`--out`, `--overwrite`) checked before any work, the
JSON + Markdown + PNG beside it, and matplotlib figures drawn off-screen.

The scripts import it as a sibling module (`python benchmarks/NAME.py` puts benchmarks/ on the path).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from maskgit.atomic import write_bytes_atomic, write_json_atomic
from maskgit.outputs import result_paths

STEM_HELP = "result stem: writes .json, .md and .png"


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported only when a script draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Lay `fig` out, write it to `path` as a PNG and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def add_result_args(parser: argparse.ArgumentParser) -> None:
    """--out (the result stem) and --overwrite."""
    parser.add_argument("--out", type=Path, required=True, help=STEM_HELP)
    parser.add_argument("--overwrite", action="store_true")


def result_files(stem: Path, overwrite: bool) -> tuple[Path, Path]:
    """(stem.json, stem.png), refused before any work when they exist and `overwrite` is not set."""
    return result_paths(stem.with_suffix(".json"), overwrite)


def write_results(out: Path, result: dict, markdown: str, plot: Callable[[Path], None]) -> None:
    """`result` as JSON at `out`, `markdown` beside it (.md), the figure `plot(path)` draws (.png); then the
    markdown is printed."""
    write_json_atomic(out, result)
    write_bytes_atomic(out.with_suffix(".md"), markdown.encode())
    plot(out.with_suffix(".png"))
    print(markdown)
