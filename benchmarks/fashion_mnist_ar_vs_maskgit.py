"""MaskGIT against the autoregressive baseline on Fashion-MNIST: quality and time per image (issue 10).

Both models share the bundled tokenizer and the training budget (2,200 steps of 128 images,
configs/transformer-fashion-mnist.json vs configs/transformer-ar-fashion-mnist.json). For each model: a
10,000-image class-balanced dump (`maskgit sample-dump`, same seeds) scored by `maskgit metrics` with the judge
classifier's features (Frechet distance, precision/recall, agreement, CAS), and the wall time of sampling
--time-images images (tokens only, then tokens + tokenizer decoding; median of --repeats after a warm-up).
Writes OUT.json, OUT.md and OUT.png.

    python benchmarks/fashion_mnist_ar_vs_maskgit.py --ar runs/transformer-ar-fmnist/final \
        --out benchmarks/results/ar-vs-maskgit-fmnist
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from reporting import STEM_HELP, pyplot, save_figure, write_results

from maskgit.evaluation.sample_dump import balanced_labels, sample_generators
from maskgit.outputs import check_writable
from maskgit.pipeline import MaskGIT

METRICS = ("frechet_distance", "precision", "recall", "class_agreement")


def cli(*args: str, processes: int = 1) -> float:
    """Run a `maskgit` command (in `processes` CPU processes through accelerate); returns its wall time."""
    if processes > 1:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "-m", "maskgit.cli", *args]
    else:
        cmd = [sys.executable, "-m", "maskgit.cli", *args]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1" if processes > 1 else
                                         os.environ.get("OMP_NUM_THREADS", "2")})
    return time.perf_counter() - start


def score(name: str, model: str, work: Path, args) -> dict:
    """Dump + metrics of one model (both resume / reuse finished files)."""
    dump = work / f"{name}.npz"
    dump_s = None
    if dump.is_file():
        made = json.loads(dump.with_suffix(".json").read_text())
        if (made["model"], made["num_per_class"]) != (model, args.num_per_class):
            raise SystemExit(f"{dump} holds {made['num_per_class']} per class of {made['model']}: use another --work")
    else:
        dump_s = cli("sample-dump", "--model", model, "--num-per-class", str(args.num_per_class), "--batch-size",
                     "250", "--seed", "0", "--out", str(dump), "--no-progress", processes=args.processes)
    metrics_path = work / f"{name}-metrics.json"
    if not metrics_path.is_file():
        cli("metrics", str(dump), "--ref", str(work / "fmnist-test.npz"), "--baseline",
            str(work / "fmnist-train10k.npz"), "--features", "classifier:fashion-mnist-classifier", "--cas",
            "--out", str(metrics_path))
    m = json.loads(metrics_path.read_text())
    gen = m["generated"]
    return {"model": model, "dump": str(dump), "dump_wall_s": dump_s, "dump_settings": m["dump"]["settings"],
            **{k: gen[k] for k in METRICS}, "cas_top1": m["cas"]["generated"]["top1"],
            "cas_real_top1": m["cas"]["real"]["top1"], "real_baseline": {k: m["baseline"][k] for k in METRICS}}


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_sampler(pipe: MaskGIT, images: int, repeats: int, **sampling) -> dict:
    """Seconds per image of sampling `images` class-balanced images in one batch: tokens, and tokens + decoding."""
    labels = torch.as_tensor(balanced_labels(10, images // 10))
    gens = lambda: sample_generators(0, range(len(labels)))  # noqa: E731
    if pipe.transformer.config.causal:
        tokens = lambda: pipe.sample_autoregressive(labels, generator=gens(), **sampling)  # noqa: E731
    else:
        start = torch.full((len(labels), pipe.transformer.config.num_tokens), pipe.transformer.config.mask_id)
        tokens = lambda: pipe.fill_tokens(start, labels, generator=gens(), **sampling)  # noqa: E731
    t_tokens = median_time(tokens, repeats)
    t_images = median_time(lambda: pipe.generate(labels, generator=gens(), **sampling), repeats)
    return {"batch": len(labels), "s_per_image_tokens": t_tokens / len(labels),
            "s_per_image_with_decoder": t_images / len(labels)}


def table(result: dict) -> str:
    rows = result["models"]
    lines = ["| model | FD (judge features) | precision | recall | class agreement | CAS top-1 | "
             "ms/image, tokens | ms/image, with decoder |", "|---|---|---|---|---|---|---|---|"]
    for key, row in rows.items():
        for sampler, t in row["timing"].items():
            q = (f"{row['frechet_distance']:.2f} | {row['precision']:.3f} | {row['recall']:.3f} | "
                 f"{row['class_agreement']:.3f} | {row['cas_top1']:.3f}")
            lines.append(f"| {key} ({sampler}) | {q} | {1e3 * t['s_per_image_tokens']:.2f} | "
                         f"{1e3 * t['s_per_image_with_decoder']:.2f} |")
    base = next(iter(rows.values()))["real_baseline"]
    lines.append(f"| 10k real train images | {base['frechet_distance']:.2f} | {base['precision']:.3f} | "
                 f"{base['recall']:.3f} | {base['class_agreement']:.3f} | "
                 f"{next(iter(rows.values()))['cas_real_top1']:.3f} (real) | | |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    rows = result["models"]
    names = list(rows)
    fig, axes = pyplot().subplots(1, 4, figsize=(15, 3.6))
    for ax, key, title in zip(axes, ("frechet_distance", "precision", "recall", "cas_top1"),
                              ("Frechet distance (lower is better)", "precision", "recall", "CAS top-1")):
        ax.bar(names, [rows[n][key] for n in names], color=["tab:blue", "tab:orange"][: len(names)])
        ax.set_title(title)
    fig.suptitle(f"Fashion-MNIST, {result['num_images']} samples per model vs the 10k test images (judge features)")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maskgit", default="fashion-mnist", help="the MaskGIT model (default: the bundled one)")
    parser.add_argument("--ar", required=True, help="the autoregressive model (a `maskgit train` run's final/)")
    parser.add_argument("--out", type=Path, required=True, help=STEM_HELP)
    parser.add_argument("--work", type=Path, default=Path("/tmp/maskgit-ar-vs-maskgit"),
                        help="dumps and reference batches (reused when present)")
    parser.add_argument("--num-per-class", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=2, help="CPU processes for the sample dumps")
    parser.add_argument("--time-images", type=int, default=100, help="batch timed per sampler (multiple of 10)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    paths = {ext: args.out.with_suffix(ext) for ext in (".json", ".md", ".png")}
    check_writable(list(paths.values()), args.overwrite)
    if args.time_images < 10 or args.time_images % 10:
        parser.error(f"--time-images must be a positive multiple of 10 (class-balanced), got {args.time_images}")
    args.work.mkdir(parents=True, exist_ok=True)
    for split, name, extra in (("test", "fmnist-test", ()), ("trainval", "fmnist-train10k", ("--num", "10000"))):
        if not (args.work / f"{name}.npz").is_file():
            cli("reference-batch", "--data", "fashion-mnist", "--split", split, *extra, "--seed", "0",
                "--out", str(args.work / f"{name}.npz"))
    models = {"MaskGIT": score("maskgit", args.maskgit, args.work, args),
              "autoregressive": score("ar", args.ar, args.work, args)}
    torch.set_num_threads(args.threads)
    models["MaskGIT"]["timing"] = {"T=8": time_sampler(MaskGIT.from_pretrained(args.maskgit), args.time_images,
                                                           args.repeats, steps=8)}
    ar = MaskGIT.from_pretrained(args.ar)
    models["autoregressive"]["timing"] = {s: time_sampler(ar, args.time_images, args.repeats, sampler=s)
                                          for s in ("cached", "naive")}
    result = {"what": __doc__.split("\n\n")[0], "num_images": 10 * args.num_per_class, "models": models,
              "machine": {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                          "threads": args.threads, "platform": platform.platform()},
              "command": " ".join(sys.argv)}
    write_results(paths[".json"], result, table(result), lambda png: plot(result, png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
