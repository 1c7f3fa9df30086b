"""Training metrics as CSV: append a row per log step, and cut rows past a resumed checkpoint.

Rows logged after the last checkpoint are dropped on resume (they are logged again), as is a row cut
short by a kill, so a resumed run's metrics.csv reads like an uninterrupted one.
"""

from __future__ import annotations

import csv
from pathlib import Path


def append_csv(path: Path, row: dict) -> None:
    """Append a row; a new column (e.g. GAN terms once the discriminator starts) rewrites the header."""
    rows = []
    if path.exists():
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    fields = list(dict.fromkeys([*(rows[0].keys() if rows else []), *row]))
    if rows and list(rows[0].keys()) == fields:
        with open(path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=fields).writerow(_format(row))
        return
    rows.append(_format(row))
    _write_csv(path, rows, fields)


def _format(row: dict) -> dict:
    return {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def truncate_csv(path: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint (they will be logged again) and a row cut short by a kill."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if None not in r and None not in r.values() and r["step"].isdigit()]
    if reader.fieldnames:
        _write_csv(path, [r for r in rows if int(r["step"]) <= step], list(reader.fieldnames))
