"""Timed benchmark cells: MaskGIT decoding and both autoregressive samplers on one network, side by side.

Every cell samples tokens (the transformer; the tokenizer's decoder is not timed) with random weights of a
preset's shape: a warm-up, then the median of repeats taken round-robin across the samplers of a group, with
the device synchronised before each clock read and every network call timed (network vs the rest). A cell
whose FLOP estimate or first run exceeds the time budget is not timed at full size; `run_benchmark` then
times the whole group on a reduced preset.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..baselines.autoregressive import sample_autoregressive
from ..cached_passes import CachedPasses
from ..config import TransformerConfig
from ..decoding import decode, guided_logits_fn
from ..fastpath import autocast, fast_forward, head_at_unknown_only, inference_copy, matmul_flops_per_s, synchronize
from ..transformer import MaskGITTransformer
from .flops import parse_sampler, sampler_cost


@dataclass(frozen=True)
class BenchSettings:
    """Which cells to time and how (see `maskgit bench --help`)."""

    preset: str = "imagenet-256"
    grids: tuple[int, ...] = (16, 32)
    batches: tuple[int, ...] = (1, 8, 64)
    full_batches: tuple[int, ...] | None = None  # batches timed at full size (None: all); others only reduced
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    samplers: tuple[str, ...] = ("maskgit-8", "maskgit-12", "ar-cached", "ar-naive")
    repeats: int = 3
    cell_budget_s: float = 180.0
    warmup_s: float = 30.0  # a warm-up run stops after this long
    reduce_factor: int = 4  # reduced preset: width, heads and depth divided by this (same depth-to-width ratio)
    reduce: str = "all"  # "all": width, heads and depth reduced; "depth": only the layers (same per-layer costs)
    device: str = "cpu"
    matmul_size: int = 1024
    seed: int = 0


class OverBudget(Exception):
    """Raised from inside a sampling run once the cell's time budget is spent."""


