import math

import pytest
import torch

from maskgit.decoding import decode, guided_logits_fn
from maskgit.schedules import mask_ratio

K, N, MASK = 11, 36, 99


def fake_logits_fn(tokens):
    """Row-wise deterministic logits that depend on position and on the row's known tokens."""
    pos = torch.arange(tokens.shape[1], dtype=torch.float32)
    known = torch.where(tokens == MASK, torch.zeros_like(tokens), tokens + 1).float()
    ctx = known.sum(-1, keepdim=True)  # (B, 1)
    k = torch.arange(K, dtype=torch.float32)
    return torch.sin(pos[None, :, None] * 0.7 + k * 1.3 + ctx[..., None] * 0.01) * 3.0


def random_partial(batch, seed, min_known=0, max_known=N - 1):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, K, (batch, N), generator=g)
    for b in range(batch):
        n_known = int(torch.randint(min_known, max_known + 1, (1,), generator=g))
        unknown = torch.randperm(N, generator=g)[: N - n_known]
        tokens[b, unknown] = MASK
    return tokens


def expected_unknown_counts(u0, steps, schedule, start_iter=0):
    """Reference: SPEC section 4, step by step, float32 schedule."""
    counts, u = [], u0
    for t in range(start_iter, steps):
        if t == steps - 1:
            u = 0
        else:
            n = int(torch.floor(torch.tensor(float(u0)) * mask_ratio((t + 1) / steps, schedule, max(u0, 2))))
            n = max(1, min(u - 1, n))
            u = n if u > 0 else 0
        counts.append(u)
    return counts


@pytest.mark.parametrize("schedule", ["cosine", "linear", "cubic", "log", "exp", "sqrt", "arccos"])
@pytest.mark.parametrize("steps", [1, 4, 8, 12])
def test_known_tokens_frozen_and_counts_follow_spec(schedule, steps):
    tokens = random_partial(6, seed=steps, min_known=0, max_known=N - 2)
    tokens[0] = MASK  # one sample fully unknown (generation) beside partial ones (editing)
    out, hist = decode(fake_logits_fn, tokens, mask_id=MASK, steps=steps, schedule=schedule,
                       generator=torch.Generator().manual_seed(0), return_history=True)
    known = tokens != MASK
    assert torch.equal(out[known], tokens[known])
    for t in range(steps):
        assert torch.equal(hist[:, t][known], tokens[known])
    assert hist.shape == (6, steps, N)
    assert not (out == MASK).any() and out.max() < K
    assert torch.equal(hist[:, -1], out)
    for b in range(tokens.shape[0]):
        u0 = int((tokens[b] == MASK).sum())
        got = (hist[b] == MASK).sum(-1).tolist()
        assert got == expected_unknown_counts(u0, steps, schedule), (b, u0)


def test_decided_tokens_stay_decided():
    tokens = torch.full((3, N), MASK)
    _, hist = decode(fake_logits_fn, tokens, mask_id=MASK, steps=8, generator=torch.Generator().manual_seed(3),
                     return_history=True)
    for t in range(1, 8):
        decided = hist[:, t - 1] != MASK
        assert torch.equal(hist[:, t][decided], hist[:, t - 1][decided])


def test_official_float32_count_at_12_steps():
    n = 256
    logits_fn = lambda tok: torch.zeros(tok.shape[0], tok.shape[1], 4)
    _, hist = decode(logits_fn, torch.full((1, n), 7), mask_id=7, steps=12, generator=torch.Generator().manual_seed(0),
                     return_history=True)
    assert int((hist[0, 7] == 7).sum()) == 127  # float64 would give 128


