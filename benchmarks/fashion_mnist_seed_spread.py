"""How much a 1,000-sample score moves with the sampling seed (issue 13's bar is scored on one seed).

For each model and each seed 0..N-1: `maskgit evaluate`'s scores (1,000 samples, 100 per class, at the model's
default settings unless overridden) against the 10,000 real test images; beside them, the same Frechet distance
for 1,000 random real training images drawn with the same seed (the spread of FD at this count on real data).
Seed s here is exactly `maskgit evaluate --seed s`. Writes JSON (every score), a markdown table and a PNG.

    python benchmarks/fashion_mnist_seed_spread.py --model fashion-mnist runs/transformer-fmnist-v2-bundle \
        --labels v3 v2 --seeds 10 --out benchmarks/results/fmnist-v3/seed-spread
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from reporting import add_result_args, pyplot, result_files, save_figure, write_results

from maskgit.evaluation.classifier import predict
from maskgit.evaluation.frechet import frechet_or_none
from maskgit.evaluation.generation import generate_per_class, score_images
from maskgit.evaluation.report import check_data, load_judge, model_data

FD_BAR = 6.25  # issue 13: at most half of v1's 12.5


def real_spread(judge, train_x: torch.Tensor, test_features: torch.Tensor, seeds: int, count: int) -> list[float]:
    """FD of `count` random real training images (seed s: permutation seed s) to the test features."""
    out = []
    for seed in range(seeds):
        idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:count]
        _, feats = predict(judge, train_x[idx])
        out.append(frechet_or_none(feats.numpy(), test_features.numpy()))
    return out


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def table(result: dict) -> str:
    lines = ["| model | seeds | FD mean +- std (min-max) | seeds with FD <= 6.25 | agreement mean (min) | "
             "weakest class mean (min) | precision / recall mean |", "|---|---|---|---|---|---|---|"]
    for label, m in result["models"].items():
        fd = summary([r["frechet_to_real_test"] for r in m["seeds"]])
        agree = [r["agreement"] for r in m["seeds"]]
        weakest = [min(r["agreement_per_class"].values()) for r in m["seeds"]]
        passing = sum(r["frechet_to_real_test"] <= FD_BAR for r in m["seeds"])
        lines.append(f"| {label} | {len(m['seeds'])} | {fd['mean']:.2f} +- {fd['std']:.2f} ({fd['min']:.2f}-"
                     f"{fd['max']:.2f}) | {passing} | {statistics.fmean(agree):.3f} ({min(agree):.3f}) | "
                     f"{statistics.fmean(weakest):.2f} ({min(weakest):.2f}) | "
                     f"{statistics.fmean(r['precision'] for r in m['seeds']):.3f} / "
                     f"{statistics.fmean(r['recall'] for r in m['seeds']):.3f} |")
    real = summary(result["real_train_frechet"])
    lines.append(f"| 1,000 real train images | {len(result['real_train_frechet'])} | {real['mean']:.2f} +- "
                 f"{real['std']:.2f} ({real['min']:.2f}-{real['max']:.2f}) | | | | |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4))
    for label, m in result["models"].items():
        ax.plot([r["seed"] for r in m["seeds"]], [r["frechet_to_real_test"] for r in m["seeds"]], "o-", label=label)
    real = result["real_train_frechet"]
    ax.plot(range(len(real)), real, "s:", color="grey", label="1,000 real train images")
    ax.axhline(FD_BAR, color="red", lw=0.8, ls="--", label="issue 13 bar (6.25)")
    ax.set_xlabel("seed (maskgit evaluate --seed)")
    ax.set_ylabel("Frechet distance to the test set (judge features)")
    ax.set_title("1,000 samples (100 per class) per seed, default settings")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", default=["fashion-mnist"], help="bundled names or model directories")
    parser.add_argument("--labels", nargs="+", default=None, help="a name per model for the table (default: paths)")
    parser.add_argument("--classifier", default="fashion-mnist-classifier")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument("--num-per-class", type=int, default=100)
    add_result_args(parser)
    args = parser.parse_args(argv)
    labels = args.labels or args.model
    if len(labels) != len(args.model):
        parser.error(f"--labels needs one name per model ({len(args.model)}), got {len(labels)}")
    if args.seeds < 1 or args.num_per_class < 1:
        parser.error("--seeds and --num-per-class must be >= 1")
    from maskgit.pipeline import MaskGIT

    out, _ = result_files(args.out, args.overwrite)
    start = time.time()
    result = {"command": " ".join(["python", *sys.argv]), "num_per_class": args.num_per_class,
              "classifier": args.classifier, "models": {}}
    test_features = None
    for label, model in zip(labels, args.model):
        pipe = MaskGIT.from_pretrained(model)
        judge = load_judge(args.classifier, pipe, "fashion-mnist", model)
        if test_features is None:
            test_x, test_y = model_data("fashion-mnist", pipe, "test")
            check_data(test_x, test_y, pipe, "fashion-mnist")
            _, test_features = predict(judge, test_x)
            train_x, _ = model_data("fashion-mnist", pipe, "trainval")
            result["real_train_frechet"] = real_spread(judge, train_x, test_features, args.seeds,
                                                       args.num_per_class * pipe.transformer.config.num_classes)
        rows = []
        for seed in range(args.seeds):
            images, requested = generate_per_class(pipe, args.num_per_class, seed=seed)
            row = {"seed": seed, **score_images(judge, images, requested, test_features)}
            print(f"{label} seed {seed}: FD {row['frechet_to_real_test']:.2f}, agreement {row['agreement']:.3f}, "
                  f"weakest class {min(row['agreement_per_class'].values()):.2f}", flush=True)
            rows.append(row)
        result["models"][label] = {"model": str(model), "sampling": pipe.sampling_settings(), "seeds": rows}
    result["seconds"] = round(time.time() - start, 1)
    write_results(out, result, table(result), lambda png: plot(result, png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
