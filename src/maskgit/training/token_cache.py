"""Encode a dataset once with the frozen tokenizer and cache its codes (safetensors).

The cache is keyed by `token_cache_key`: a fingerprint of the tokenizer's config and weights, of the
dataset's contents (`maskgit.data.dataset_fingerprint`) and of the flip option, so a changed tokenizer
or dataset (even one of the same size) is re-encoded instead of reusing stale codes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..config import to_dict
from ..data import dataset_fingerprint


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


def token_cache_key(tokenizer: torch.nn.Module, dataset: Dataset, *, hflip: bool = False) -> str:
    """The identity of a dataset's codes: tokenizer, dataset contents and flip option (used as a file name)."""
    both = hashlib.sha256(f"{module_fingerprint(tokenizer)}:{dataset_fingerprint(dataset)}".encode())
    return f"{both.hexdigest()[:16]}-n{len(dataset)}-flip{int(hflip)}"


@torch.no_grad()
def encode_dataset(tokenizer, dataset: Dataset, *, hflip: bool = False, batch_size: int = 256,
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (tokens (M, N) long, labels (M,) long); with hflip, M = 2 * len(dataset) (both views)."""
    device = next(tokenizer.parameters()).device
    tokenizer.eval()
    all_tokens, all_labels = [], []
    for images, labels in tqdm(DataLoader(dataset, batch_size=batch_size), desc="encode", disable=not progress):
        images = images.to(device)
        views = [images, images.flip(-1)] if hflip else [images]
        for view in views:
            all_tokens.append(tokenizer.encode(view).flatten(1).cpu())
            all_labels.append(torch.as_tensor(labels).long())
    return torch.cat(all_tokens), torch.cat(all_labels)


def cached_tokens(tokenizer, dataset: Dataset, cache_dir: str | Path, *, hflip: bool = False, is_main: bool = True,
                  wait: Callable[[], None] = lambda: None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the dataset's codes from `cache_dir`, encoding and saving them first if needed."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"tokens-{token_cache_key(tokenizer, dataset, hflip=hflip)}.safetensors"
    if not path.exists() and is_main:
        tokens, labels = encode_dataset(tokenizer, dataset, hflip=hflip)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"tokens": tokens.to(torch.int32), "labels": labels}, str(tmp))
        tmp.replace(path)
    wait()
    data = load_file(str(path))
    return data["tokens"].long(), data["labels"].long()
