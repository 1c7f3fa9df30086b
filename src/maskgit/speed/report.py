"""The benchmark report: machine description, speed-up table, FLOP / memory-traffic reasoning, JSON + PNG + MD.

`bench_to_files` is what `maskgit bench` runs: it checks the outputs first, times the cells
(`bench.run_benchmark`) and writes `<out>.json`, a plot `<out>.png` and the table with the reasoning `<out>.md`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import platform
from pathlib import Path

import torch

from ..atomic import write_bytes_atomic, write_json_atomic
from ..config import to_dict
from ..fastpath import cpu_flags, resolve_dtype
from ..outputs import check_writable, result_paths
from ..presets import TRANSFORMER_PRESETS, preset
from .bench import BenchSettings, run_benchmark
from .flops import BENCH_SAMPLER_HELP, parse_sampler

REASONING = """\
## Where each sampler wins (FLOPs and memory traffic)

Per image, with N image tokens, T MaskGIT steps and P the FLOPs of one token through the network:

* **MaskGIT** runs T full passes over the 1 + N tokens: about T (N + 1) P FLOPs, and reads the weights
  T times per batch.
* **Naive AR** reruns the prefix for each of the N tokens: about N (N + 1) / 2 P FLOPs (N / 2T times
  MaskGIT's: 16x at 16x16 and T = 8, 43x at 32x32 and T = 12, less the attention and head terms), and reads
  the weights N times per batch.
* **KV-cached AR** runs one token per step: about N P FLOPs, T times *fewer* than MaskGIT, but N network calls
  per batch, each reading every weight once (plus the key/value cache: 2 x layers x l x d values at step l).

A network call on B x L tokens does about 2 B L FLOPs per weight it reads. A single-token step (cached AR) does
2 B FLOPs per weight, i.e. B / 2 FLOP per byte in float32: far below a CPU's or GPU's FLOP-per-byte balance
(tens to hundreds), so at small batches it is bound by memory bandwidth, and each of its N steps costs about
as much as one of MaskGIT's T full passes; MaskGIT then wins by up to N / T. As the batch grows the cached
step becomes compute-bound and its T-fold FLOP advantage takes over, while per-step overheads (N Python
iterations, kernel launches, small-matmul efficiency) keep favouring MaskGIT at every batch. The measured
ratios below show where the crossover lies on this machine; the naive AR loses everywhere.
"""


def describe_machine(device: str) -> dict:
    """What the numbers were measured on."""
    flags = cpu_flags()
    info = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_bf16_flags": sorted({"avx512f", "avx512_bf16", "amx_bf16", "avx2"} & flags),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device,
            "auto_dtype": str(resolve_dtype("auto", device)).removeprefix("torch."),
            "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None}
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu_model"] = platform.processor()
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _parses(name: str) -> bool:
    try:
        parse_sampler(name)
    except ValueError:
        return False
    return True


def speedups(rows: list[dict]) -> list[dict]:
    """Per (preset, grid, batch, dtype): MaskGIT's speed-up over each AR sampler, measured and by FLOPs."""
    timed = {(r["preset"], r["grid"], r["batch"], r["dtype"], r["sampler"]): r for r in rows if "images_per_s" in r}
    out = []
    for (name, grid, batch, dtype, sampler), row in sorted(timed.items()):
        if parse_sampler(sampler) is None:
            continue
        entry = {"preset": name, "grid": grid, "batch": batch, "dtype": dtype, "maskgit": sampler}
        for ar in ("ar-naive", "ar-cached"):
            other = timed.get((name, grid, batch, dtype, ar))
            entry[f"vs_{ar}"] = other and row["images_per_s"] / other["images_per_s"]
            entry[f"flops_vs_{ar}"] = other and other["flops_per_image"] / row["flops_per_image"]
        out.append(entry)
    return out


def markdown_table(result: dict) -> str:
    lines = ["| preset | grid | batch | dtype | sampler | images/s | s/image | GFLOP/image | % matmul peak | "
             "network % | peak memory MB | status |", "|" + "---|" * 12]
    for r in result["rows"]:
        cells = [r["preset"], f"{r['grid']}x{r['grid']}", r["batch"], r["dtype"], r["sampler"]]
        if "images_per_s" in r:
            cells += [f"{r['images_per_s']:.3g}", f"{r['seconds_per_image']:.3g}", f"{r['flops_per_image'] / 1e9:.3g}",
                      f"{100 * r['fraction_of_matmul_peak']:.0f}", f"{100 * r['network_fraction']:.0f}",
                      f"{r['peak_memory_bytes'] / 2**20:.0f}", r["status"]]
        else:
            cells += ["", "", f"{r['flops_per_image'] / 1e9:.3g}", "", "", "", r["status"]]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", "| preset | grid | batch | dtype | MaskGIT | speed-up vs naive AR (FLOP ratio) | "
              "speed-up vs KV-cached AR (FLOP ratio) |", "|" + "---|" * 7]
    fmt = lambda x, f: "not timed" if x is None else f"{x:.2f}x ({f:.1f}x)"  # noqa: E731
    for s in result["speedups"]:
        lines.append(f"| {s['preset']} | {s['grid']}x{s['grid']} | {s['batch']} | {s['dtype']} | {s['maskgit']} | "
                     f"{fmt(s['vs_ar-naive'], s['flops_vs_ar-naive'] or 0)} | "
                     f"{fmt(s['vs_ar-cached'], s['flops_vs_ar-cached'] or 0)} |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """images/s against batch size, one panel per (preset, grid, dtype), one line per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if "images_per_s" in r]
    panels = sorted({(r["preset"], r["grid"], r["dtype"]) for r in rows})
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.5 * max(len(panels), 1), 3.8), squeeze=False)
    for ax, (name, grid, dtype) in zip(axes[0], panels):
        for sampler in sorted({r["sampler"] for r in rows}):
            pts = sorted((r["batch"], r["images_per_s"]) for r in rows
                         if (r["preset"], r["grid"], r["dtype"], r["sampler"]) == (name, grid, dtype, sampler))
            if pts:
                ax.plot(*zip(*pts), marker="o", label=sampler)
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="images / s",
               title=f"{name}, {grid}x{grid}, {dtype}")
        ax.legend(fontsize=7)
    m = result["machine"]
    fig.suptitle(f"{m['cpu_model']} ({m['cpu_capability']}, {m['torch_threads']} threads), {m['device']}, "
                 f"torch {m['torch']}", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def bench_to_files(settings: BenchSettings, out: str | Path, *, overwrite: bool = False,
                   progress: bool = True) -> dict:
    """Run the benchmark and write `out` (.json), the plot (.png) and the table with the reasoning (.md)."""
    out, png = result_paths(out, overwrite)
    md = out.with_suffix(".md")
    check_writable([md], overwrite)
    base = preset(TRANSFORMER_PRESETS, settings.preset)
    machine = describe_machine(settings.device)
    result = {"what": "sampling speed of MaskGIT vs the autoregressive baseline on one network (random weights "
                      "of the preset's shape; tokens only, the tokenizer decoder is not timed)",
              "settings": to_dict(settings), "machine": machine, "network": to_dict(base),
              **run_benchmark(settings, base, progress=progress)}
    result["speedups"] = speedups(result["rows"])
    write_json_atomic(out, result)
    plot(result, png)
    text = (f"# Sampling speed ({settings.preset}, {machine['device']})\n\nMachine: {machine}\n\n"
            f"{markdown_table(result)}\n\n{REASONING}")
    write_bytes_atomic(md, text.encode())
    return result


def settings_from_args(**kwargs) -> BenchSettings:
    """BenchSettings from keyword arguments (None = default), range-checked."""
    settings = BenchSettings(**{k: v for k, v in kwargs.items() if v is not None})
    if settings.preset not in TRANSFORMER_PRESETS:
        raise KeyError(f"unknown preset {settings.preset!r}; choose one of {sorted(TRANSFORMER_PRESETS)}")
    if settings.reduce not in ("all", "depth"):
        raise ValueError(f"--reduce must be all or depth, got {settings.reduce!r}")
    if settings.full_batches is not None and not set(settings.full_batches) <= set(settings.batches):
        raise ValueError(f"--full-batches {settings.full_batches} must be among --batches {settings.batches}")
    for name in ("grids", "batches"):
        if not getattr(settings, name) or min(getattr(settings, name)) < 1:
            raise ValueError(f"--{name} needs positive integers, got {getattr(settings, name)}")
    bad = [s for s in settings.samplers if not _parses(s)]
    if bad or not settings.samplers:
        raise ValueError(f"unknown sampler(s) {bad}; use {BENCH_SAMPLER_HELP}")
    bad = [d for d in settings.dtypes if d not in ("float32", "bfloat16", "float16")]
    if bad or not settings.dtypes:
        raise ValueError(f"unknown dtype(s) {bad}; use float32, bfloat16, float16")
    if settings.repeats < 1 or settings.cell_budget_s <= 0 or settings.warmup_s <= 0 or settings.reduce_factor < 1:
        raise ValueError("--repeats, --cell-budget, --warmup and --reduce-factor must be positive")
    from ..pipeline import resolve_device

    return dataclasses.replace(settings, device=str(resolve_device(settings.device)))
