"""The samplers beyond the paper (SPEC 4b): Halton order, guidance schedules, temperature schedule, cached passes,
and the bf16 inference copy. Fake `logits_fn`s test the loop alone; a tiny random transformer tests the passes."""

import json
import math
from pathlib import Path

import pytest
import torch

from maskgit.cached_passes import CachedPasses
from maskgit.config import SamplingConfig, TransformerConfig
from maskgit.decoding import decode, guidance_scale_at, guided_logits_fn, halton_order, radical_inverse, temperature_at
from maskgit.fastpath import inference_copy
from maskgit.schedules import mask_ratio
from maskgit.transformer import MaskGITTransformer

FIXTURES = Path(__file__).parent / "fixtures"
MASK, K = 99, 16


def random_logits(tokens, rows=None):
    g = torch.Generator().manual_seed(int(tokens.sum()))  # depends on the input, deterministic
    full = torch.randn(*tokens.shape, K, generator=g)
    return full if rows is None else full[rows]


def test_radical_inverse_and_halton_points_follow_the_published_definition():
    assert [radical_inverse(i, 2) for i in range(1, 8)] == [1 / 2, 1 / 4, 3 / 4, 1 / 8, 5 / 8, 3 / 8, 7 / 8]
    assert [radical_inverse(i, 3) for i in range(1, 9)] == pytest.approx([1 / 3, 2 / 3, 1 / 9, 4 / 9, 7 / 9, 2 / 9,
                                                                          5 / 9, 8 / 9])
    order = halton_order(4)
    assert sorted(order.tolist()) == list(range(16))  # every cell exactly once
    # points (1/2, 1/3), (1/4, 2/3), (3/4, 1/9) on a 4x4 grid: cells (2, 1), (1, 2), (3, 0)
    assert order[:3].tolist() == [2 * 4 + 1, 1 * 4 + 2, 3 * 4 + 0]


def _halton_counts(u0: int, steps: int) -> list[int]:
    """Cumulative decided counts of the SPEC's formula with the arccos schedule (its reference)."""
    counts = [max(t + 1, math.floor(u0 * (1 - math.acos((t + 1) / steps) / (math.pi / 2)))) for t in range(steps)]
    return [min(c, u0) for c in counts[:-1]] + [u0]


@pytest.mark.parametrize("sampler,group", [("confidence", 1), ("halton", 1), ("grouped", 3), ("grouped", 8)])
@pytest.mark.parametrize("editing", [False, True])
def test_every_sampler_unmasks_the_scheduled_count_and_never_touches_known_tokens(sampler, group, editing):
    steps, n = 8, 64
    tokens = torch.full((3, n), MASK)
    if editing:  # a different region known in each sample
        tokens[0, :20] = 3
        tokens[1, 10:50] = 5
        tokens[2, ::3] = 7
    known = tokens != MASK
    schedule = "arccos" if sampler == "halton" else "cosine"
    out, history = decode(random_logits, tokens, mask_id=MASK, steps=steps, sampler=sampler, schedule=schedule,
                          group=group, generator=torch.Generator().manual_seed(0), return_history=True)
    assert (out != MASK).all() and (out[known] == tokens[known]).all()
    assert (history[:, :, :][known.unsqueeze(1).expand_as(history)] == tokens[known].repeat_interleave(steps)).all()
    for b in range(3):
        u0 = int((~known[b]).sum())
        decided = [int(((history[b, t] != MASK) & ~known[b]).sum()) for t in range(steps)]
        if sampler == "halton":
            expected = _halton_counts(u0, steps)
        else:  # official (grouped too): n = floor(U0 * gamma(r)) stay masked, clamped to [1, unknown - 1]
            expected, unknown = [], u0
            for t in range(steps - 1):
                masked = math.floor(u0 * float(mask_ratio(torch.tensor((t + 1) / steps), "cosine", u0)))
                unknown = max(1, min(unknown - 1, masked))
                expected.append(u0 - unknown)
            expected.append(u0)
        assert decided == expected
        # decided tokens stay decided and unchanged
        for t in range(1, steps):
            before = history[b, t - 1] != MASK
            assert (history[b, t][before] == history[b, t - 1][before]).all()


