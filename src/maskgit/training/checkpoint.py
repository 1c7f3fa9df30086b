"""Crash-safe training checkpoints, without pickle (plain weight files are in `maskgit.weights`).

A checkpoint is a directory `step_XXXXXXXX/` holding one safetensors file per module, the tensors of
every optimizer / scheduler state, and `state.json` (counters, RNG states, data position, config and
the non-tensor parts of the optimizer states). It is written under a temporary name, fsynced, renamed,
and only then named by the `latest` pointer, so a SIGKILL at any moment leaves a loadable checkpoint.
A file that cannot be read anyway (disk damage, hand edits) raises a `CheckpointError` naming it; a resumed run
then starts from the newest checkpoint that can be read, keeping the broken one as `unreadable_step_XXXXXXXX/`.
The checks that need no tensor (state.json's shape, whole files, a config that may resume) are in
`checkpoint_checks.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import save as save_bytes

from ..atomic import _fsync_dir, write_bytes_atomic
from ..weights import load_weights, read_safetensors, save_weights
from .checkpoint_checks import (
    STATE_FILE,
    STATES_FILE,
    CheckpointError,
    check_checkpoint,
    check_resume,
    read_checkpoint_meta,
    reading,
)

LATEST = "latest"
UNREADABLE = "unreadable_"  # prefix of a checkpoint set aside because a file of it cannot be read
_STEP_DIR = re.compile(r"step_(\d+)")


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
    _prune(directory, keep, step)
    return final


def complete_checkpoints(directory: Path) -> list[Path]:
    """The complete checkpoints under `directory`, oldest first."""
    found = [p for p in directory.glob("step_*") if _STEP_DIR.fullmatch(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=_step_of)


def _step_of(path: Path) -> int:
    return int(_STEP_DIR.fullmatch(path.name).group(1))


def _discard(path: Path) -> None:
    """Delete a checkpoint directory so that a kill at any moment never leaves a partial one under a final name.

    The directory is first renamed (atomic) to a hidden name that `_prune` sweeps, then deleted.
    """
    trash = path.with_name(f".{path.name}.discard")
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _prune(directory: Path, keep: int, step: int) -> None:
    """Keep the `keep` newest checkpoints up to `step` (the one just written). Newer ones are never deleted: they
    belong to a run that resumed past them (`resume_checkpoint` sets unreadable ones aside)."""
    older = [p for p in complete_checkpoints(directory) if _step_of(p) < step]
    for old in older[:max(0, len(older) - keep + 1)] if keep > 0 else []:
        _discard(old)
    for stale in directory.glob(".step_*"):  # temporaries and discards of writes that were killed
        shutil.rmtree(stale, ignore_errors=True)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint `latest` points at, else the newest complete one, else None."""
    found = _candidates(Path(directory))
    return found[0] if found else None


def _candidates(directory: Path) -> list[Path]:
    """Complete checkpoints in the order a run tries them: the `latest` pointer's, then the newest first."""
    found = complete_checkpoints(directory)[::-1] if directory.is_dir() else []
    try:
        name = (directory / LATEST).read_bytes().decode().strip()
    except (OSError, UnicodeDecodeError):  # no pointer, or a damaged one: the directory names say enough
        name = ""
    first = [p for p in found if p.name == name]
    return first + [p for p in found if p.name != name]


def resume_checkpoint(directory: str | os.PathLike, config: Any = None, *, identity: dict | None = None,
                      skip: dict[Path, str] | None = None, log: Callable[[str], Any] = print) -> Path | None:
    """The checkpoint a run in `directory` resumes from: the latest whose files can be read (see
    `check_checkpoint`), checked against `config` and `identity` (see `check_resume`; skipped without a config).

    Checkpoints that cannot be read (and those in `skip`, path -> reason) are renamed `unreadable_step_XXXXXXXX`,
    never deleted, with a note through `log` naming the file and the reason. Returns None for no checkpoint.

    Raises:
        CheckpointError: there are checkpoints but none can be read (nothing is renamed then).
    """
    directory = Path(directory)
    problems = dict(skip or {})
    for path in _candidates(directory):
        if path in problems:
            continue
        try:
            check_checkpoint(path)
        except CheckpointError as err:
            problems[path] = str(err)
            continue
        if config is not None:
            check_resume(path, config, identity=identity)  # a refusal leaves the directory as it was
        for bad, reason in problems.items():
            kept = _set_aside(bad)
            log(f"note: {reason}; the checkpoint is kept as {kept}; resuming from {path.name}, the newest one that "
                f"can be read")
        return path
    if not problems:
        return None
    newest, *others = problems.values()
    raise CheckpointError(f"no checkpoint in {directory} can be read: {newest}"
                          + (f" ({len(others)} earlier one(s) cannot be read either)" if others else "")
                          + f"; fix the file, or delete {directory} to start over")


