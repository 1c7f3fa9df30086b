"""Training metrics as CSV: append a row per log step, and cut rows past a resumed checkpoint.

Rows logged after the last checkpoint are dropped on resume (they are logged again), as is a row cut
short by a kill, so a resumed run's metrics.csv reads like an uninterrupted one.
"""

from __future__ import annotations

import csv
from pathlib import Path


def _read(path: Path) -> tuple[list[dict], list[str]]:
    """(rows, header) of a log; a ValueError naming the file when it is not a metrics CSV (never rewritten)."""
    if not path.exists():
        return [], []
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows, fields = list(reader), list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"metrics log {path} cannot be read ({err}); move it aside and rerun (training does not "
                         f"need it)") from None
    if fields and "step" not in fields:
        raise ValueError(f"metrics log {path} has no step column (its header is {fields[:6]}); move it aside and "
                         f"rerun (training does not need it)")
    return rows, fields


def append_csv(path: Path, row: dict) -> None:
    """Append a row; a new column (e.g. GAN terms once the discriminator starts) rewrites the header."""
    rows, _ = _read(path)
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
    rows, fields = _read(path)
    rows = [r for r in rows if None not in r and None not in r.values() and r["step"].isdigit()]
    if fields:
        _write_csv(path, [r for r in rows if int(r["step"]) <= step], fields)