def reduced_config(cfg: TransformerConfig, factor: int, reduce: str = "all") -> TransformerConfig:
    """The same shape with hidden size, MLP width, heads and layers divided by `factor` (`reduce="all"`), or only
    the layers (`reduce="depth"`: every layer as in the full network, so each sampler's per-layer FLOPs, their
    ratios, and the matmul shapes are the full network's; only the embedding and head weigh more)."""
    if reduce == "depth":
        return dataclasses.replace(cfg, num_layers=max(cfg.num_layers // factor, 1))
    if reduce != "all":
        raise ValueError(f"reduce must be 'all' or 'depth', got {reduce!r}")
    return dataclasses.replace(cfg, hidden_size=max(cfg.hidden_size // factor, 8),
                               intermediate_size=max(cfg.intermediate_size // factor, 8),
                               num_heads=max(cfg.num_heads // factor, 1), num_layers=max(cfg.num_layers // factor, 1))


@dataclass
class Networks:
    """One set of random weights, as the bidirectional model and as its causal twin."""

    bidirectional: MaskGITTransformer
    causal: MaskGITTransformer = field(init=False)

    def __post_init__(self):
        self.causal = MaskGITTransformer(dataclasses.replace(self.bidirectional.config, causal=True))
        self.causal.load_state_dict(self.bidirectional.state_dict())
        self.causal.to(next(self.bidirectional.parameters()).device).eval()


def build_networks(cfg: TransformerConfig, device: torch.device, seed: int) -> Networks:
    torch.manual_seed(seed)
    return Networks(MaskGITTransformer(dataclasses.replace(cfg, dropout=0.0)).to(device).eval())


class _RssPeak:
    """Peak resident memory of this process while the block runs (Linux; sampled every 5 ms)."""

    def __enter__(self):
        self.peak, self._stop = _rss_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:
        return 0


def _sampling_run(nets: Networks, sampler: str, batch: int, dtype: torch.dtype, device: torch.device,
                  seed: int, deadline: float, instrument: bool = True) -> tuple[float, float]:
    """Sample one batch of tokens; returns (total seconds, seconds inside the network).

    `instrument` synchronises around every network call to time it (free on CPU; on CUDA it adds a host
    round trip per step, so CUDA cells time the network in a separate run).
    """
    inside = [0.0]
    labels = torch.arange(batch, device=device) % max(nets.bidirectional.config.num_classes, 1)
    generator = torch.Generator(device).manual_seed(seed)

    def timed(fn: Callable) -> Callable:
        def call(*args, **kwargs):
            if time.perf_counter() > deadline:
                raise OverBudget
            if not instrument:
                return fn(*args, **kwargs)
            synchronize(device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            synchronize(device)
            inside[0] += time.perf_counter() - start
            return out
        return call

    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        parallel = parse_sampler(sampler)
        if parallel is not None:
            cfg = nets.bidirectional.config
            tokens = torch.full((batch, cfg.num_tokens), cfg.mask_id, dtype=torch.long, device=device)
            network = CachedPasses(inference_copy(nets.bidirectional, dtype), parallel.cheap_passes) \
                if parallel.cheap_passes else fast_forward(nets.bidirectional, dtype)  # as MaskGIT.fill_tokens
            logits_fn = guided_logits_fn(timed(network), labels, mask_id=cfg.mask_id, null_label=cfg.null_label)
            decode(logits_fn, tokens, mask_id=cfg.mask_id, steps=parallel.steps, sampler=parallel.sampler,
                   group=parallel.cheap_passes + 1,
                   schedule=parallel.schedule, generator=generator,
                   unknown_rows_only=head_at_unknown_only(device, cheap_passes=parallel.cheap_passes))
        else:
            def forward(fn, *args):
                with autocast(device, dtype):
                    return fn(*args)
            sample_autoregressive(nets.causal, labels, sampler=sampler.split("-")[1], generator=generator,
                                  forward=timed(forward))
    synchronize(device)
    return time.perf_counter() - start, inside[0]


@dataclass
class _Cell:
    """One sampler's cell within a group: its description row and the runs timed so far."""

    sampler: str
    row: dict
    skip: str | None = None
    runs: list[tuple[float, float]] = field(default_factory=list)
    spent: float = 0.0  # seconds of this cell's budget used (warm-up included)
    last: float = 0.0  # duration of its last complete run (0: none yet)
    memory: int = 0  # peak memory over its runs


def describe_cell(cfg: TransformerConfig, sampler: str, batch: int, dtype_name: str, settings: BenchSettings,
                  peak_flops: float, skip: str | None = None) -> _Cell:
    """The cell's analytic row (FLOPs, calls, bytes, time at the peak) and why it is skipped, if it is."""
    device, dtype = torch.device(settings.device), getattr(torch, dtype_name)
    parallel = parse_sampler(sampler)
    if parallel is None:
        cost = sampler_cost(cfg, sampler, 8, torch.finfo(dtype).bits // 8)
    else:
        cost = sampler_cost(cfg, "maskgit" if parallel.sampler == "confidence" else parallel.sampler, parallel.steps,
                            torch.finfo(dtype).bits // 8,
                            head_at_unknown=head_at_unknown_only(device, cheap_passes=parallel.cheap_passes),
                            schedule=parallel.schedule, cheap_passes=parallel.cheap_passes)
    row = {"sampler": sampler, "batch": batch, "dtype": dtype_name, "grid": cfg.grid_size,
           "flops_per_image": cost.flops, "network_calls": cost.network_calls,
           "weight_bytes_per_batch": cost.weight_bytes, "kv_cache_bytes_per_image": cost.cache_bytes}
    estimate = cost.flops * batch / peak_flops
    row["estimate_s_at_peak"] = estimate
    if skip is None and estimate > settings.cell_budget_s:
        skip = (f"{estimate:.0f} s per run even at the measured matmul peak, over the {settings.cell_budget_s:.0f} s "
                f"budget")
    return _Cell(sampler, row, skip)


def time_group(nets: Networks, batch: int, dtype_name: str, settings: BenchSettings, peak_flops: float,
               skip: str | None = None) -> list[dict]:
    """Time every sampler of one (network, batch, dtype) group, round-robin.

    Each cell gets a warm-up of at most `warmup_s` seconds, then up to `repeats` timed runs within its own
    `cell_budget_s`; the repeats alternate between the samplers (repeat 1 of each, then repeat 2 ...), so a
    slow phase of a shared machine hits every sampler alike and the speed-ups compare runs made side by side.
    A cell reports the median of its runs (or only its description, status "skipped: <why>"), and its
    fraction of the highest matmul peak among `peak_flops` (the run's) and two measured around the group.
    """
    device, dtype = torch.device(settings.device), getattr(torch, dtype_name)
    cells = [describe_cell(nets.bidirectional.config, s, batch, dtype_name, settings, peak_flops, skip)
             for s in settings.samplers]
    live = [c for c in cells if c.skip is None]
    separate = device.type == "cuda"  # CUDA: time the network in one extra, synchronised run per cell

    def attempt(cell: _Cell, limit: float, instrument: bool = not separate) -> tuple[float, float] | None:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        begin = time.perf_counter()
        try:
            with _RssPeak() as rss:
                return _sampling_run(nets, cell.sampler, batch, dtype, device, settings.seed, begin + limit,
                                     instrument)
        except OverBudget:
            return None
        finally:
            cell.spent += time.perf_counter() - begin
            cell.memory = max(cell.memory, torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                              else rss.peak)

    peak_before = matmul_flops_per_s(dtype, device, settings.matmul_size) if live else peak_flops
    for cell in live:  # a cut-short warm-up still warms kernels and allocator (a long AR run's first steps)
        warm = attempt(cell, min(settings.warmup_s, settings.cell_budget_s))
        cell.last = warm[0] if warm else 0.0
    for _ in range(settings.repeats):
        for cell in live:
            left = settings.cell_budget_s - cell.spent
            if cell.skip or (cell.last and cell.last > left) or left <= 0:
                continue
            run = attempt(cell, left)
            if run is None:
                if not cell.runs:
                    cell.skip = f"over the {settings.cell_budget_s:.0f} s budget after {cell.spent:.0f} s"
                cell.last = float("inf")  # no further attempt
                continue
            cell.runs.append(run)
            cell.last = run[0]
    for cell in live:
        if cell.skip is None and not cell.runs:  # the warm-up left no room for a timed run
            cell.skip = f"no timed run fitted the {settings.cell_budget_s:.0f} s budget after the warm-up"
    network_runs = {c.sampler: attempt(c, float("inf"), True) for c in live if separate and not c.skip}
    # The machine's speed drifts on a shared host: the fraction of peak uses the best of the run's peak and
    # peaks measured just before and after this group (conservative: the highest peak seen).
    peak = max(peak_flops, peak_before, matmul_flops_per_s(dtype, device, settings.matmul_size) if live else 0.0)
    return [_summarise(c, batch, peak, network_runs.get(c.sampler), device) for c in cells]


def _summarise(cell: _Cell, batch: int, peak_flops: float, network_run: tuple[float, float] | None,
               device: torch.device) -> dict:
    row = cell.row
    if cell.skip is not None:
        return {**row, "status": f"skipped: {cell.skip}"}
    total = statistics.median(r[0] for r in cell.runs)
    network = network_run[1] * total / network_run[0] if network_run else statistics.median(r[1] for r in cell.runs)
    flops = row["flops_per_image"] * batch
    return {**row, "status": "timed", "repeats": len(cell.runs), "seconds_per_batch": total,
            "seconds_per_run": [r[0] for r in cell.runs], "seconds_per_image": total / batch,
            "images_per_s": batch / total, "network_fraction": network / total, "achieved_flops_per_s": flops / total,
            "fraction_of_matmul_peak": flops / total / peak_flops, "matmul_peak_flops_per_s": peak_flops,
            "peak_memory_bytes": cell.memory,
            "peak_memory_kind": "cuda max allocated" if device.type == "cuda" else "process RSS"}


def measure_peaks(settings: BenchSettings) -> dict[str, float]:
    """Matmul FLOP/s per dtype on the benchmark's device, measured in this run."""
    return {name: matmul_flops_per_s(getattr(torch, name), settings.device, settings.matmul_size)
            for name in settings.dtypes}


def run_benchmark(settings: BenchSettings, base: TransformerConfig, *, progress: bool = True) -> dict:
    """Time every (grid, batch, dtype, sampler) cell; groups with a cell over budget also run reduced.

    Returns:
        {"peaks": {dtype: FLOP/s}, "rows": [...]} with one row per timed or skipped cell; reduced-preset
        rows carry `"preset": "<name>/<factor>"`.
    """
    from tqdm.auto import tqdm

    device = torch.device(settings.device)
    peaks = measure_peaks(settings)
    groups = [(g, b, d) for g in settings.grids for b in settings.batches for d in settings.dtypes]
    rows = []
    bar = tqdm(total=len(groups) * len(settings.samplers), desc="bench", disable=not progress)
    for grid in settings.grids:
        cfg = dataclasses.replace(base, grid_size=grid)
        full, small = build_networks(cfg, device, settings.seed), None
        for batch in settings.batches:
            for dtype in settings.dtypes:
                skip = None if settings.full_batches is None or batch in settings.full_batches else \
                    "batch not timed at full size (--full-batches)"
                group = time_group(full, batch, dtype, settings, peaks[dtype], skip)
                rows += [{"preset": settings.preset, **r} for r in group]
                bar.update(len(group))
                if any(r["status"].startswith("skipped") for r in group):
                    small = small or build_networks(reduced_config(cfg, settings.reduce_factor, settings.reduce),
                                                    device, settings.seed)
                    name = f"{settings.preset}/{settings.reduce_factor}{'-depth' if settings.reduce == 'depth' else ''}"
                    rows += [{"preset": name, **r} for r in time_group(small, batch, dtype, settings, peaks[dtype])]
                if progress:
                    bar.set_postfix(grid=grid, batch=batch, dtype=dtype)
    bar.close()
    return {"peaks": peaks, "rows": rows}
