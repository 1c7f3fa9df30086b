"""Read and write Flax's msgpack checkpoints (`flax.serialization.to_bytes`) without flax or jax.

The format: nested msgpack maps of parameters, each array stored as msgpack extension type 1 whose
payload is itself msgpack of (shape, dtype name, C-order bytes). Only plain data is decoded: nothing
in a checkpoint file is ever executed. Arrays come back flattened under "a/b/c" paths.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import numpy as np

from ..atomic import write_bytes_atomic

NDARRAY_EXT = 1  # flax: _MsgpackExtType.ndarray
# Dtypes an official checkpoint may hold; anything else is refused rather than guessed.
DTYPES = ("float32", "float16", "bfloat16", "float64", "int32", "int64", "uint8", "bool")


class _Array:
    """An ndarray extension payload, decoded lazily so that errors can name the parameter path."""

    def __init__(self, payload: bytes):
        self.payload = payload

    def decode(self, where: str) -> np.ndarray:
        try:
            shape, dtype, data = msgpack.unpackb(self.payload, raw=False)
        except Exception as err:  # noqa: BLE001 - any decoding failure means a damaged payload
            raise ValueError(f"{where}: damaged array payload ({err})") from err
        if dtype not in DTYPES or not isinstance(shape, list) or not isinstance(data, bytes):
            raise ValueError(f"{where}: unsupported array payload (dtype {dtype!r}, shape {shape!r})")
        if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16-bit patterns to float32
            bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
        if array.size != int(np.prod(shape)):
            raise ValueError(f"{where}: {array.size} values for shape {tuple(shape)} (truncated payload)")
        return array.reshape(shape).astype(array.dtype.newbyteorder("="))


def _ext_hook(code: int, payload: bytes):
    if code != NDARRAY_EXT:
        raise ValueError(f"msgpack extension type {code} is not an ndarray (only type {NDARRAY_EXT} is read)")
    return _Array(payload)


def _flatten(tree, prefix: str, out: dict[str, np.ndarray], source: str) -> None:
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            if "__msgpack_chunked_array__" in value:
                raise ValueError(f"{source}: {path} is a chunked array (over 1 GiB), which this reader does not join")
            _flatten(value, path, out, source)
        elif isinstance(value, _Array):
            out[path] = value.decode(f"{source}: {path}")
        else:
            raise ValueError(f"{source}: {path} holds a {type(value).__name__}, not an array")


def read_flax_msgpack(path: str | os.PathLike, *, root: str = "params") -> dict[str, np.ndarray]:
    """Arrays of a Flax msgpack checkpoint under `root`, as {"a/b/c": ndarray}.

    Raises a one-line ValueError for a file that is not msgpack, is truncated, or holds no `root` tree.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    data = path.read_bytes()
    try:
        tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except msgpack.exceptions.ExtraData as err:
        raise ValueError(f"{path} is not a Flax msgpack checkpoint (bytes left over after the first object; "
                         f"a foreign file?)") from err
    except Exception as err:  # noqa: BLE001 - msgpack raises several unrelated types for bad input
        if "extension type" in str(err):
            raise ValueError(f"{path}: {err}") from err
        reason = "truncated" if "incomplete" in str(err) else f"{type(err).__name__}: {err}"
        raise ValueError(f"{path} is not a readable Flax msgpack checkpoint ({reason})") from err
    if not isinstance(tree, dict) or not isinstance(tree.get(root), dict):
        found = sorted(map(str, tree)) if isinstance(tree, dict) else type(tree).__name__
        raise ValueError(f"{path} holds no {root!r} tree (top level: {found}); expected "
                         f"flax.serialization.to_bytes({{{root!r}: params}})")
    arrays: dict[str, np.ndarray] = {}
    _flatten(tree[root], "", arrays, str(path))
    return arrays


def _nest(arrays: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for path, array in sorted(arrays.items()):  # flax writes keys sorted
        *parents, leaf = path.split("/")
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = array
    return tree


def _pack_array(obj):
    if isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        payload = msgpack.packb((array.shape, array.dtype.name, array.tobytes("C")), use_bin_type=True)
        return msgpack.ExtType(NDARRAY_EXT, payload)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def write_flax_msgpack(arrays: dict[str, np.ndarray], path: str | os.PathLike, *, root: str = "params") -> Path:
    """Write {"a/b/c": ndarray} as `flax.serialization.to_bytes({root: tree})` would, atomically."""
    tree = {root: _nest(arrays)}
    return write_bytes_atomic(path, msgpack.packb(tree, default=_pack_array, use_bin_type=True, strict_types=False))
