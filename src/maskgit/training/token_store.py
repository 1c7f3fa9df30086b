"""The token cache on disk: per-chunk part files while encoding, merged into one safetensors file read memory-mapped.

Layout of the merged file (standard safetensors, loadable with `safetensors.torch.load_file`): `labels` int64
(M,), then `tokens` (M, N) int16 (int32 for codebooks over 32,767 codes). `open_tokens` maps it with
`numpy.memmap`, so opening a 1.28M x 256 cache reads only its header; rows are paged in as batches touch them.
Parts are written under a temporary name and renamed, so a killed encode keeps every finished chunk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

DTYPE_NAMES = {np.dtype(np.int16): "I16", np.dtype(np.int32): "I32", np.dtype(np.int64): "I64"}
NAME_DTYPES = {name: dtype for dtype, name in DTYPE_NAMES.items()}


def token_dtype(codebook_size: int) -> np.dtype:
    """The smallest signed integer type that holds every code."""
    return np.dtype(np.int16 if codebook_size <= np.iinfo(np.int16).max + 1 else np.int32)


def part_path(parts: Path, chunk: int) -> Path:
    return parts / f"chunk-{chunk:07d}.safetensors"


def write_part(parts: Path, chunk: int, tokens: np.ndarray, labels: np.ndarray) -> None:
    """Save one encoded chunk atomically (a kill leaves either the whole part or none)."""
    path = part_path(parts, chunk)
    tmp = path.with_suffix(".tmp")
    save_file({"tokens": np.ascontiguousarray(tokens), "labels": np.ascontiguousarray(labels, dtype=np.int64)},
              str(tmp))
    tmp.replace(path)


def done_chunks(parts: Path) -> set[int]:
    """Chunks whose part file is complete."""
    return {int(p.stem.split("-")[1]) for p in parts.glob("chunk-*.safetensors")} if parts.is_dir() else set()


def _header(rows: int, num_tokens: int, dtype: np.dtype, metadata: dict[str, str]) -> bytes:
    labels_end = rows * 8
    tensors = {"labels": {"dtype": "I64", "shape": [rows], "data_offsets": [0, labels_end]},
               "tokens": {"dtype": DTYPE_NAMES[dtype], "shape": [rows, num_tokens],
                          "data_offsets": [labels_end, labels_end + rows * num_tokens * dtype.itemsize]}}
    text = json.dumps({"__metadata__": metadata, **tensors}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors aligns the data to 8 bytes
    return len(text).to_bytes(8, "little") + text


def merge_parts(parts: Path, path: Path, num_chunks: int, metadata: dict[str, str] | None = None) -> Path:
    """Concatenate the parts of chunks 0..num_chunks-1 into the safetensors file `path`, streaming (one part in
    memory at a time); written under a temporary name, then the parts are removed.

    Raises:
        ValueError: a chunk has no part (a process did not finish its share).
    """
    missing = sorted(set(range(num_chunks)) - done_chunks(parts))
    if missing:
        raise ValueError(f"token cache parts {parts} lack chunk(s) {missing[:5]}{'...' if len(missing) > 5 else ''}"
                         f": a process stopped before finishing its share; run the same command again")
    shapes = [_part_shape(part_path(parts, c)) for c in range(num_chunks)]
    rows, (num_tokens, dtype) = sum(s[0] for s in shapes), shapes[0][1:]
    header = _header(rows, num_tokens, dtype, metadata or {})
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + rows * (8 + num_tokens * dtype.itemsize))
        start = 0
        for chunk in range(num_chunks):
            part = load_file(str(part_path(parts, chunk)))
            n = len(part["labels"])
            fh.seek(len(header) + start * 8)
            fh.write(part["labels"].tobytes())
            fh.seek(len(header) + rows * 8 + start * num_tokens * dtype.itemsize)
            fh.write(part["tokens"].astype(dtype, copy=False).tobytes())
            start += n
    tmp.replace(path)
    shutil.rmtree(parts, ignore_errors=True)
    return path


def _part_shape(path: Path) -> tuple[int, int, np.dtype]:
    header = _read_header(path)
    rows, num_tokens = header["tokens"]["shape"]
    return rows, num_tokens, NAME_DTYPES[header["tokens"]["dtype"]]


def _read_header(path: Path) -> dict:
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        if not 2 <= size <= 1 << 20:
            raise ValueError(f"header size {size} is not that of a safetensors file")
        return json.loads(fh.read(size))


def open_tokens(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(tokens (M, N) memory-mapped, copy-on-write; labels (M,) int64 in memory) of a merged cache file.

    Raises:
        ValueError: the file is not a complete token cache; the one-line message names it and says to delete it.
    """
    path = Path(path)
    try:
        header = _read_header(path)
        start = 8 + int.from_bytes(path.open("rb").read(8), "little")
        labels_info, tokens_info = header["labels"], header["tokens"]
        rows, num_tokens = tokens_info["shape"]
        dtype = NAME_DTYPES[tokens_info["dtype"]]
        if labels_info["dtype"] != "I64" or labels_info["shape"] != [rows]:
            raise ValueError("labels do not match the tokens")
        end = start + max(labels_info["data_offsets"][1], tokens_info["data_offsets"][1])
        if path.stat().st_size != end:
            raise ValueError(f"the file has {path.stat().st_size} bytes, its header describes {end}")
        labels = np.array(np.memmap(path, np.int64, "r", start + labels_info["data_offsets"][0], (rows,)))
        tokens = np.memmap(path, dtype, "c", start + tokens_info["data_offsets"][0], (rows, num_tokens))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as err:
        raise ValueError(f"token cache {path} cannot be read ({type(err).__name__}: {err}); delete it to encode the "
                         f"data again") from None
    return tokens, labels
