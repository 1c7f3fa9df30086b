"""The speed benchmark: analytic costs against the real networks, and `maskgit bench` end to end on a tiny preset."""
import dataclasses
import json
import time

import pytest
import torch

from maskgit.cli import main
from maskgit.config import TransformerConfig
from maskgit.presets import TRANSFORMER_PRESETS, preset
from maskgit.speed.bench import reduced_config
from maskgit.speed.flops import parameter_count, sampler_cost
from maskgit.speed.report import speedups
from maskgit.transformer import MaskGITTransformer


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_parameter_count_matches_the_network(name):
    cfg = TRANSFORMER_PRESETS[name]
    assert parameter_count(cfg) == sum(p.numel() for p in MaskGITTransformer(cfg).parameters())


@pytest.mark.parametrize("name,steps,low,high", [("imagenet-256", 8, 14, 16.1), ("imagenet-512", 12, 35, 43)])
def test_flop_ratios_are_about_n_over_2t(name, steps, low, high):
    cfg = TRANSFORMER_PRESETS[name]
    maskgit = sampler_cost(cfg, "maskgit", steps)
    naive, cached = sampler_cost(cfg, "ar-naive"), sampler_cost(cfg, "ar-cached")
    assert low < naive.flops / maskgit.flops < high  # N / 2T = 16 and 42.7 for the projections alone
    assert cached.flops < maskgit.flops / steps * 1.2  # one token per step: about T times fewer FLOPs
    assert cached.weight_bytes / maskgit.weight_bytes == cfg.num_tokens / steps  # but N weight reads, not T


def test_reduced_preset_keeps_the_depth_to_width_ratio():
    cfg = reduced_config(TRANSFORMER_PRESETS["imagenet-256"], 4)
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.intermediate_size) == (192, 6, 4, 768)
    assert cfg.hidden_size / cfg.num_layers == 768 / 24
    depth = reduced_config(TRANSFORMER_PRESETS["imagenet-256"], 24, "depth")
    assert (depth.hidden_size, depth.num_layers, depth.num_heads) == (768, 1, 16)

    def ratio(cfg):  # naive AR over MaskGIT T = 12 FLOPs at a 32x32 grid
        cfg = dataclasses.replace(cfg, grid_size=32)
        return sampler_cost(cfg, "ar-naive", 12).flops / sampler_cost(cfg, "maskgit", 12).flops

    full = ratio(TRANSFORMER_PRESETS["imagenet-256"])
    assert 0.85 * full < ratio(depth) < full < ratio(reduced_config(TRANSFORMER_PRESETS["imagenet-256"], 4)) * 1.5


def test_speedups_pair_cells_of_the_same_group():
    row = lambda s, ips, flops: {"preset": "p", "grid": 4, "batch": 1, "dtype": "float32", "sampler": s,  # noqa
                                 "images_per_s": ips, "flops_per_image": flops}
    table = speedups([row("maskgit-8", 10.0, 1.0), row("ar-naive", 0.5, 16.0), row("ar-cached", 5.0, 0.2)])
    assert table == [{"preset": "p", "grid": 4, "batch": 1, "dtype": "float32", "maskgit": "maskgit-8",
                      "vs_ar-naive": 20.0, "flops_vs_ar-naive": 16.0, "vs_ar-cached": 2.0, "flops_vs_ar-cached": 0.2}]


