"""Frechet distance between two Gaussians fitted to feature sets (the formula behind FID).

d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), computed in float64 with NumPy only.
"""

from __future__ import annotations

import numpy as np
import torch


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (M, D) features, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need (M >= 2, D) features, got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Tr((S1 S2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix S1^(1/2) S2 S1^(1/2) (same spectrum), which stays stable for singular covariances.
    """
    diff = mu1 - mu2
    evals, evecs = np.linalg.eigh(sigma1)
    sqrt1 = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
    middle = sqrt1 @ sigma2 @ sqrt1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def frechet_distance_between(features_a, features_b) -> float:
    """Frechet distance between two (M, D) feature sets."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def frechet_or_none(features_a, features_b) -> float | None:
    """`frechet_distance_between`, or None when either set has fewer than two samples (no covariance)."""
    if len(features_a) < 2 or len(features_b) < 2:
        return None
    return frechet_distance_between(features_a, features_b)


FEW_IMAGES = 1000  # below this, FD, precision / recall and IS are too noisy and biased to mean much


def few_images_warnings(counts: dict[str, int | None]) -> list[str]:
    """A warning for each named image set (e.g. {"generated": 18}) of fewer than FEW_IMAGES images."""
    return [f"{count:,} {name} images: distribution metrics (Frechet distance, precision / recall, Inception Score) "
            f"from fewer than {FEW_IMAGES:,} images are dominated by noise and small-sample bias; compare them only "
            f"with values at the same count (papers use 10,000 to 50,000)"
            for name, count in counts.items() if count is not None and count < FEW_IMAGES]
