"""The reduced-precision kernels one at a time: forward time and fraction of the matmul peak, per step added.

    python benchmarks/kernels.py --out benchmarks/results/kernels-imagenet-256-b8

One forward pass of the transformer at a preset's shape (random weights; default `imagenet-256`, batch 8, every
image position's logits) in each variant, cumulatively: `before` (autocast over the float32 network: weights
cast on every call), `weights once` (a bf16 copy, LayerNorm float32), `+ fused qkv`, `+ packed linears, fused
GELU` (oneDNN), `+ attention kernel` (the one measured fastest), `+ freed memory kept` (glibc, the default
now). Each variant runs in a fresh process (the allocator setting cannot be undone), as the median of
`--repeats` forwards, with the bf16 and float32 matmul peaks (1024 x 1024, best of 3) measured in the same
process. float32 is timed before and after the allocator setting (the only change on the float32 path).
Writes OUT.json and OUT.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = [  # name, dtype, inference-copy parts, keep freed memory
    ("before (autocast)", "bfloat16", None, False),
    ("weights cast once", "bfloat16", {"fuse_qkv": False, "pack_linears": False, "kernel": "sdpa"}, False),
    ("+ fused qkv", "bfloat16", {"pack_linears": False, "kernel": "sdpa"}, False),
    ("+ packed linears, fused GELU", "bfloat16", {"kernel": "sdpa"}, False),
    ("+ attention kernel", "bfloat16", {}, False),
    ("+ freed memory kept (default)", "bfloat16", {}, True),
    ("float32 before", "float32", None, False),
    ("float32 + freed memory kept (default)", "float32", None, True),
]


def run_variant(index: int, preset: str, batch: int, repeats: int) -> dict:
    """Time one variant in this process (called in a fresh subprocess)."""
    import dataclasses

    import torch

    from maskgit.fastpath import build_inference_copy, keep_freed_memory, matmul_flops_per_s
    from maskgit.presets import TRANSFORMER_PRESETS
    from maskgit.presets import preset as get_preset
    from maskgit.speed.flops import sampler_cost
    from maskgit.transformer import Attention, MaskGITTransformer

    name, dtype_name, parts, keep = VARIANTS[index]
    if keep:
        keep_freed_memory()
    dtype = getattr(torch, dtype_name)
    cfg = dataclasses.replace(get_preset(TRANSFORMER_PRESETS, preset), dropout=0.0)
    torch.manual_seed(0)
    model = MaskGITTransformer(cfg).eval()
    net = model if parts is None else build_inference_copy(model, dtype, **parts)
    kernel = next(m.kernel for m in net.modules() if isinstance(m, Attention))
    tokens = torch.randint(0, cfg.codebook_size, (batch, cfg.num_tokens))
    labels = torch.arange(batch) % max(cfg.num_classes, 1)
    flops = batch * sampler_cost(cfg, "maskgit", 1).flops  # one full pass, head at every position

    def forward():
        with torch.autocast("cpu", dtype=dtype, enabled=parts is None and dtype != torch.float32):
            return net(tokens, labels)

    times, peaks = [], []
    with torch.inference_mode():
        forward()
        for _ in range(repeats):
            peaks.append(matmul_flops_per_s(dtype, "cpu", 1024))
            start = time.perf_counter()
            forward()
            times.append(time.perf_counter() - start)
    seconds, peak = statistics.median(times), max(peaks)
    return {"variant": name, "dtype": dtype_name, "attention_kernel": kernel, "seconds": seconds,
            "seconds_per_run": times, "flops": flops, "flops_per_s": flops / seconds, "matmul_peak_flops_per_s": peak,
            "fraction_of_peak": flops / seconds / peak}


def plot(result: dict, path: Path) -> None:
    from reporting import pyplot, save_figure

    rows = result["rows"]
    fig, ax = pyplot().subplots(figsize=(8, 4))
    colours = ["tab:blue" if r["dtype"] == "bfloat16" else "tab:grey" for r in rows]
    ax.barh([r["variant"] for r in rows][::-1], [r["fraction_of_peak"] for r in rows][::-1], color=colours[::-1])
    for i, r in enumerate(rows[::-1]):
        ax.text(r["fraction_of_peak"] + 0.01, i, f"{r['fraction_of_peak']:.0%}  {r['seconds']:.2f} s", va="center",
                fontsize=8)
    ax.axvline(0.8, color="tab:red", lw=0.8, ls="--")
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("fraction of the matmul peak of the same dtype, measured in the same process")
    m = result["machine"]
    ax.set_title(f"{result['preset']}, batch {result['batch']}, one forward: {m['cpu']}, {m['threads']} threads",
                 fontsize=9)
    save_figure(fig, path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="OUT.json and OUT.png")
    parser.add_argument("--preset", default="imagenet-256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variant", type=int, default=None, help=argparse.SUPPRESS)  # internal: one variant
    args = parser.parse_args()
    if args.variant is not None:
        print(json.dumps(run_variant(args.variant, args.preset, args.batch, args.repeats)))
        return
    import torch

    from maskgit.atomic import write_json_atomic
    from maskgit.speed.report import describe_machine

    rows = []
    for i in range(len(VARIANTS)):
        cmd = [sys.executable, __file__, "--out", str(args.out), "--preset", args.preset, "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--variant", str(i)]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ).stdout.splitlines()[-1]
        rows.append(json.loads(line))
        print(f"{rows[-1]['variant']:40s} {rows[-1]['seconds']:.3f} s  {rows[-1]['fraction_of_peak']:.0%} of peak",
              flush=True)
    info = describe_machine("cpu")
    result = {"preset": args.preset, "batch": args.batch, "repeats": args.repeats,
              "machine": {"cpu": info.get("cpu_model"), "threads": torch.get_num_threads(), **info},
              "command": "python benchmarks/kernels.py " + " ".join(sys.argv[1:]), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out.with_suffix(".json"), result)
    plot(result, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