def test_bench_command_writes_json_png_md_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "speed.json"
    argv = ["bench", "--out", str(out), "--preset", "tiny", "--grids", "4", "--batches", "1,2", "--dtypes", "float32",
            "--samplers", "maskgit-4,ar-cached,ar-naive", "--repeats", "1", "--matmul-size", "64", "--threads", "1",
            "--no-progress"]
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0 and "Where each sampler wins" in out.with_suffix(".md").read_text()
    assert result["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert result["machine"]["auto_dtype"] in ("float32", "bfloat16") and result["peaks"]["float32"] > 0
    rows = result["rows"]
    assert len(rows) == 6 and all(r["status"].startswith("timed") for r in rows)
    for r in rows:
        assert r["images_per_s"] > 0 and 0 < r["network_fraction"] <= 1 and r["peak_memory_bytes"] > 0
        assert r["seconds_per_image"] == pytest.approx(1 / r["images_per_s"])
    assert len(result["speedups"]) == 2 and all(s["vs_ar-naive"] > 0 for s in result["speedups"])
    assert main(argv) == 2 and "exist already" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--samplers", "maskgit-x"], "unknown sampler"), (["--dtypes", "float8"], "unknown dtype"),
    (["--preset", "huge"], "unknown preset"), (["--batches", "0"], "positive"), (["--device", "cuda:7"], "device"),
    (["--batches", "1,8", "--full-batches", "4"], "must be among --batches"),
])
def test_bench_bad_options(tmp_path, capsys, extra, message):
    assert main(["bench", "--out", str(tmp_path / "x.json"), "--preset", "tiny", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_over_budget_cells_are_timed_on_the_reduced_preset(tmp_path):
    from maskgit.speed.bench import BenchSettings, run_benchmark

    settings = BenchSettings(preset="tiny", grids=(4,), batches=(1,), dtypes=("float32",), samplers=("ar-naive",),
                             repeats=1, cell_budget_s=1e-9, matmul_size=64)
    rows = run_benchmark(settings, dataclasses.replace(TRANSFORMER_PRESETS["tiny"]), progress=False)["rows"]
    assert [r["preset"] for r in rows] == ["tiny", "tiny/4"]
    assert all(r["status"].startswith("skipped") for r in rows)


def test_batches_outside_full_batches_are_timed_only_on_the_reduced_preset():
    from maskgit.speed.bench import BenchSettings, run_benchmark

    settings = BenchSettings(preset="tiny", grids=(4,), batches=(1, 2), full_batches=(1,), dtypes=("float32",),
                             samplers=("maskgit-2", "ar-cached"), repeats=1, matmul_size=64)
    rows = run_benchmark(settings, dataclasses.replace(TRANSFORMER_PRESETS["tiny"]), progress=False)["rows"]
    timed = {(r["preset"], r["batch"], r["sampler"]) for r in rows if r["status"].startswith("timed")}
    assert timed == {("tiny", 1, "maskgit-2"), ("tiny", 1, "ar-cached"), ("tiny/4", 2, "maskgit-2"),
                     ("tiny/4", 2, "ar-cached")}
    assert all("--full-batches" in r["status"] for r in rows if r["preset"] == "tiny" and r["batch"] == 2)


@pytest.mark.parametrize("steps,schedule", [(8, "cosine"), (12, "cosine"), (10, "linear")])
def test_head_rows_follow_the_decoding_schedule(steps, schedule):
    """The FLOP model's unknown counts are the ones `decode` leaves at each step, and only the head shrinks."""
    from maskgit.decoding import decode
    from maskgit.speed.flops import _head_flops, unknown_per_step

    n, k = 64, 5
    tokens = torch.full((2, n), k)
    _, history = decode(lambda t: torch.zeros(*t.shape, k), tokens, mask_id=k, steps=steps, schedule=schedule,
                        generator=torch.Generator().manual_seed(0), return_history=True)
    counts = unknown_per_step(n, steps, schedule)
    assert counts == [n] + (history[0, :-1] == k).sum(-1).tolist()
    cfg = TRANSFORMER_PRESETS["tiny"]
    every, unknown = (sampler_cost(cfg, "maskgit", steps, head_at_unknown=h, schedule=schedule).flops
                      for h in (False, True))
    head = _head_flops(cfg)
    assert every - unknown == head * (steps * cfg.num_tokens - sum(unknown_per_step(cfg.num_tokens, steps, schedule)))


def test_repeats_alternate_between_the_samplers_of_a_group(monkeypatch):
    """Round-robin timing: warm-ups, then repeat 1 of every sampler, then repeat 2; a cell whose only timed run
    overruns its budget is reported skipped, the others keep their runs."""
    from maskgit.speed import bench

    calls, durations = [], {"maskgit-2": 0.25, "ar-cached": 0.5, "ar-naive": 1.0}

    def fake_run(nets, sampler, batch, dtype, device, seed, deadline, instrument=True):
        calls.append(sampler)
        if sampler == "ar-naive" and len(calls) > 3:
            raise bench.OverBudget
        return durations[sampler], durations[sampler] * 0.9

    monkeypatch.setattr(bench, "_sampling_run", fake_run)
    settings = bench.BenchSettings(preset="tiny", grids=(4,), batches=(1,), dtypes=("float32",),
                                   samplers=("maskgit-2", "ar-cached", "ar-naive"), repeats=2, matmul_size=64)
    nets = bench.build_networks(TRANSFORMER_PRESETS["tiny"], torch.device("cpu"), 0)
    rows = bench.time_group(nets, 1, "float32", settings, peak_flops=1e9)
    assert calls == ["maskgit-2", "ar-cached", "ar-naive"] * 2 + ["maskgit-2", "ar-cached"]
    by = {r["sampler"]: r for r in rows}
    assert by["maskgit-2"]["repeats"] == 2 and by["maskgit-2"]["seconds_per_run"] == [0.25, 0.25]
    assert by["ar-cached"]["images_per_s"] == 2.0 and by["ar-cached"]["network_fraction"] == pytest.approx(0.9)
    assert by["ar-naive"]["status"].startswith("skipped: over the")


def test_a_budget_spent_by_the_warm_up_is_reported_not_crashed(monkeypatch):
    from maskgit.speed import bench

    def slow_warm_up(nets, sampler, batch, dtype, device, seed, deadline, instrument=True):
        while time.perf_counter() < deadline:
            time.sleep(0.001)
        raise bench.OverBudget

    monkeypatch.setattr(bench, "_sampling_run", slow_warm_up)
    settings = bench.BenchSettings(preset="tiny", samplers=("maskgit-2",), repeats=2, cell_budget_s=0.05,
                                   matmul_size=64)
    nets = bench.build_networks(TRANSFORMER_PRESETS["tiny"], torch.device("cpu"), 0)
    (row,) = bench.time_group(nets, 1, "float32", settings, peak_flops=1e9)
    assert row["status"].startswith("skipped: no timed run fitted")


def test_bench_sampler_names_and_the_flop_model_of_cached_passes():
    from maskgit.speed.flops import ParallelSampler, parse_sampler, pass_rows, unknown_per_step

    assert parse_sampler("halton-12+c2") == ParallelSampler("halton", 12, 2)
    assert parse_sampler("maskgit-8") == ParallelSampler("confidence", 8, 0) and parse_sampler("ar-naive") is None
    for bad in ("halton-0", "maskgit-8+c", "maskgit-8+cx", "beam-4"):
        with pytest.raises(ValueError, match="unknown sampler"):
            parse_sampler(bad)
    # confidence, 16 tokens, 4 steps: unknown at each step 16, u1 = 14, u2 = 11, u3 = 6; a cheap pass after the
    # full one at step t - 1 recomputes what was unknown at t - 1 (decided since + still unknown), unless that is
    # more than FULL_ABOVE (80%) of the positions: then it runs as a full pass (steps 1 and 2: 16, 14 > 12.8)
    full = pass_rows(16, 4, "maskgit", head_at_unknown=True)
    cheap = pass_rows(16, 4, "maskgit", cheap_passes=1, head_at_unknown=True)
    assert [r[0] for r in full] == [16] * 4 and [r[1] for r in cheap] == [r[1] for r in full]
    assert [r[0] for r in cheap] == [16, 16, 16, full[2][1]]  # rows of step 3 = unknown at step 2
    halton = pass_rows(16, 4, "halton", "arccos", cheap_passes=3, head_at_unknown=True)
    assert sum(r[1] for r in halton) == 16  # the head runs once per token: where it is decided
    cumulative = [sum(r[1] for r in halton[:t + 1]) for t in range(4)]  # decided since step 0 + decided now
    assert [r[0] for r in halton] == [16, cumulative[1], cumulative[2], 16]  # step 3 would be 16 > 12.8: full
    # grouped, 64 tokens, 8 steps, 2 cheap passes: steps 0, 3 and 6 are confidence steps (every unknown position);
    # the planned steps between need the positions decided now, over those decided since their group's full pass
    assert parse_sampler("grouped-8+c2") == ParallelSampler("grouped", 8, 2)
    grouped = pass_rows(64, 8, "grouped", cheap_passes=2, head_at_unknown=True)
    decided = [0] + [64 - u for u in unknown_per_step(64, 8)[1:]] + [64]
    assert [r[1] for r in grouped] == [64 - decided[t] if t % 3 == 0 else decided[t + 1] - decided[t]
                                       for t in range(8)]
    assert [r[0] for r in grouped] == [64 if t % 3 == 0 else decided[t + 1] - decided[3 * (t // 3)]
                                       for t in range(8)]
    cfg = TransformerConfig(codebook_size=64, num_classes=2, grid_size=8, hidden_size=32, intermediate_size=64,
                            num_heads=2, num_layers=2)
    costs = [sampler_cost(cfg, "halton", 8, schedule="arccos", cheap_passes=c, head_at_unknown=True).flops
             for c in (0, 1, 2)]
    assert costs[0] > costs[1] > costs[2]
    assert sampler_cost(cfg, "grouped", 8, cheap_passes=2, head_at_unknown=True).flops < \
        sampler_cost(cfg, "maskgit", 8, cheap_passes=2, head_at_unknown=True).flops


def test_bench_times_the_new_samplers(tmp_path):
    from maskgit.speed.bench import BenchSettings, run_benchmark

    settings = BenchSettings(preset="tiny", grids=(4,), batches=(2,), dtypes=("float32",),
                             samplers=("maskgit-3", "halton-3", "halton-3+c1", "grouped-3+c2"), repeats=1,
                             matmul_size=64, warmup_s=5, cell_budget_s=30)
    rows = run_benchmark(settings, preset(TRANSFORMER_PRESETS, "tiny"), progress=False)["rows"]
    assert [r["status"] for r in rows] == ["timed"] * 4
    assert rows[2]["flops_per_image"] < rows[1]["flops_per_image"]