def test_grouped_sampler_plans_from_its_confidence_step_and_asks_for_the_decided_rows_only():
    tokens = torch.full((3, 49), MASK)
    tokens[1, :10] = 4  # editing: known tokens
    run = lambda fn, **kw: decode(fn, tokens, mask_id=MASK, steps=6, generator=torch.Generator().manual_seed(5),  # noqa: E731
                                  return_history=True, unknown_rows_only=True, **kw)
    # group 1: every step is a confidence step, the official sampler exactly
    assert torch.equal(run(random_logits, sampler="grouped", group=1)[1], run(random_logits)[1])
    asked = []

    def recording(current, rows):
        asked.append(rows.clone())
        return random_logits(current, rows)

    out, history = run(recording, sampler="grouped", group=3)
    assert len(asked) == 6
    for t in (1, 2, 4, 5):  # planned steps: logits only where tokens are decided at this step
        before = history[:, t - 1] if t else tokens
        assert torch.equal(asked[t], (before == MASK) & (history[:, t] != MASK))
    for t in (0, 3):  # confidence steps: every unknown position
        assert torch.equal(asked[t], (history[:, t - 1] if t else tokens) == MASK)
    # the planned positions are those the confidence step ranked next: with flat logits every log-confidence is
    # equal, so the ranking is the Gumbel choice noise, whose uniforms are the step's second draw (after the
    # (B, N, K) token noise); the positions decided by the end of each planned step extend that ranking in order
    g = torch.Generator().manual_seed(9)
    torch.rand(1, 49, K, generator=g)
    ranking = torch.rand(1, 49, generator=g)[0].argsort(descending=True)  # -log(-log u) grows with u
    _, history = decode(lambda current, rows: torch.zeros(int(rows.sum()), K), torch.full((1, 49), MASK),
                        mask_id=MASK, steps=6, sampler="grouped", group=3, unknown_rows_only=True,
                        generator=torch.Generator().manual_seed(9), return_history=True)
    for t in range(3):
        decided = int((history[0, t] != MASK).sum())
        assert set((history[0, t] != MASK).nonzero().flatten().tolist()) == set(ranking[:decided].tolist())
    with pytest.raises(ValueError, match="group"):
        decode(random_logits, tokens, mask_id=MASK, sampler="grouped", group=0)


def test_halton_order_is_rolled_per_sample_and_seeded():
    tokens = torch.full((4, 49), MASK)
    runs = [decode(random_logits, tokens, mask_id=MASK, steps=6, sampler="halton", schedule="arccos",
                   generator=[torch.Generator().manual_seed(s) for s in range(4)], return_history=True)[1]
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    first = runs[0][:, 0] != MASK  # positions decided at the first step differ between samples (random roll)
    assert len({tuple(row.tolist()) for row in first}) > 1


def test_halton_needs_a_square_grid_and_rows_only_equals_full():
    with pytest.raises(ValueError, match="square"):
        decode(random_logits, torch.full((1, 10), MASK), mask_id=MASK, sampler="halton")
    tokens = torch.full((2, 36), MASK)
    a, b = (decode(random_logits, tokens, mask_id=MASK, steps=5, sampler="halton", unknown_rows_only=rows,
                   generator=torch.Generator().manual_seed(3)) for rows in (False, True))
    assert torch.equal(a, b)


def test_power_cosine_guidance_matches_its_formula():
    w, p = 4.0, 2.75
    scale = guidance_scale_at(w, "power-cosine", torch.tensor([0.0, 0.5, 1.0]), p)
    assert scale.tolist() == pytest.approx([0.0, w * (1 - math.cos(math.pi * 0.5**p)) / 2, w])
    assert guidance_scale_at(w, "linear", torch.tensor([0.5])).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="guidance_exponent"):
        guided_logits_fn(lambda t, y: t, torch.zeros(1, dtype=torch.long), mask_id=MASK, null_label=1,
                         guidance_scale=1.0, guidance_schedule="power-cosine", guidance_exponent=0)