def load_resumable_state(path: str | os.PathLike, config: Any = None, *, modules: dict[str, torch.nn.Module],
                         optimizers: dict[str, Any] | None = None, identity: dict | None = None,
                         log: Callable[[str], Any] = print) -> dict:
    """`load_training_state` of `path` (from `resume_checkpoint`), or, when a file of it turns out unreadable (a
    weight of the wrong shape, say), of the next checkpoint `resume_checkpoint` finds.

    Returns:
        as `load_training_state`; "path" is the checkpoint loaded.
    """
    path, problems = Path(path), {}
    while True:
        try:
            return load_training_state(path, modules=modules, optimizers=optimizers)
        except CheckpointError as err:
            problems[path] = str(err)
        path = resume_checkpoint(path.parent, config, identity=identity, skip=problems, log=log)


def _set_aside(path: Path) -> Path:
    """Rename a checkpoint that cannot be read out of the rotation, keeping its files; returns the new path."""
    target, n = path.with_name(UNREADABLE + path.name), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{UNREADABLE}{path.name}-{n}")
    with contextlib.suppress(FileNotFoundError):  # another process of the run set it aside first
        os.rename(path, target)
    return target


def load_training_state(path: str | os.PathLike, *, modules: dict[str, torch.nn.Module],
                        optimizers: dict[str, Any] | None = None, schedulers: dict[str, Any] | None = None,
                        restore_rng: bool = True) -> dict:
    """Restore a `save_training_state` checkpoint in place.

    Returns:
        {"step", "epoch", "data_position", "config", "extra", "path"}.
    Raises:
        CheckpointError: a file that is missing, cut short, not what it should be, or of other shapes than the
            modules and optimizers (they may be partly restored then: load another checkpoint or start over).
    """
    path = Path(path)
    meta = read_checkpoint_meta(path)
    for name, module in modules.items():
        with reading(path / f"{name}.safetensors"):
            load_weights(module, path / f"{name}.safetensors")
    with reading(path / STATES_FILE):
        tensors, _ = read_safetensors(path / STATES_FILE)
    objects = {f"optimizer:{k}": v for k, v in (optimizers or {}).items()}
    objects.update({f"scheduler:{k}": v for k, v in (schedulers or {}).items()})
    for key, obj in objects.items():
        if key not in meta["states"]:
            raise CheckpointError(f"cannot read checkpoint file {path / STATE_FILE}: it has no state for {key} (it "
                                  f"has {sorted(meta['states'])})")
        with reading(path / STATES_FILE):  # the tensors are there, the structure in state.json
            state = unflatten_state(meta["states"][key], tensors)
            if isinstance(obj, torch.optim.Optimizer):
                _check_optimizer_state(obj, state)
            obj.load_state_dict(state)
    if restore_rng:
        with reading(path / STATES_FILE):
            set_rng_state(meta["rng"], tensors)
    return {"step": meta["step"], "epoch": meta["epoch"], "data_position": meta["data_position"],
            "config": meta.get("config"), "extra": meta.get("extra") or {}, "path": path}


def _check_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Refuse a stored optimizer state whose per-parameter tensors do not have their parameter's shape (torch
    would load it and fail, or silently broadcast, at the next step)."""
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    saved_sizes = [len(g["params"]) for g in state["param_groups"]]
    if saved_sizes != sizes:
        raise ValueError(f"optimizer parameter groups of {saved_sizes} parameters, the model's of {sizes}")
    params = {}
    for group, saved in zip(optimizer.param_groups, state["param_groups"]):
        params.update(zip(saved["params"], group["params"]))
    for pid, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != params[pid].shape:
                raise ValueError(f"optimizer state {name} of parameter {pid} has shape {tuple(value.shape)}, the "
                                 f"parameter {tuple(params[pid].shape)}")


def stop_step(config_max_steps: int, max_steps: int | None) -> int:
    """Where a run stops: the config's max_steps, or earlier at `max_steps` (a library option for smoke tests:
    the LR schedule is unchanged; the CLI's --max-steps instead sets the run length, see `run_config`)."""
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {max_steps} (it stops the run early; leave it out to "
                         f"train the config's max_steps = {config_max_steps})")
    return config_max_steps if max_steps is None else min(config_max_steps, max_steps)
