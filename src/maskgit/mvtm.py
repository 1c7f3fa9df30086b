"""Masked visual token modeling (MVTM), the MaskGIT training objective (paper section 3.2).

Training masks (exactly ceil(gamma(r) * N) positions per sample, at least one, chosen uniformly),
label dropout to the null class (for classifier-free guidance), and the cross-entropy loss taken
on masked positions only by default. The class token lives outside the token grid, so it is never
masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .schedules import mask_ratio


def random_token_mask(
    batch_size: int,
    num_tokens: int,
    schedule: str = "cosine",
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Sample MVTM masks.

    Args:
        batch_size: B.
        num_tokens: N.
        schedule: the mask schedule gamma (see `maskgit.schedules`).
        generator: source of all randomness (must live on `device`).
    Returns:
        (B, N) bool, True where the token is replaced by the mask id. Sample b has exactly
        clamp(ceil(gamma(r_b) * N), 1, N) True entries, with r_b ~ U[0, 1).
    """
    r = torch.rand(batch_size, generator=generator, device=device)
    counts = torch.ceil(mask_ratio(r, schedule, num_tokens) * num_tokens).long().clamp(1, num_tokens)
    scores = torch.rand(batch_size, num_tokens, generator=generator, device=device)
    ranks = scores.argsort(dim=-1).argsort(dim=-1)  # a uniform random permutation per row
    return ranks < counts[:, None]


def apply_mask(tokens: torch.Tensor, mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Replace the masked positions of `tokens` (B, N) by `mask_id`."""
    return tokens.masked_fill(mask, mask_id)


def drop_labels(
    labels: torch.Tensor, prob: float, null_label: int | None, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each label by `null_label` with probability `prob` (label dropout for guidance)."""
    if prob <= 0:
        return labels
    if null_label is None:
        raise ValueError("label dropout needs a model built with null_class=True")
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < prob
    return labels.masked_fill(drop, null_label)


def mvtm_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    unmasked_weight: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of MVTM.

    Args:
        logits: (B, N, K) over the codebook.
        targets: (B, N) the true codebook ids.
        mask: (B, N) bool, True at masked positions.
        label_smoothing: official config uses 0.1.
        unmasked_weight: weight of unmasked positions (0 = official: masked positions only).
    Returns:
        Scalar: the weighted mean of the per-token losses.
    """
    per_token = F.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), reduction="none", label_smoothing=label_smoothing
    ).view_as(targets)
    weights = mask.float() + (~mask).float() * unmasked_weight
    return (per_token * weights).sum() / weights.sum().clamp_min(1e-8)
