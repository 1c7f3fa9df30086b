"""Encode a dataset once with the frozen tokenizer and cache its codes: every process encodes its share.

The dataset is cut into fixed chunks of `chunk_size` images (one encoding batch each); process r of N encodes
chunks r, r + N, ... with DataLoader workers decoding the images, and saves each chunk as a part file; the main
process merges the parts into one safetensors file that is read memory-mapped (`token_store.py`). Batches are the
same whatever N, so the file is byte-identical for 1 or N processes, and a killed encode resumes at the chunks it
had not finished. The cache is keyed by `token_cache_key`: the tokenizer's config and weights, the dataset's
contents (`maskgit.data.dataset_fingerprint`) and the views cached (flips, random-resized crops).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..augment import DEFAULT_RATIO, DEFAULT_SCALE, RandomCropDataset, crop_seed
from ..config import to_dict
from ..data import dataset_fingerprint
from .token_store import done_chunks, merge_parts, open_tokens, token_dtype, write_part

CHUNK_SIZE = 256  # images per encoding batch and part file (the batches of the single-process cache before)


@dataclass(frozen=True)
class CacheViews:
    """Which views of each image are cached: the centre crop, plus `crop_views` random-resized crops (drawn from
    (seed, image index, view)), each also flipped when `hflip`. Rows of a chunk: view by view, flips after each."""

    hflip: bool = False
    crop_views: int = 0
    crop_scale: tuple[float, float] = DEFAULT_SCALE
    crop_ratio: tuple[float, float] = DEFAULT_RATIO
    seed: int = 0

    @property
    def count(self) -> int:
        """Token sequences cached per image."""
        return (1 + self.crop_views) * (2 if self.hflip else 1)

    def key(self) -> str:
        text = f"flip{int(self.hflip)}"
        if self.crop_views:
            crops = json.dumps([self.crop_scale, self.crop_ratio, self.seed]).encode()
            text += f"-crop{self.crop_views}x{hashlib.sha256(crops).hexdigest()[:8]}"
        return text


def module_fingerprint(module: torch.nn.Module) -> str:
    """A short hash of a module's config (when it has one) and every tensor of its state: the identity of a
    tokenizer behind a token cache, and of the weights a run starts from (`maskgit train --init-from`)."""
    h = hashlib.sha256()
    if (config := getattr(module, "config", None)) is not None:
        h.update(json.dumps(to_dict(config), sort_keys=True).encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def token_cache_key(tokenizer: torch.nn.Module, dataset: Dataset, *, views: CacheViews = CacheViews(),
                    chunk_size: int = CHUNK_SIZE) -> str:
    """The identity of a dataset's codes: tokenizer, dataset contents, views (and a non-default chunk size)."""
    both = hashlib.sha256(f"{module_fingerprint(tokenizer)}:{dataset_fingerprint(dataset)}".encode())
    key = f"{both.hexdigest()[:16]}-n{len(dataset)}-{views.key()}"
    return key if chunk_size == CHUNK_SIZE else f"{key}-c{chunk_size}"


@torch.no_grad()
def encode_chunks(tokenizer, dataset: Dataset, parts: Path, *, views: CacheViews = CacheViews(),
                  chunk_size: int = CHUNK_SIZE, rank: int = 0, world: int = 1, num_workers: int = 0,
                  progress: bool = True) -> int:
    """Encode this process's unfinished chunks (r, r + world, ...) into part files; returns the chunk count."""
    device = next(tokenizer.parameters()).device
    tokenizer.eval()
    num_chunks = math.ceil(len(dataset) / chunk_size)
    done = done_chunks(parts)
    mine = [c for c in range(rank, num_chunks, world) if c not in done]
    parts.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(tokenizer.config.codebook_size)
    crops = RandomCropDataset(dataset, tokenizer.config.image_size, views.crop_scale, views.crop_ratio)
    batches = [[(i, None if k == 0 else crop_seed(views.seed, i, k))
                for i in range(c * chunk_size, min(len(dataset), (c + 1) * chunk_size))]
               for c in mine for k in range(1 + views.crop_views)]
    loader = DataLoader(crops, batch_sampler=batches, num_workers=num_workers)
    rows, labels = [], []
    bar = tqdm(total=len(mine), desc=f"encode (process {rank})" if world > 1 else "encode", disable=not progress)
    for b, (images, batch_labels) in enumerate(loader):
        images = images.to(device)
        for view in ([images, images.flip(-1)] if views.hflip else [images]):
            rows.append(tokenizer.encode(view).flatten(1).cpu().numpy().astype(dtype))
            labels.append(torch.as_tensor(batch_labels).numpy().astype(np.int64))
        if (b + 1) % (1 + views.crop_views) == 0:  # every view of the chunk is encoded
            write_part(parts, mine[b // (1 + views.crop_views)], np.concatenate(rows), np.concatenate(labels))
            rows, labels = [], []
            bar.update(1)
    bar.close()
    return num_chunks


def cached_tokens(tokenizer, dataset: Dataset, cache_dir: str | Path, *, views: CacheViews = CacheViews(),
                  chunk_size: int = CHUNK_SIZE, rank: int = 0, world: int = 1, num_workers: int = 0,
                  wait: Callable[[], None] = lambda: None, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's codes from `cache_dir`, encoding (this process's share) and merging them first if needed.

    Every process of a run calls it; `wait` is the barrier between them (`accelerator.wait_for_everyone`).
    Returns (tokens (M, N) int16 or int32, memory-mapped; labels (M,) long), M = len(dataset) * views.count,
    rows chunk by chunk (see `CacheViews`).
    """
    cache_dir = Path(cache_dir)
    key = token_cache_key(tokenizer, dataset, views=views, chunk_size=chunk_size)
    path, parts = cache_dir / f"tokens-{key}.safetensors", cache_dir / f"tokens-{key}.parts"
    num_chunks = math.ceil(len(dataset) / chunk_size)
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        encode_chunks(tokenizer, dataset, parts, views=views, chunk_size=chunk_size, rank=rank, world=world,
                      num_workers=num_workers, progress=progress)
    wait()  # every share is encoded
    if rank == 0 and not path.exists():
        merge_parts(parts, path, num_chunks, {"images": str(len(dataset)), "views": str(views.count)})
    wait()  # the merged file is there for everyone
    tokens, labels = open_tokens(path)
    return torch.from_numpy(tokens), torch.from_numpy(labels)