def test_guidance_skips_the_unconditional_pass_where_its_scale_is_zero_for_every_sample():
    calls = []

    def model(tokens, labels, rows=None):  # row-wise: logits depend on each row's own tokens and label only
        calls.append(len(tokens))
        logits = (tokens.unsqueeze(-1).float() * 0.01 + labels[:, None, None] * 0.1) * torch.arange(1, K + 1)
        return logits if rows is None else logits[rows]

    labels = torch.tensor([0, 2])
    fn = guided_logits_fn(model, labels, mask_id=MASK, null_label=3, guidance_scale=4.0, guidance_schedule="linear")
    blank = torch.full((2, 16), MASK)
    assert torch.equal(fn(blank), model(blank, labels)) and calls == [2, 2]  # w = 0 at nothing decided: B rows
    half = blank.clone()
    half[:, :8] = 1
    w = 4.0 * 0.5
    cond, uncond = model(half, labels), model(half, torch.tensor([3, 3]))
    calls.clear()
    assert torch.allclose(fn(half), cond + w * (cond - uncond)) and calls[0] == 4  # guided: one 2B pass


def test_temperature_schedule_runs_linearly_and_constant_is_the_official_path():
    assert [temperature_at(t, 5, 2.0, 1.0) for t in range(5)] == [2.0, 1.75, 1.5, 1.25, 1.0]
    assert temperature_at(3, 5, 1.3, None) == 1.3
    tokens = torch.full((2, 16), MASK)
    run = lambda **kw: decode(random_logits, tokens, mask_id=MASK, steps=4,  # noqa: E731
                              generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(run(temperature=1.5), run(temperature=1.5, temperature_end=1.5))


def tiny_transformer(**overrides) -> MaskGITTransformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(**{"codebook_size": 32, "num_classes": 3, "grid_size": 4, "hidden_size": 32,
                               "intermediate_size": 64, "num_heads": 4, "num_layers": 2, "dropout": 0.0,
                               "null_class": True, **overrides})
    net = MaskGITTransformer(cfg).eval()
    for p in net.parameters():  # larger weights than the init, so that attention actually mixes positions
        p.data.normal_(0, 0.3)
    return net


def test_zero_cheap_passes_gives_the_plain_decode_tokens():
    net = tiny_transformer()
    labels = torch.tensor([0, 2])
    tokens = torch.full((2, 16), net.config.mask_id)
    plain = decode(guided_logits_fn(net, labels, mask_id=net.config.mask_id, null_label=3, guidance_scale=2.0),
                   tokens, mask_id=net.config.mask_id, generator=torch.Generator().manual_seed(0),
                   unknown_rows_only=True)
    cached = decode(guided_logits_fn(CachedPasses(net, 0), labels, mask_id=net.config.mask_id, null_label=3,
                                     guidance_scale=2.0),
                    tokens, mask_id=net.config.mask_id, generator=torch.Generator().manual_seed(0),
                    unknown_rows_only=True)
    assert torch.equal(plain, cached)


def test_a_cheap_pass_with_nothing_changed_equals_the_full_pass_and_approximates_after_changes():
    net = tiny_transformer()
    labels = torch.tensor([1, 2])
    tokens = torch.randint(0, 32, (2, 16))
    tokens[:, 5:12] = net.config.mask_id
    rows = tokens == net.config.mask_id
    passes = CachedPasses(net, 1)
    with torch.no_grad():
        full = passes(tokens, labels, rows)
        cheap = passes(tokens, labels, rows)  # the second call is cheap: nothing changed
        assert torch.allclose(full, net(tokens, labels, rows=rows), atol=1e-5)
        assert torch.allclose(cheap, full, atol=1e-5)
        # after a change, the changed and needed rows are recomputed against cached keys/values: an approximation
        passes = CachedPasses(net, 1)
        passes(tokens, labels)
        changed = tokens.clone()
        changed[:, 5] = 7
        approx = passes(changed, labels)
        exact = net(changed, labels)
        unknown = changed == net.config.mask_id
        assert not torch.allclose(approx[unknown], exact[unknown], atol=1e-5)  # unchanged positions were not rerun
        assert (approx[unknown] - exact[unknown]).abs().max() < (exact[unknown]).abs().max()
        assert passes.rows_computed < 2 * changed.numel() + 2 * 2  # full (B * L) + the cheap pass's rows


def _cheap_pass_reference(net, cache_ids, ids, need):
    """A cheap pass written the plain way: every position's keys/values from a full pass over `cache_ids`, the
    `need` positions' overwritten by their fresh ones, then the hidden states of the `need` positions."""
    keys = []
    net.hidden(cache_ids, keys_values=lambda i, k, v: keys.append((k, v)) or (k, v))
    out = []
    for b in range(ids.shape[0]):
        index = need[b].nonzero()[:, 0][None]  # (1, M)

        def swap(i, k, v, b=b, index=index):
            old_k, old_v = (t[b:b + 1].clone() for t in keys[i])
            old_k[:, :, index[0]], old_v[:, :, index[0]] = k, v
            return old_k, old_v

        out.append(net.hidden(ids[b:b + 1].gather(1, index), index, swap)[0])
    return torch.cat(out)  # (sum of M, D) in row-major order


def test_a_cheap_pass_matches_the_plain_reference_and_a_wide_one_runs_full():
    net = tiny_transformer()
    mask, labels = net.config.mask_id, torch.tensor([1, 2])
    before = torch.full((2, 16), mask)
    before[:, :4] = torch.randint(0, 32, (2, 4))
    after = before.clone()
    after[0, 4:6], after[1, 7] = 9, 11  # 2 and 1 tokens decided since the full pass
    rows = after == mask
    with torch.no_grad():
        passes = CachedPasses(net, 1)
        passes(before, labels)
        cheap = passes(after, labels, rows)
        need = torch.cat([torch.zeros(2, 1, dtype=torch.bool), (after != before) | rows], 1)
        ids, cache_ids = net.input_ids(after, labels), net.input_ids(before, labels)
        ref_hidden = _cheap_pass_reference(net, cache_ids, ids, need)
        wanted = torch.cat([torch.zeros(2, 1, dtype=torch.bool), rows], 1)  # (2, 17) over the input ids
        keep = torch.cat([w[n] for w, n in zip(wanted, need)])  # which recomputed rows need logits
        assert torch.allclose(cheap, net.logits(ref_hidden[keep]), atol=1e-4)
        assert passes.rows_computed == 2 * 17 + 2 * int(need.sum(-1).max())
        # without rows: logits at every image position, the fresh ones over the cached ones
        passes = CachedPasses(net, 1)
        passes(before, labels)
        every = passes(after, labels)
        assert torch.allclose(every[rows], cheap, atol=1e-5)
        # a cheap pass that would recompute more than FULL_ABOVE of the positions is a full (exact) pass
        passes = CachedPasses(net, 1)
        passes(torch.full((2, 16), mask), labels)
        wide = passes(after, labels, rows)  # 12 + 4 decided since: every position
        assert torch.allclose(wide, net(after, labels, rows=rows), atol=1e-5)


def test_cheap_passes_keep_the_decoding_invariants():
    net = tiny_transformer()
    mask = net.config.mask_id
    tokens = torch.full((2, 16), mask)
    tokens[0, :6] = 4
    out, history = decode(guided_logits_fn(CachedPasses(net, 2), torch.tensor([0, 1]), mask_id=mask, null_label=3),
                          tokens, mask_id=mask, steps=6, generator=torch.Generator().manual_seed(0),
                          return_history=True, unknown_rows_only=True)
    assert (out != mask).all() and (out[0, :6] == 4).all()
    assert [int((history[1, t] != mask).sum()) for t in range(6)] == sorted(int((history[1, t] != mask).sum())
                                                                           for t in range(6))


def test_the_bf16_inference_copy_keeps_layernorm_float32_fuses_qkv_and_follows_weight_updates():
    net = tiny_transformer()
    assert inference_copy(net, torch.float32) is net  # the float32 path is the network itself
    fast = inference_copy(net, torch.bfloat16)
    assert inference_copy(net, torch.bfloat16) is fast  # cached
    attention = fast.layers[0].Attention_0
    assert attention.fused_qkv is not None and attention.query is None
    assert fast.layers[0].Attention_0.attention_output_ln.weight.dtype == torch.float32
    tokens, labels = torch.randint(0, 32, (2, 16)), torch.tensor([0, 1])
    with torch.no_grad():
        ref = net(tokens, labels)
        got = fast(tokens, labels).float()
        assert (got - ref).abs().max() < 0.1 * ref.abs().max()  # bf16 rounding only
        net.layers[0].Mlp_0.layer_output.bias.add_(1.0)  # an in-place update (an optimizer step) ...
    assert inference_copy(net, torch.bfloat16) is not fast  # ... makes a new copy


def test_float32_tokens_are_identical_to_the_sampler_before_the_fast_path():
    """Same seed, same float32 tokens as the sampler had before the bf16 fast path and the new samplers."""
    from maskgit import MaskGIT

    pipe = MaskGIT.from_pretrained("fashion-mnist", dtype="float32")
    fixture = json.loads((FIXTURES / "float32-tokens-5ed13c6.json").read_text())
    cfg = pipe.transformer.config
    for case in fixture["cases"]:
        tokens = torch.full((10, cfg.num_tokens), cfg.mask_id, dtype=torch.long)
        got = pipe.fill_tokens(tokens, torch.arange(10), generator=[torch.Generator().manual_seed(i) for i in range(10)],
                               **case["settings"])
        assert got.tolist() == case["tokens"], case["settings"]


@pytest.mark.parametrize("options", [
    ["--sampler", "halton", "--schedule", "arccos", "--steps", "5", "--cheap-passes", "1", "--guidance-schedule",
     "power-cosine", "--guidance-exponent", "2", "--temperature-end", "0.8"],
    ["--sampler", "grouped", "--steps", "6", "--cheap-passes", "2", "--guidance-start", "0.5",
     "--choice-temperature", "3"],
])
def test_sample_settings_json_reproduces_the_images_with_every_new_option(tmp_path, options):
    from maskgit.cli import main
    from maskgit.sampling import sample_to_directory

    assert main(["sample", "--labels", "0,7", "--out", str(tmp_path / "a"), "--seed", "3", "--no-progress",
                 *options]) == 0
    meta = json.loads((tmp_path / "a" / "sampling.json").read_text())
    given = dict(zip(options[::2], options[1::2]))
    assert meta["overrides"]["sampler"] == given["--sampler"]
    assert meta["overrides"]["cheap_passes"] == int(given["--cheap-passes"])
    sample_to_directory(meta["model"], tmp_path / "b", labels=["0", "7"], seed=meta["seed"], progress=False,
                        **meta["overrides"])
    for name in ("0000_t-shirt-top.png", "0001_sneaker.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_named_sampling_presets_and_bad_settings(tmp_path):
    import dataclasses

    from maskgit import MaskGIT
    from maskgit.config import SamplingConfig, SamplingPreset

    pipe = MaskGIT.from_pretrained("fashion-mnist", dtype="float32")
    pipe.sampling_presets = (SamplingPreset("quick", dataclasses.replace(pipe.sampling, steps=3, sampler="halton")),)
    assert pipe.resolve_sampling("quick").steps == 3
    assert pipe.resolve_sampling("quick", steps=4).steps == 4  # options override the preset
    assert pipe.resolve_sampling(None) == pipe.sampling
    with pytest.raises(ValueError, match="no sampling preset 'slow'"):
        pipe.resolve_sampling("slow")
    with pytest.raises(ValueError, match="sampler must be one of"):
        pipe.resolve_sampling(sampler="greedy")
    with pytest.raises(ValueError, match="cheap_passes"):
        SamplingConfig(cheap_passes=-1)
    with pytest.raises(ValueError, match="without compile"):
        pipe.generate([0], cheap_passes=1, compile=True)
    saved = pipe.save_pretrained(tmp_path / "m")
    assert MaskGIT.from_pretrained(saved).sampling_presets == pipe.sampling_presets


def test_power_cosine_guidance_follows_the_step_and_decode_passes_it():
    labels = torch.tensor([0])
    cond, uncond = torch.ones(1, 4, K), torch.zeros(1, 4, K)

    def model_fn(tokens, y, rows=None):
        return torch.cat([cond, uncond]) if rows is None else torch.cat([cond, uncond])[rows]

    fn = guided_logits_fn(model_fn, labels, mask_id=MASK, null_label=1, guidance_scale=4.0,
                          guidance_schedule="power-cosine", guidance_exponent=2.0)
    tokens = torch.full((1, 4), MASK)  # nothing decided: a decided-fraction rule would give 0
    got = fn(tokens, step_progress=0.5)
    assert got[0, 0, 0].item() == pytest.approx(1 + 4.0 * (1 - math.cos(math.pi * 0.25)) / 2)
    seen = []
    fn_spy = lambda tokens, rows=None, step_progress=None: seen.append(step_progress) or random_logits(tokens, rows)  # noqa: E731
    fn_spy.takes_step_progress = True
    decode(fn_spy, torch.full((1, 16), MASK), mask_id=MASK, steps=4, generator=torch.Generator().manual_seed(0))
    assert seen == [0.25, 0.5, 0.75, 1.0]


def test_guidance_start_skips_the_unconditional_pass_before_it_and_guides_after():
    calls = []

    def model_fn(tokens, labels, rows=None):  # logits that depend on the label, so guidance changes them
        calls.append(len(tokens))
        return (labels[:, None, None].float() + 1) * torch.ones(len(tokens), tokens.shape[1], 4)

    labels, mask = torch.tensor([0, 2]), 9
    tokens = torch.full((2, 3), mask)
    fn = guided_logits_fn(model_fn, labels, mask_id=mask, null_label=3, guidance_scale=2.0, guidance_start=0.5)
    early = fn(tokens, step_progress=0.5)  # r <= start: the conditional pass alone, w = 0
    late = fn(tokens, step_progress=0.75)  # after it: one 2B pass, cond + w * (cond - uncond)
    assert calls == [2, 4]
    cond, uncond = model_fn(tokens, labels), model_fn(tokens, torch.full_like(labels, 3))
    assert torch.equal(early, cond) and torch.allclose(late, cond + 2.0 * (cond - uncond))
    with pytest.raises(ValueError, match="guidance_start"):
        guided_logits_fn(model_fn, labels, mask_id=mask, null_label=3, guidance_scale=2.0, guidance_start=1.0)
    with pytest.raises(ValueError, match="guidance_start"):
        SamplingConfig(guidance_start=-0.1)


def test_the_bundled_fast_preset_is_the_cell_the_sampler_study_chose():
    root = Path(__file__).resolve().parents[1]
    chosen = json.loads((root / "benchmarks/results/sampler-frontier-seeds-val.json").read_text())["fast"]
    config = json.loads((root / "src/maskgit/pretrained/fashion-mnist/config.json").read_text())
    fast = next(p["sampling"] for p in config["sampling_presets"] if p["name"] == "fast")
    assert chosen["reaches_speed_bar"] and chosen["speedup"] >= 2
    assert {k: fast[k] for k in chosen if k in fast} == {k: v for k, v in chosen.items() if k in fast}
    SamplingConfig(**fast)  # a valid setting
