"""Score every checkpoint of a tokenizer run on the validation split and keep the best (issue 13).

An adversarial fine-tune does not improve monotonically: the decoder sharpens quickly, then drifts as the
discriminator and decoder chase each other. This scores the tokenizer floor of every complete checkpoint of a
`train-tokenizer` run, the judge features' Frechet distance of 1,000 reconstructed train images (100 per class) to
the 5,000 validation images, as `fashion_mnist_decomposition.py --tokenizer DIR --split val` does, and
`--export DIR` writes the checkpoint with the lowest one as a tokenizer directory. The test split is not read.

    python benchmarks/tokenizer_checkpoints.py --run runs/tokenizer-fmnist-decoder-ft \\
        --export runs/tokenizer-fmnist-decoder-ft/best-val --out benchmarks/results/fmnist-v4/decoder-checkpoints

Writes JSON, a markdown table and a PNG (floor FD and paired-reconstruction FD against the step).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from reporting import add_result_args, pyplot, result_files, save_figure, write_results

from maskgit.evaluation.decomposition import decompose
from maskgit.evaluation.report import load_judge, model_data
from maskgit.pipeline import MaskGIT
from maskgit.training.checkpoint import complete_checkpoints, read_checkpoint_meta
from maskgit.training.tokenizer import tokenizer_from_checkpoint
from maskgit.vq import save_tokenizer


def score_checkpoints(run: Path, model: str, classifier: str, num_per_class: int, seed: int) -> list[dict]:
    found = complete_checkpoints(run / "checkpoints")
    if not found:
        raise SystemExit(f"{run / 'checkpoints'} holds no complete checkpoint: pass a train-tokenizer run directory")
    pipe = MaskGIT.from_pretrained(model)  # only its class names and data layout are used
    judge = load_judge(classifier, pipe, "fashion-mnist", model)
    real, train = model_data("fashion-mnist", pipe, "val"), model_data("fashion-mnist", pipe, "train")
    rows = []
    for path in found:
        pipe.tokenizer = tokenizer_from_checkpoint(path)
        result, _ = decompose(pipe, judge, train, real, num_per_class=num_per_class, seed=seed, with_samples=False)
        floor, paired = result["sets"]["recon_train"], result["sets"]["recon_test"]
        rows.append({"checkpoint": str(path), "step": read_checkpoint_meta(path)["step"],
                     "floor_frechet": floor["frechet_to_real"], "floor_agreement": floor["agreement"],
                     "floor_precision": floor["precision"], "floor_recall": floor["recall"],
                     "paired_frechet": paired["frechet_to_real"], "paired_agreement": paired["agreement"]})
        print(rows[-1], flush=True)
    return rows


def plot(rows: list[dict], best: dict, path: Path, title: str) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["floor_frechet"] for r in rows], "o-", label="1,000 train reconstructions (floor)")
    ax.plot(steps, [r["paired_frechet"] for r in rows], "s-", label="the 5,000 val images reconstructed (paired)")
    ax.plot([best["step"]], [best["floor_frechet"]], "k*", ms=14, label="kept")
    ax.set(xlabel="fine-tuning step", ylabel="FD to the validation images (judge features)", title=title)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a train-tokenizer run directory (its --out)")
    parser.add_argument("--model", default="fashion-mnist", help="a model of the same data (class names, layout)")
    parser.add_argument("--classifier", default="fashion-mnist-classifier")
    parser.add_argument("--num-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", type=Path, default=None,
                        help="write the checkpoint of lowest floor FD here as a tokenizer directory")
    add_result_args(parser)
    args = parser.parse_args(argv)
    out, _ = result_files(args.out, args.overwrite)
    if args.export is not None and args.export.exists() and not args.overwrite:
        parser.error(f"{args.export} exists; pass --overwrite to replace it")
    start = time.time()
    rows = score_checkpoints(args.run, args.model, args.classifier, args.num_per_class, args.seed)
    best = min(rows, key=lambda r: r["floor_frechet"])
    result = {"run": str(args.run), "split": "val", "num_per_class": args.num_per_class, "seed": args.seed,
              "rule": "lowest FD of the 1,000 train reconstructions to the validation images", "rows": rows,
              "kept": best, "export": args.export and str(args.export),
              "command": "python benchmarks/tokenizer_checkpoints.py " + " ".join(sys.argv[1:] if argv is None
                                                                                   else argv),
              "seconds": round(time.time() - start, 1)}
    if args.export is not None:
        save_tokenizer(tokenizer_from_checkpoint(best["checkpoint"]), args.export)
    lines = ["| step | floor FD | floor agreement | floor precision / recall | paired FD | kept |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['step']} | {r['floor_frechet']:.2f} | {r['floor_agreement']:.3f} | {r['floor_precision']:.3f} / "
              f"{r['floor_recall']:.3f} | {r['paired_frechet']:.2f} | {'yes' if r is best else ''} |" for r in rows]
    write_results(out, result, "\n".join(lines) + "\n",
                  lambda png: plot(rows, best, png, f"{args.run.name}: checkpoints on the validation split"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
