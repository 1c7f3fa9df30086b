import math

import pytest
import torch

from maskgit.mvtm import apply_mask, drop_labels, mvtm_loss, random_token_mask
from maskgit.schedules import mask_ratio


@pytest.mark.parametrize("schedule", ["cosine", "linear", "cubic", "log", "exp", "sqrt"])
def test_mask_counts_are_exact(schedule):
    g = torch.Generator().manual_seed(0)
    n = 49
    mask = random_token_mask(512, n, schedule, generator=g)
    # Replay the generator to recover the r values drawn inside.
    g2 = torch.Generator().manual_seed(0)
    r = torch.rand(512, generator=g2)
    expected = torch.ceil(mask_ratio(r, schedule, n) * n).long().clamp(1, n)
    assert torch.equal(mask.sum(-1), expected)
    assert mask.sum(-1).min() >= 1


def test_mask_positions_are_uniform():
    g = torch.Generator().manual_seed(1)
    mask = random_token_mask(20000, 16, "linear", generator=g)
    freq = mask.float().mean(0)
    assert torch.allclose(freq, freq.mean().expand_as(freq), atol=0.02)


def test_apply_mask_and_class_token_untouched():
    from maskgit.presets import TRANSFORMER_PRESETS
    cfg = TRANSFORMER_PRESETS["tiny"]
    tokens = torch.randint(0, cfg.codebook_size, (4, cfg.num_tokens))
    mask = random_token_mask(4, cfg.num_tokens, generator=torch.Generator().manual_seed(0))
    masked = apply_mask(tokens, mask, cfg.mask_id)
    assert torch.equal(masked == cfg.mask_id, mask)
    assert torch.equal(masked[~mask], tokens[~mask])
    # The class token is prepended inside the network, outside the maskable grid: ids never collide.
    assert cfg.mask_id not in [cfg.class_token(c) for c in range(cfg.num_classes)] + [cfg.class_token(cfg.null_label)]
    assert cfg.class_token(0) >= cfg.codebook_size and cfg.mask_id == cfg.vocab_size - 1


def test_loss_ignores_unmasked_positions_by_default():
    torch.manual_seed(0)
    logits = torch.randn(2, 8, 5, requires_grad=True)
    targets = torch.randint(0, 5, (2, 8))
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, :3] = True
    loss = mvtm_loss(logits, targets, mask)
    loss.backward()
    assert torch.all(logits.grad[~mask] == 0)
    assert torch.any(logits.grad[mask] != 0)
    ref = torch.nn.functional.cross_entropy(logits[mask], targets[mask])
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    # Changing logits at unmasked positions does not change the loss.
    logits2 = logits.detach().clone()
    logits2[~mask] += 100
    assert mvtm_loss(logits2, targets, mask).item() == pytest.approx(loss.item(), rel=1e-6)


def test_loss_options():
    torch.manual_seed(0)
    logits = torch.randn(2, 8, 5)
    targets = torch.randint(0, 5, (2, 8))
    mask = torch.rand(2, 8) < 0.5
    all_pos = mvtm_loss(logits, targets, mask, unmasked_weight=1.0)
    ref = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert all_pos.item() == pytest.approx(ref.item(), rel=1e-6)
    smoothed = mvtm_loss(logits, targets, mask, label_smoothing=0.1)
    ref = torch.nn.functional.cross_entropy(logits[mask], targets[mask], label_smoothing=0.1)
    assert smoothed.item() == pytest.approx(ref.item(), rel=1e-6)


def test_label_dropout():
    labels = torch.zeros(10000, dtype=torch.long)
    dropped = drop_labels(labels, 0.1, 10, generator=torch.Generator().manual_seed(0))
    frac = (dropped == 10).float().mean().item()
    assert 0.08 < frac < 0.12
    assert set(dropped.unique().tolist()) == {0, 10}
    assert torch.equal(drop_labels(labels, 0.0, None), labels)
    with pytest.raises(ValueError, match="null_class"):
        drop_labels(labels, 0.1, None)
    assert math.isfinite(frac)
