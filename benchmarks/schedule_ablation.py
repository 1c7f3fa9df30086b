"""Mask-schedule x iteration-count ablation (the paper's Figure 6 / Table 4 at Fashion-MNIST scale).

For every schedule and number of decoding steps T, generate `--num-per-class` images per class with
the same seed, and score them with the judge classifier: agreement with the requested class and the
Frechet distance of its features to the real test images. Writes JSON and a PNG plot.

    python benchmarks/schedule_ablation.py --model fashion-mnist --out benchmarks/results/schedule_ablation
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from maskgit import MaskGIT
from maskgit.evaluation.classifier import load_classifier
from maskgit.evaluation.generation import generate_per_class, real_baseline, score_images
from maskgit.evaluation.report import dataset_tensors, resolve_classifier

SCHEDULES = ["cosine", "square", "cubic", "exponential", "linear", "square-root", "logarithmic"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--classifier", default="fashion-mnist-classifier")
    parser.add_argument("--steps", default="2,4,8,12,16")
    parser.add_argument("--schedules", default=",".join(SCHEDULES))
    parser.add_argument("--num-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/schedule_ablation"))
    args = parser.parse_args()

    pipe = MaskGIT.from_pretrained(args.model)
    judge = load_classifier(resolve_classifier(args.classifier))
    train_x, _ = dataset_tensors("fashion-mnist", "trainval")
    test_x, test_y = dataset_tensors("fashion-mnist", "test")
    base = real_baseline(judge, train_x, test_x, test_y)
    real_feats = base.pop("test_features")
    rows = []
    for schedule in args.schedules.split(","):
        for steps in (int(s) for s in args.steps.split(",")):
            start = time.time()
            images, labels = generate_per_class(pipe, args.num_per_class, seed=args.seed, steps=steps,
                                                schedule=schedule)
            score = score_images(judge, images, labels, real_feats)
            rows.append({"schedule": schedule, "steps": steps, "agreement": score["agreement"],
                         "frechet": score["frechet_to_real_test"], "seconds": round(time.time() - start, 2)})
            print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "num_per_class": args.num_per_class, "seed": args.seed, "baseline": base,
              "sampling": {**vars(pipe.sampling)}, "rows": rows,
              "command": "python benchmarks/schedule_ablation.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, base, args.out.with_suffix(".png"))


def plot(rows: list[dict], base: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for schedule in dict.fromkeys(r["schedule"] for r in rows):
        rs = [r for r in rows if r["schedule"] == schedule]
        axes[0].plot([r["steps"] for r in rs], [r["frechet"] for r in rs], marker="o", label=schedule)
        axes[1].plot([r["steps"] for r in rs], [r["agreement"] for r in rs], marker="o", label=schedule)
    axes[0].axhline(base["frechet_real_train_vs_test"], color="k", ls="--", label="real train vs test")
    axes[0].set(xlabel="decoding steps T", ylabel="Frechet distance (judge features)", yscale="log")
    axes[1].set(xlabel="decoding steps T", ylabel="judge agrees with requested class")
    axes[0].legend(fontsize=8)
    fig.suptitle("Mask schedule ablation (Fashion-MNIST, bundled model)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
