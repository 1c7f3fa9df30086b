"""Where the bundled model's distance to real Fashion-MNIST comes from: tokenizer floor vs transformer (issue 13).

Scores, with the judge classifier's features and the same count per class: real train images, the tokenizer's
reconstructions of them (the best a perfect transformer could sample), the reconstructions of the real set
itself, and samples at the given settings; each against the real set (test split; `--split val` for choosing
settings), overall and per class. Writes JSON, a markdown table and a PNG (per-class Frechet distance and
agreement).

    python benchmarks/fashion_mnist_decomposition.py --out benchmarks/results/decomposition-v1
    python benchmarks/fashion_mnist_decomposition.py --split val --guidance-scale 0.5 --out /tmp/val-g05
    python benchmarks/fashion_mnist_decomposition.py --tokenizer runs/tokenizer-fmnist-v2/final --out /tmp/tok-v2

`--tokenizer DIR` scores another tokenizer's floor alone (no samples: the model's transformer was not trained
on its codes). `--before JSON` (an earlier model's result, same split and count) adds a before / after table.

    python benchmarks/fashion_mnist_decomposition.py --before benchmarks/results/decomposition-v1.json \
        --out benchmarks/results/decomposition-v2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from reporting import add_result_args, pyplot, result_files, save_figure, write_results

from maskgit.evaluation.decomposition import SETS, decompose
from maskgit.evaluation.report import check_data, load_judge, model_data

LABELS = {"real_train": "real train images", "recon_train": "their reconstructions (tokenizer floor)",
          "recon_test": "reconstructions of the real set (paired)", "samples": "samples"}


def table(result: dict, class_names: list[str]) -> str:
    sets = result["sets"]
    lines = ["| set | agreement | FD to real | precision | recall | FD to train reconstructions |",
             "|---|---|---|---|---|---|"]
    for name in (n for n in SETS if n in sets):
        row = sets[name]
        to_recon = row.get("frechet_to_recon_train")
        lines.append(f"| {LABELS[name]} | {row['agreement']:.3f} | {row['frechet_to_real']:.2f} | "
                     f"{row['precision']:.3f} | {row['recall']:.3f} | "
                     f"{'' if to_recon is None else f'{to_recon:.2f}'} |")
    shown = [n for n in ("real_train", "recon_train", "samples") if n in sets]
    lines += ["", "| class | " + " | ".join(f"{n.replace('_', ' ')} agreement / FD" for n in shown) + " |",
              "|---" * (len(shown) + 1) + "|"]
    for c, cname in enumerate(class_names):
        cells = [sets[n]["per_class"][c] for n in shown]
        lines.append(f"| {cname} | " + " | ".join(f"{x['agreement']:.2f} / {x['frechet_to_real']:.1f}" for x in cells)
                     + " |")
    return "\n".join(lines) + "\n"


def before_after(before: dict, after: dict, labels: tuple[str, str] = ("before", "after")) -> str:
    """One table of every set both results hold: agreement, FD to real, precision, recall, before and after."""
    for key in ("split", "num_per_class", "seed"):
        if before.get(key) != after.get(key):
            raise ValueError(f"the results differ in {key} ({before.get(key)!r} vs {after.get(key)!r}): "
                             f"a before / after table needs the same real set, count and seeds")
    lines = ["| set | model | agreement | FD to real | precision | recall |", "|---|---|---|---|---|---|"]
    for name in (n for n in SETS if n in before["sets"] and n in after["sets"]):
        for label, result in zip(labels, (before, after)):
            row = result["sets"][name]
            lines.append(f"| {LABELS[name]} | {label} | {row['agreement']:.3f} | {row['frechet_to_real']:.2f} | "
                         f"{row['precision']:.3f} | {row['recall']:.3f} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, class_names: list[str], path: Path) -> None:
    import numpy as np

    sets = [n for n in ("real_train", "recon_train", "samples") if n in result["sets"]]
    x = np.arange(len(class_names))
    fig, axes = pyplot().subplots(1, 2, figsize=(13, 4.2))
    for i, name in enumerate(sets):
        per = result["sets"][name]["per_class"]
        axes[0].bar(x + (i - 1) * 0.27, [per[c]["frechet_to_real"] for c in range(len(class_names))], 0.27,
                    label=LABELS[name])
        axes[1].bar(x + (i - 1) * 0.27, [per[c]["agreement"] for c in range(len(class_names))], 0.27,
                    label=LABELS[name])
    for ax, title in zip(axes, ("Frechet distance to the real class (judge features)", "judge agrees with class")):
        ax.set_xticks(x, class_names, rotation=30, ha="right")
        ax.set_title(title)
    axes[1].axhline(0.75, color="grey", lw=0.8, ls="--")
    axes[0].legend(fontsize=8)
    s = result["sampling"]
    settings = "tokenizer only" if s is None else (f"T={s['steps']}, {s['schedule']}, choice temp "
                                                    f"{s['choice_temperature']}, guidance {s['guidance_scale']}")
    fig.suptitle(f"{result.get('tokenizer') or result['model']}: {result['num_per_class']} per class vs the "
                 f"{result['split']} split ({settings})")
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fashion-mnist")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="score this tokenizer's reconstructions instead of the model's, without samples")
    parser.add_argument("--classifier", default="fashion-mnist-classifier")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="the real set compared with")
    parser.add_argument("--num-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--schedule")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--choice-temperature", type=float)
    parser.add_argument("--guidance-scale", type=float)
    parser.add_argument("--guidance-schedule", choices=("constant", "linear"))
    parser.add_argument("--before", type=Path, default=None,
                        help="an earlier decomposition JSON (same split, count and seed): adds a before / after table")
    add_result_args(parser)
    args = parser.parse_args(argv)
    sampling = {k: v for k in ("steps", "schedule", "temperature", "choice_temperature", "guidance_scale",
                               "guidance_schedule") if (v := getattr(args, k)) is not None}
    if sampling and args.tokenizer is not None:
        parser.error("--tokenizer scores the tokenizer alone: sampling options do not apply")
    from maskgit.pipeline import MaskGIT

    out, _ = result_files(args.out, args.overwrite)
    before = None
    if args.before is not None:
        import json

        before = json.loads(args.before.read_text())
    start = time.time()
    pipe = MaskGIT.from_pretrained(args.model)
    if args.tokenizer is not None:
        from maskgit.vq import load_tokenizer

        pipe.tokenizer = load_tokenizer(args.tokenizer)
    judge = load_judge(args.classifier, pipe, "fashion-mnist", args.model)
    real = model_data("fashion-mnist", pipe, args.split)
    train = model_data("fashion-mnist", pipe, "train")
    check_data(*real, pipe, "fashion-mnist")
    result, _ = decompose(pipe, judge, train, real, num_per_class=args.num_per_class, seed=args.seed,
                          with_samples=args.tokenizer is None, **sampling)
    result.update({"model": args.model, "tokenizer": args.tokenizer and str(args.tokenizer),
                   "classifier": args.classifier, "split": args.split,
                   "command": "python benchmarks/fashion_mnist_decomposition.py " + " ".join(sys.argv[1:]),
                   "seconds": round(time.time() - start, 1)})
    names = list(pipe.class_names or range(pipe.transformer.config.num_classes))
    text = table(result, names)
    if before is not None:
        compared = before_after(before, result, (args.before.stem, args.out.stem))
        result["before"] = {"file": str(args.before), "table": compared}
        text = f"Before: `{args.before}`; after: this run.\n\n{compared}\n{text}"
    write_results(out, result, text, lambda png: plot(result, names, png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
