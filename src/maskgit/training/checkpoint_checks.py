"""Reading and checking a checkpoint without loading its tensors: the files a checkpoint holds, the shape of its
`state.json`, whether its weight files are whole, and whether a run's config (and data) may resume it.

A file that cannot be read raises a `CheckpointError` naming it; `checkpoint.py` writes and loads checkpoints
and uses these checks to pick the one a run resumes from.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from ..config import config_differences, from_dict, to_dict

STATE_FILE = "state.json"  # written last: its presence marks a complete checkpoint
STATES_FILE = "states.safetensors"  # the tensors of the optimizer / scheduler and RNG states
# Config fields that change only logging, checkpointing or speed, never the trained weights: a resumed
# run may use other values. Every other field (max_steps included: the LR schedule decays to it) must match.
RESUME_FREE_FIELDS = frozenset({"log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "num_workers",
                                "num_threads"})


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: the message names the file and the reason, on one line."""


@contextlib.contextmanager
def reading(file: Path):
    """Turn any error while reading `file` into a one-line `CheckpointError` that names it."""
    try:
        yield
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError) as err:
        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
            raise  # permissions, a full disk: not the checkpoint's fault
        text = str(err).replace(f"{file} ", "").removeprefix("is ")  # messages of `maskgit.weights` name it
        kind = {json.JSONDecodeError: "not JSON: ", UnicodeDecodeError: "not text: ", ValueError: "",
                KeyError: "missing ", FileNotFoundError: ""}.get(type(err), f"{type(err).__name__}: ")
        if isinstance(err, FileNotFoundError):
            text = "missing"
        raise CheckpointError(f"cannot read checkpoint file {file}: {kind}{text}".replace("\n", " ")) from err


# The fields of state.json and their JSON types (config and extra may be missing in older checkpoints).
_META_FIELDS = {"step": int, "epoch": int, "data_position": int, "modules": list, "states": dict, "rng": dict}
_OPTIONAL_FIELDS = {"config": (dict, type(None)), "extra": (dict, type(None))}


def read_checkpoint_meta(path: str | os.PathLike) -> dict:
    """The JSON part of a checkpoint (step, config, extra, ...) without loading any tensor.

    Raises:
        FileNotFoundError: no state.json (not a complete checkpoint).
        CheckpointError: a state.json that is not JSON, or not of the shape `save_training_state` writes.
    """
    meta_path = Path(path) / STATE_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {STATE_FILE})")
    with reading(meta_path):
        meta = json.loads(meta_path.read_bytes().decode())
        if not isinstance(meta, dict):
            raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
        missing = sorted(set(_META_FIELDS) - set(meta))
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        for name, kind in {**_META_FIELDS, **_OPTIONAL_FIELDS}.items():
            if name in meta and (not isinstance(meta[name], kind) or isinstance(meta[name], bool)):
                raise ValueError(f"{name} is {meta[name]!r}, not {getattr(kind, '__name__', 'an object')}")
        if not all(isinstance(m, str) for m in meta["modules"]):
            raise ValueError(f"modules is {meta['modules']!r}, not a list of names")
        if not all(isinstance(s, dict) for s in meta["states"].values()):
            raise ValueError("an optimizer or scheduler state is not a JSON object")
        _check_rng_meta(meta["rng"])
    return meta


def _check_rng_meta(rng: dict) -> None:
    """The non-tensor RNG states as `rng_state` writes them: numpy [kind, pos, has_gauss, gauss], python
    [version, 625 ints, gauss or null], cuda_devices."""
    numpy, python = rng.get("numpy"), rng.get("python")
    if not (isinstance(numpy, list) and len(numpy) == 4 and isinstance(numpy[0], str)
            and all(isinstance(v, (int, float)) for v in numpy[1:])):
        raise ValueError(f"rng.numpy is {numpy!r}, not [kind, pos, has_gauss, gauss]")
    if not (isinstance(python, list) and len(python) == 3 and isinstance(python[1], list)
            and all(isinstance(v, int) for v in python[1])):
        raise ValueError("rng.python is not [version, state, gauss]")
    if not isinstance(rng.get("cuda_devices"), int):
        raise ValueError(f"rng.cuda_devices is {rng.get('cuda_devices')!r}, not an int")


def check_checkpoint(path: str | os.PathLike) -> dict:
    """`read_checkpoint_meta`, and every weight file it lists is whole (from the headers, no tensor is read).

    Raises:
        CheckpointError: naming the first file that cannot be read.
    """
    path = Path(path)
    meta = read_checkpoint_meta(path)
    for file in [path / f"{name}.safetensors" for name in meta["modules"]] + [path / STATES_FILE]:
        with reading(file):
            _check_safetensors_size(file)
    return meta


def _check_safetensors_size(file: Path) -> None:
    """Raise a ValueError unless `file` is a safetensors header followed by exactly the bytes it describes."""
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= size - 8:
            raise ValueError(f"not a safetensors file ({size} bytes, truncated or foreign)")
        header = json.loads(fh.read(length))
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    if size != 8 + length + max(ends, default=0):
        raise ValueError(f"{size} bytes where the header describes {8 + length + max(ends, default=0)} (truncated?)")


def check_resume(checkpoint: str | os.PathLike, config: Any, *, identity: dict | None = None,
                 free: frozenset[str] = RESUME_FREE_FIELDS) -> None:
    """Refuse to resume `checkpoint` under a config (or data) other than the one that wrote it.

    Args:
        config: the new resolved config dataclass; compared with the checkpoint's field by field, except
            for the top-level `free` fields.
        identity: other values the run depends on (e.g. a dataset fingerprint), compared with the
            checkpoint's `extra` entries of the same names (entries it lacks are not compared).
    Raises:
        ValueError: naming every differing field and saying how to go on.
    """
    checkpoint = Path(checkpoint)
    meta = read_checkpoint_meta(checkpoint)
    stored = meta.get("config")
    diffs = []
    if stored is not None:
        try:  # fill in fields added since the checkpoint was written with their defaults
            stored = to_dict(from_dict(type(config), stored))
        except ValueError:
            pass
        diffs = [d for d in config_differences(stored, to_dict(config)) if d[0] not in free]
    extra = meta.get("extra") or {}
    diffs += [(name, extra[name], value) for name, value in (identity or {}).items()
              if name in extra and extra[name] != value]
    if not diffs:
        return
    run = checkpoint.parent.parent
    free_here = sorted(name for name in free if name in to_dict(config))
    listed = "; ".join(f"{name}: {old!r} in the checkpoint, {new!r} now" for name, old, new in diffs)
    hint = ("max_steps cannot change on resume because the learning-rate schedule decays to it, so a "
            "different max_steps is a different run (--max-steps and --epochs set it and rescale the warm-up, so "
            "they must be given as in the original command). "
            if any(name == "max_steps" for name, _, _ in diffs) else "")
    saved = run / "train_config.json"
    original = (f" (they are in {saved}: pass that file as --config, without --max-steps or --epochs)"
                if saved.is_file() and stored is not None else "")
    raise ValueError(f"{run} holds a run started with other settings ({checkpoint.name}): {listed}. "
                     f"{hint}Use a new --out for the new settings, delete {run} to start over, or rerun with "
                     f"the original settings to resume{original} (only {', '.join(free_here)} may differ).")
