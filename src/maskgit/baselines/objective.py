"""Next-token objective of the autoregressive baseline (VQGAN-transformer setting, raster order).

A causal `MaskGITTransformer` sees [class, t0 .. t_{N-2}] and predicts [t0 .. t_{N-1}]; the loss is the
cross-entropy on every position (label smoothing and label dropout as in MVTM training, so the two
objectives differ only in what the network sees and predicts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..mvtm import drop_labels


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of (B, N, K) next-token logits against the (B, N) true codebook ids."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), label_smoothing=label_smoothing)


def next_token_step_loss(model, tokens, labels, cfg, generator: torch.Generator):
    """One training forward of the AR baseline: (loss, next-token accuracy); mirrors `mvtm_step_loss`."""
    if labels is not None:
        labels = drop_labels(labels, cfg.label_dropout, cfg.transformer.null_label, generator=generator)
    logits = model(tokens, labels)  # (B, N, K): logits[:, i] predicts tokens[:, i] from tokens[:, :i]
    loss = next_token_loss(logits, tokens, label_smoothing=cfg.label_smoothing)
    return loss, (logits.argmax(-1) == tokens).float().mean()