def test_seeded_determinism():
    tokens = random_partial(4, seed=5)
    a = decode(fake_logits_fn, tokens, mask_id=MASK, generator=torch.Generator().manual_seed(42))
    b = decode(fake_logits_fn, tokens, mask_id=MASK, generator=torch.Generator().manual_seed(42))
    c = decode(fake_logits_fn, tokens, mask_id=MASK, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_batch_equals_samples_with_per_sample_generators():
    tokens = random_partial(4, seed=7)
    gens = [torch.Generator().manual_seed(100 + i) for i in range(4)]
    batched = decode(fake_logits_fn, tokens, mask_id=MASK, generator=gens)
    for i in range(4):
        alone = decode(fake_logits_fn, tokens[i:i + 1], mask_id=MASK, generator=[torch.Generator().manual_seed(100 + i)])
        assert torch.equal(batched[i], alone[0])


def test_start_iter():
    tokens = torch.full((2, N), MASK)
    tokens[1, :10] = 3
    out, hist = decode(fake_logits_fn, tokens, mask_id=MASK, steps=12, start_iter=2,
                       generator=torch.Generator().manual_seed(0), return_history=True)
    assert hist.shape == (2, 10, N)
    for b in range(2):
        u0 = int((tokens[b] == MASK).sum())
        assert (hist[b] == MASK).sum(-1).tolist() == expected_unknown_counts(u0, 12, "cosine", start_iter=2)
    # The first iteration run is t = 2: r = 3/12, so fewer tokens stay masked than at t = 0.
    first = int((hist[0, 0] == MASK).sum())
    assert first == math.floor(N * mask_ratio(3 / 12).item())
    with pytest.raises(ValueError, match="start_iter"):
        decode(fake_logits_fn, tokens, mask_id=MASK, steps=4, start_iter=4)


def test_zero_choice_temperature_keeps_most_confident():
    from maskgit.decoding import gumbel_noise

    tokens = torch.full((2, N), MASK)
    logits_fn = lambda t: fake_logits_fn(torch.full_like(t, MASK))  # context-free: same logits every step
    _, hist = decode(logits_fn, tokens, mask_id=MASK, steps=6, choice_temperature=0.0,
                     generator=torch.Generator().manual_seed(1), return_history=True)
    # Replay the first random draw (the categorical sample of step 0) to know every sampled token.
    logits = logits_fn(tokens)
    sampled = (logits + gumbel_noise(logits.shape, torch.Generator().manual_seed(1), "cpu")).argmax(-1)
    conf = logits.log_softmax(-1).gather(-1, sampled[..., None])[..., 0]
    for b in range(2):
        kept = hist[b, 0] != MASK
        assert torch.equal(hist[b, 0][kept], sampled[b][kept])
        assert conf[b][kept].min() >= conf[b][~kept].max()


def test_unknown_rows_only_sampling_equals_the_full_shape_computation():
    """The CPU computes the sample and confidence at unknown rows only; accelerators compute every row: same result."""
    import maskgit.decoding as decoding

    logits = torch.randn(3, N, 40)
    current = torch.randint(0, 40, (3, N))
    unknown = torch.rand(3, N) < 0.6
    unknown[2] = False  # a sample with nothing unknown
    rows = decoding._sample_unknown(logits, current, unknown, torch.Generator().manual_seed(5))
    full = decoding._sample_unknown(logits, current, unknown, torch.Generator().manual_seed(5), rows_only=False)
    assert torch.equal(rows[0], full[0]) and torch.equal(rows[0][~unknown], current[~unknown])
    torch.testing.assert_close(rows[1], full[1])
    assert torch.isinf(rows[1][~unknown]).all() and torch.isfinite(rows[1][unknown]).all()


def test_temperature_divides_logits():
    tokens = torch.full((2, N), MASK)
    logits_fn = lambda t: fake_logits_fn(torch.full_like(t, MASK))
    cold = decode(logits_fn, tokens, mask_id=MASK, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cold, logits_fn(tokens).argmax(-1))  # near-zero temperature samples the argmax
    hot = decode(logits_fn, tokens, mask_id=MASK, temperature=100.0, generator=torch.Generator().manual_seed(0))
    assert (hot != cold).float().mean() > 0.5  # near-uniform sampling
    with pytest.raises(ValueError, match="temperature"):
        decode(logits_fn, tokens, mask_id=MASK, temperature=0)


def test_nothing_unknown_is_a_no_op():
    tokens = torch.randint(0, K, (2, N))
    assert torch.equal(decode(fake_logits_fn, tokens, mask_id=MASK, steps=5), tokens)


def test_bad_arguments():
    tokens = torch.full((1, N), MASK)
    for kwargs in [dict(steps=0), dict(steps=2.5), dict(choice_temperature=-1.0), dict(schedule="nope")]:
        with pytest.raises(ValueError):
            decode(fake_logits_fn, tokens, mask_id=MASK, **kwargs)
    with pytest.raises(ValueError, match="generators"):
        decode(fake_logits_fn, tokens, mask_id=MASK, generator=[torch.Generator(), torch.Generator()])


class CountingModel:
    def __init__(self):
        self.calls = []

    def __call__(self, tokens, labels, rows=None):
        self.calls.append(tokens.shape[0])
        base = fake_logits_fn(tokens)
        logits = base + labels[:, None, None].float() * 0.5
        return logits if rows is None else logits[rows]


def test_guidance_scale_zero_is_conditional_and_one_pass():
    model = CountingModel()
    tokens = random_partial(3, seed=1)
    labels = torch.tensor([0, 1, 2])
    plain = guided_logits_fn(model, labels, mask_id=MASK, null_label=10, guidance_scale=0.0)(tokens)
    assert torch.equal(plain, model(tokens, labels))
    model.calls.clear()
    w = 2.0
    guided = guided_logits_fn(model, labels, mask_id=MASK, null_label=10, guidance_scale=w)(tokens)
    assert model.calls == [6]  # one batched pass over conditional + null labels
    cond, uncond = model(tokens, labels), model(tokens, torch.full_like(labels, 10))
    assert torch.allclose(guided, cond + w * (cond - uncond))


def test_linear_guidance_ramp():
    model = CountingModel()
    labels = torch.tensor([1, 1])
    tokens = torch.full((2, N), MASK)
    tokens[1, : N // 2] = 0  # half decided
    out = guided_logits_fn(model, labels, mask_id=MASK, null_label=10, guidance_scale=4.0,
                           guidance_schedule="linear")(tokens)
    cond, uncond = model(tokens, labels), model(tokens, torch.full_like(labels, 10))
    assert torch.allclose(out[0], cond[0])  # nothing decided: scale 0
    assert torch.allclose(out[1], cond[1] + 2.0 * (cond[1] - uncond[1]))
    with pytest.raises(ValueError, match="null class"):
        guided_logits_fn(model, labels, mask_id=MASK, null_label=None, guidance_scale=1.0)
    with pytest.raises(ValueError, match="guidance_schedule"):
        guided_logits_fn(model, labels, mask_id=MASK, null_label=10, guidance_scale=1.0, guidance_schedule="cubic")


@pytest.mark.parametrize("scale,schedule", [(0.0, "constant"), (3.0, "constant"), (4.0, "linear")])
def test_logits_at_unknown_rows_only_equal_the_full_call(scale, schedule):
    """`unknown_rows_only`: the guided callable at the rows equals the full logits there, and decoding agrees."""
    tokens = random_partial(4, seed=5)
    labels = torch.tensor([0, 1, 2, 3])
    fn = guided_logits_fn(CountingModel(), labels, mask_id=MASK, null_label=10, guidance_scale=scale,
                          guidance_schedule=schedule)
    rows = tokens == MASK
    assert torch.allclose(fn(tokens, rows), fn(tokens)[rows])
    gens = lambda: [torch.Generator().manual_seed(s) for s in range(4)]  # noqa: E731
    full, full_hist = decode(fn, tokens, mask_id=MASK, steps=6, generator=gens(), return_history=True)
    part, part_hist = decode(fn, tokens, mask_id=MASK, steps=6, generator=gens(), return_history=True,
                             unknown_rows_only=True)
    assert torch.equal(full, part) and torch.equal(full_hist, part_hist)
    with pytest.raises(ValueError, match="expected"):  # a callable that ignores `rows` is caught
        decode(lambda t, rows: fn(t), tokens, mask_id=MASK, steps=6, unknown_rows_only=True)
