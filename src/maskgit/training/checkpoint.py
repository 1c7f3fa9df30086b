"""Crash-safe training checkpoints, without pickle (plain weight files are in `maskgit.weights`).

A checkpoint is a directory `step_XXXXXXXX/` holding one safetensors file per module, the tensors of
every optimizer / scheduler state, and `state.json` (counters, RNG states, data position, config and
the non-tensor parts of the optimizer states). It is written under a temporary name, fsynced, renamed,
and only then named by the `latest` pointer, so a SIGKILL at any moment leaves a loadable checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as save_bytes

from ..atomic import _fsync_dir, write_bytes_atomic
from ..config import config_differences, from_dict, to_dict
from ..weights import load_weights, read_safetensors, save_weights

STATE_FILE = "state.json"  # written last: its presence marks a complete checkpoint
LATEST = "latest"
# Config fields that change only logging, checkpointing or speed, never the trained weights: a resumed
# run may use other values. Every other field (max_steps included: the LR schedule decays to it) must match.
RESUME_FREE_FIELDS = frozenset({"log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "num_workers",
                                "num_threads"})


# ---------------------------------------------------------------------------------------------- nested states
def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Turn a nested state (optimizer / scheduler state_dict) into JSON, moving tensors into `tensors`.

    Tensors become {"__tensor__": key}, tuples {"__tuple__": [...]}, and dicts with non-string keys
    {"__items__": [[key, value], ...]}, so `unflatten_state` restores the exact structure and types.
    """
    if torch.is_tensor(obj):
        key = prefix or "tensor"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten_state(v, tensors, f"{prefix}.{k}" if prefix else k) for k, v in obj.items()}
        return {"__items__": [[k, flatten_state(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} without pickle")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten_state`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {k: unflatten_state(v, tensors) for k, v in obj["__items__"]}
        return {k: unflatten_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------- RNG states
def rng_state(tensors: dict[str, torch.Tensor]) -> dict:
    """Capture torch (CPU, CUDA), numpy and python RNG states; tensors go into `tensors`."""
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, py_state, py_gauss = random.getstate()
    return {"numpy": [kind, int(pos), int(has_gauss), float(gauss)], "python": [version, list(py_state), py_gauss],
            "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0}


def set_rng_state(meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available() and meta["cuda_devices"] == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([tensors[f"rng.cuda.{i}"] for i in range(meta["cuda_devices"])])
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_state, py_gauss = meta["python"]
    random.setstate((version, tuple(py_state), py_gauss))


# ---------------------------------------------------------------------------------------------- training state
def _step_dir(step: int) -> str:
    return f"step_{step:08d}"


def save_training_state(directory: str | os.PathLike, step: int, *, modules: dict[str, torch.nn.Module],
                        optimizers: dict[str, Any] | None = None, schedulers: dict[str, Any] | None = None,
                        config: dict | None = None, epoch: int = 0, data_position: int | None = None,
                        extra: dict | None = None, keep: int = 2) -> Path:
    """Write checkpoint `directory/step_XXXXXXXX/` atomically and point `directory/latest` at it.

    Args:
        modules: named modules; each becomes `<name>.safetensors` (strictly reloaded).
        optimizers, schedulers: named objects with state_dict(); tensors in safetensors, the rest JSON.
        config: the resolved config (JSON), saved beside the weights.
        data_position: where the data stream continues (default: `step`).
        extra: any JSON-serialisable values to return from `load_training_state`.
        keep: how many complete checkpoints to keep (older ones are deleted after the pointer moves).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / _step_dir(step)
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".{final.name}."))
    try:
        for name, module in modules.items():
            save_weights(module, tmp / f"{name}.safetensors")
        state_tensors: dict[str, torch.Tensor] = {}
        objects = {f"optimizer:{k}": v for k, v in (optimizers or {}).items()}
        objects.update({f"scheduler:{k}": v for k, v in (schedulers or {}).items()})
        states = {k: flatten_state(v.state_dict(), state_tensors, k) for k, v in objects.items()}
        rng = rng_state(state_tensors)
        write_bytes_atomic(tmp / "states.safetensors", save_bytes(state_tensors, metadata={"format": "pt"}))
        meta = {"step": step, "epoch": epoch, "data_position": step if data_position is None else data_position,
                "modules": sorted(modules), "states": states, "rng": rng, "config": config, "extra": extra or {}}
        write_bytes_atomic(tmp / STATE_FILE, json.dumps(meta).encode())
        if final.exists():  # a re-save of the same step (e.g. after a resume): replace it
            _discard(final)
        os.rename(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_bytes_atomic(directory / LATEST, final.name.encode())
    _prune(directory, keep)
    return final


def complete_checkpoints(directory: Path) -> list[Path]:
    """The complete checkpoints under `directory`, oldest first."""
    return sorted(p for p in directory.glob("step_*") if (p / STATE_FILE).is_file())


def _discard(path: Path) -> None:
    """Delete a checkpoint directory so that a kill at any moment never leaves a partial one under a final name.

    The directory is first renamed (atomic) to a hidden name that `_prune` sweeps, then deleted.
    """
    trash = path.with_name(f".{path.name}.discard")
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _prune(directory: Path, keep: int) -> None:
    for old in complete_checkpoints(directory)[:-keep] if keep > 0 else []:
        _discard(old)
    for stale in directory.glob(".step_*"):  # temporaries and discards of writes that were killed
        shutil.rmtree(stale, ignore_errors=True)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint `latest` points at, else the newest complete one, else None."""
    directory = Path(directory)
    pointer = directory / LATEST
    if pointer.is_file():
        target = directory / pointer.read_text().strip()
        if (target / STATE_FILE).is_file():
            return target
    found = complete_checkpoints(directory) if directory.is_dir() else []
    return found[-1] if found else None


def load_training_state(path: str | os.PathLike, *, modules: dict[str, torch.nn.Module],
                        optimizers: dict[str, Any] | None = None, schedulers: dict[str, Any] | None = None,
                        restore_rng: bool = True) -> dict:
    """Restore a `save_training_state` checkpoint in place.

    Returns:
        {"step", "epoch", "data_position", "config", "extra", "path"}.
    """
    path = Path(path)
    meta = read_checkpoint_meta(path)
    for name, module in modules.items():
        load_weights(module, path / f"{name}.safetensors")
    tensors, _ = read_safetensors(path / "states.safetensors")
    objects = {f"optimizer:{k}": v for k, v in (optimizers or {}).items()}
    objects.update({f"scheduler:{k}": v for k, v in (schedulers or {}).items()})
    for key, obj in objects.items():
        if key not in meta["states"]:
            raise ValueError(f"checkpoint {path} has no state for {key} (it has {sorted(meta['states'])})")
        obj.load_state_dict(unflatten_state(meta["states"][key], tensors))
    if restore_rng:
        set_rng_state(meta["rng"], tensors)
    return {"step": meta["step"], "epoch": meta["epoch"], "data_position": meta["data_position"],
            "config": meta["config"], "extra": meta["extra"], "path": path}


def stop_step(config_max_steps: int, max_steps: int | None) -> int:
    """Where a run stops: the config's max_steps, or earlier at `max_steps` (a library option for smoke tests:
    the LR schedule is unchanged; the CLI's --max-steps instead sets the run length, see `run_config`)."""
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {max_steps} (it stops the run early; leave it out to "
                         f"train the config's max_steps = {config_max_steps})")
    return config_max_steps if max_steps is None else min(config_max_steps, max_steps)


def read_checkpoint_meta(path: str | os.PathLike) -> dict:
    """The JSON part of a checkpoint (step, config, extra, ...) without loading any tensor."""
    meta_path = Path(path) / STATE_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {STATE_FILE})")
    return json.loads(meta_path.read_text())


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
    raise ValueError(f"{run} holds a run started with other settings ({checkpoint.name}): {listed}. "
                     f"{hint}Use a new --out for the new settings, delete {run} to start over, or rerun with "
                     f"the original settings to resume (only {', '.join(free_here)} may differ).")
