"""Plain weight files: a module's state dict as safetensors, written atomically, loaded strictly.

Below the networks and the training package: `vq/`, `evaluation/`, `pipeline` and `training/` all
read and write weights through here. Tied weights are stored once and restored by alias. Nothing is
unpickled.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from .atomic import write_bytes_atomic


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; a clear ValueError for a truncated or foreign file."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    data = path.read_bytes()
    try:
        tensors = load_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable safetensors file (truncated or foreign?): {err}") from err
    return tensors, metadata


def _unique_tensors(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop tensors that share storage with an earlier key (tied weights); returns (tensors, alias -> key)."""
    seen: dict[tuple, str] = {}
    tensors, aliases = {}, {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().cpu().contiguous().clone()
    return tensors, aliases


def save_weights(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Save `module.state_dict()` as safetensors, atomically (tied weights are stored once)."""
    tensors, aliases = _unique_tensors(module.state_dict())
    metadata = {"format": "pt", "maskgit_aliases": json.dumps(aliases)}
    write_bytes_atomic(path, save_bytes(tensors, metadata=metadata))


def check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: str) -> None:
    """Raise a ValueError naming missing, unexpected and shape-mismatched keys."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = [f"{k}: file {tuple(found[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(set(expected) & set(found)) if found[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        parts = [f"{label} ({len(items)}): {items[:8]}{' ...' if len(items) > 8 else ''}"
                 for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                      ("shape mismatches", mismatched)) if items]
        raise ValueError(f"{source} does not fit the model: " + "; ".join(parts))


def load_weights(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load a `save_weights` file into `module`, strictly (every key present, same shapes)."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    for alias, key in json.loads(metadata.get("maskgit_aliases", "{}")).items():
        if key in tensors:
            tensors[alias] = tensors[key]
    check_state_dict(module.state_dict(), tensors, str(path))
    module.load_state_dict(tensors, strict=True)


M = TypeVar("M", bound=torch.nn.Module)


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")


@contextlib.contextmanager
def _no_init():
    """`torch.nn.init`'s fills do nothing inside (not thread-safe: it swaps module attributes)."""
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in saved:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def empty_module(build: Callable[[], M]) -> M:
    """`build()` with `torch.nn.init` switched off, so parameters keep uninitialised CPU storage: for modules
    whose every parameter and buffer is loaded right after (random initialisation of a 172M-parameter network
    takes minutes). Not built on the meta device: there `normal_` and `to_empty` go through torch's reference
    decompositions, whose first use imports torch._dynamo and sympy (~4 s, most of `maskgit serve`'s start)."""
    with _no_init():
        return build()
