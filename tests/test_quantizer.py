"""Vector quantizer: nearest-code lookup, straight-through gradients, losses, EMA, init and dead-code restarts."""

import pytest
import torch

from maskgit.vq import CodeUsage, VectorQuantizer
from maskgit.vq.quantizer import kmeans, perplexity_of


@pytest.mark.parametrize("l2", [False, True])
def test_lookup_is_nearest_code(l2):
    torch.manual_seed(0)
    vq = VectorQuantizer(32, 8, l2_normalize=l2)
    z = torch.randn(2, 8, 3, 5)
    out = vq(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 8)
    codes = vq.codebook
    if l2:
        flat, codes = torch.nn.functional.normalize(flat, dim=-1), torch.nn.functional.normalize(codes, dim=-1)
    expected = torch.cdist(flat, codes).argmin(1).view(2, 3, 5)
    assert torch.equal(out.ids, expected)
    assert torch.allclose(out.quantized, vq.lookup(out.ids), atol=1e-6)
    assert out.affinity.shape == (30, 32)


def test_straight_through_gradient_is_identity():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, commitment_weight=0.0)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z)
    weights = torch.randn_like(out.quantized)
    (out.quantized * weights).sum().backward()
    assert torch.allclose(z.grad, weights)  # d quantized / d z = identity


def test_losses_codebook_and_commitment():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, commitment_weight=0.25)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z)
    mse = (out.quantized.detach() - z.detach()).pow(2).mean()
    assert torch.allclose(out.codebook_loss, mse) and torch.allclose(out.commitment_loss, mse)
    assert torch.allclose(out.loss, 1.25 * mse)
    out.loss.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0  # codebook loss moves codes
    assert z.grad.abs().sum() > 0  # commitment pulls the encoder


def test_ema_moves_codes_towards_assigned_vectors():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 2, ema_decay=0.5)
    assert not vq.codebook.requires_grad
    z = torch.randn(1, 2, 8, 8) + 3.0
    before = vq.codebook.clone()
    out = vq.train()(z)
    assert out.codebook_loss.item() == 0.0
    used = out.ids.unique()
    after = vq.codebook[used]
    target = z.permute(0, 2, 3, 1).reshape(-1, 2)[out.ids.flatten() == used[0]].mean(0)
    assert (after[0] - target).norm() < (before[used[0]] - target).norm()
    frozen = vq.codebook.clone()
    vq.eval()(z)
    assert torch.equal(vq.codebook, frozen)  # no updates in eval mode


def test_dead_code_restart_revives_unused_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 2)
    # Toy problem: the data sit in a small blob far from the codebook, so one code wins everything.
    data = torch.randn(512, 2) * 0.5 + 5.0
    z = data.T.reshape(1, 2, 16, 32)
    usage = CodeUsage(16, decay=0.0)
    usage.update(vq(z).ids)
    dead = usage.dead_codes(1.0)
    assert dead.sum() >= 15
    revived = vq.restart_codes(dead, data, torch.Generator().manual_seed(0))
    assert revived == int(dead.sum())
    ids = vq(z).ids
    used = torch.zeros(16, dtype=torch.bool)
    used[ids.unique()] = True
    assert used[dead].all()  # every revived code now wins vectors of the blob
    usage.update(ids)
    assert usage.usage() >= 15 / 16


@pytest.mark.parametrize("method", ["kmeans", "sample"])
def test_codebook_init_from_data(method):
    torch.manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    data = (centers[torch.arange(400) % 4] + 0.1 * torch.randn(400, 2))
    vq = VectorQuantizer(4, 2)
    vq.init_codebook(data, method, iters=10, generator=torch.Generator().manual_seed(0))
    z = data.T.reshape(1, 2, 20, 20)
    out = vq(z)
    assert out.usage.item() > 0.0
    if method == "kmeans":
        assert out.usage.item() == 1.0
        assert torch.cdist(vq.codebook, centers).min(1).values.max() < 0.1


def test_kmeans_reseeds_empty_clusters():
    data = torch.randn(100, 3)
    start = torch.cat([data[:2], torch.full((2, 3), 1e3)])  # two centers no vector is near
    out = kmeans(data, start, iters=3, generator=torch.Generator().manual_seed(0))
    assert out.abs().max() < 100


def test_perplexity_and_usage_tracker():
    assert perplexity_of(torch.ones(8)).item() == pytest.approx(8.0)
    assert perplexity_of(torch.tensor([5.0, 0, 0, 0])).item() == pytest.approx(1.0)
    usage = CodeUsage(4, decay=0.9)
    usage.update(torch.tensor([0, 0, 1, 1]))
    assert usage.usage() == 0.5 and usage.perplexity() == pytest.approx(2.0)
    assert usage.dead_codes(0.5).tolist() == [False, False, True, True]


def test_lookup_rejects_out_of_range_ids():
    vq = VectorQuantizer(8, 2)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        vq.lookup(torch.tensor([[[8]]]))
