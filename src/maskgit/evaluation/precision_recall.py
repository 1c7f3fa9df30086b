"""Improved precision and recall of generative models (Kynkaanniemi et al., NeurIPS 2019).

Each set's manifold is the union of balls around its feature vectors, each ball reaching the k-th
nearest other vector of the same set (k = 3, as in the paper and the ADM evaluator). Precision is the
fraction of generated vectors inside the real manifold; recall the fraction of real vectors inside the
generated one. Distances are Euclidean, computed in float32 blocks (as the ADM evaluator does).
"""

from __future__ import annotations

import numpy as np
import torch


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(A, D), (B, D) -> (A, B) Euclidean distances."""
    return torch.cdist(a.unsqueeze(0), b.unsqueeze(0)).squeeze(0)


def knn_radii(features: np.ndarray, k: int = 3, block: int = 2048) -> np.ndarray:
    """(M,) distance from every vector to its k-th nearest other vector of the same set."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if not 1 <= k < len(x):
        raise ValueError(f"k must be in [1, {len(x) - 1}] for {len(x)} vectors, got {k}")
    # Column 0 of the k+1 smallest is the vector itself (distance 0).
    radii = [_distances(x[i:i + block], x).topk(k + 1, largest=False).values[:, k] for i in range(0, len(x), block)]
    return torch.cat(radii).numpy()


def inside_manifold(queries: np.ndarray, support: np.ndarray, radii: np.ndarray, block: int = 2048) -> np.ndarray:
    """(Q,) bool: is each query within radii[j] of some support vector j?"""
    q = torch.as_tensor(np.asarray(queries, dtype=np.float32))
    s = torch.as_tensor(np.asarray(support, dtype=np.float32))
    r = torch.as_tensor(np.asarray(radii, dtype=np.float32))
    return torch.cat([(_distances(q[i:i + block], s) <= r).any(1) for i in range(0, len(q), block)]).numpy()


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3,
                     real_radii: np.ndarray | None = None) -> dict:
    """Improved precision and recall of `generated` (M, D) features against `real` (N, D) features.

    Args:
        real_radii: precomputed `knn_radii(real, k)` (cached with reference statistics).
    Returns:
        {"precision", "recall", "k"}.
    """
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"need (N, D) and (M, D) features of one dimension, got {real.shape} and {generated.shape}")
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    precision = inside_manifold(generated, real, real_radii).mean()
    recall = inside_manifold(real, generated, knn_radii(generated, k)).mean()
    return {"precision": float(precision), "recall": float(recall), "k": k}
