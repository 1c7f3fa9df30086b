"""The evaluation commands: `evaluate` and `evaluate-editing` (the judge classifier scores a model),
`eval-tokenizer` (reconstruction quality), `sample-dump` (samples for `metrics`) and `metrics` (FID / IS /
precision-recall / CAS of a dump against a reference).

Each writes JSON results (and a PNG beside them) and prints a one-line summary with any warnings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import (
    DATA_HELP,
    DEVICE_HELP,
    MODEL_HELP,
    RESIZE_DATA_HELP,
    add_autoregressive_args,
    add_data_args,
    add_overwrite_args,
    add_sampling_args,
    autoregressive_kwargs,
    sampling_kwargs,
    tokenizer_arg,
)

RESULTS_HELP = "JSON file for the results (a PNG goes beside it)"


def _number(value: float | None) -> str:
    return "n/a (too few images)" if value is None else f"{value:.3f}"


def _print_summary(line: str, result: dict) -> None:
    """A command's one-line summary, then the result's warnings (also in its JSON)."""
    print(line)
    for warning in result.get("warnings", []):
        print(f"warning: {warning}")


def add_evaluation_args(p: argparse.ArgumentParser) -> None:
    """Judge, data, output and decoding options shared by the evaluation commands."""
    p.add_argument("--classifier", default="fashion-mnist-classifier",
                   help="judge classifier: a bundled name or a `maskgit train-classifier` directory (trained on the "
                        "model's data)")
    add_data_args(p, "the data the model was trained on; " + DATA_HELP, default="fashion-mnist")
    p.add_argument("--resize", action="store_true", help=RESIZE_DATA_HELP)
    p.add_argument("--out", type=Path, required=True, help=RESULTS_HELP)
    add_overwrite_args(p, "allow replacing existing result files")
    add_sampling_args(p)


def _evaluation_kwargs(args: argparse.Namespace) -> dict:
    """`add_evaluation_args`' options as keyword arguments of the library's evaluation calls."""
    return dict(data=args.data, data_root=args.data_root, seed=args.seed, device=args.device, overwrite=args.overwrite,
                resize=args.resize, progress=not args.no_progress, **sampling_kwargs(args))


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score class-conditional samples with the judge classifier",
                       description="Generate N images per class and report the judge classifier's agreement with "
                                   "the requested class and the Frechet distance of its features to real test "
                                   "images (with the real-train vs real-test floor). Writes JSON + a sample grid.")
    p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
    p.add_argument("--num-per-class", type=int, default=100, help="images generated per class")
    add_evaluation_args(p)
    add_autoregressive_args(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> None:
    from ..evaluation.report import evaluate_model

    result = evaluate_model(args.model, args.classifier, args.out, num_per_class=args.num_per_class,
                            **_evaluation_kwargs(args), **autoregressive_kwargs(args))
    _print_summary(f"agreement {result['agreement']:.4f}, Frechet {_number(result['frechet_to_real_test'])} (real "
                   f"floor {_number(result['frechet_real_train_vs_test'])}), precision {_number(result['precision'])}, "
                   f"recall {_number(result['recall'])} -> {args.out}", result)


def add_evaluate_editing_parser(sub) -> None:
    p = sub.add_parser("evaluate-editing", help="score inpainting and class-conditional editing",
                       description="Inpaint the centre 50% x 50% of real test images and edit whole-image boxes "
                                   "to another class; the judge classifier scores both. Writes JSON + a PNG.")
    p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
    p.add_argument("--num-inpaint", type=int, default=500,
                   help="test images inpainted (at most half the test split; the rest is the real reference)")
    p.add_argument("--num-edit", type=int, default=200, help="class edits (test images edited to another class)")
    add_evaluation_args(p)
    p.set_defaults(func=run_evaluate_editing)


def run_evaluate_editing(args: argparse.Namespace) -> None:
    from ..evaluation.editing import evaluate_editing

    r = evaluate_editing(args.model, args.classifier, args.out, num_inpaint=args.num_inpaint, num_edit=args.num_edit,
                         **_evaluation_kwargs(args))
    _print_summary(f"inpainting keeps the label {r['inpainting']['label_kept']:.3f} "
                   f"(unedited {r['inpainting']['label_kept_unedited']:.3f}); class edits reach the target "
                   f"{r['class_editing']['target_reached']:.3f} -> {args.out}", r)


def add_eval_tokenizer_parser(sub) -> None:
    p = sub.add_parser("eval-tokenizer", help="reconstruction quality of a tokenizer",
                       description="PSNR, SSIM, codebook usage and perplexity of a trained tokenizer on a held-out "
                                   "split. Writes a JSON file and a PNG (originals above reconstructions) beside it.")
    p.add_argument("--tokenizer", type=tokenizer_arg, required=True,
                   help="directory with tokenizer.safetensors + .json (a model's too) or a bundled model name")
    add_data_args(p, default="fashion-mnist")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "trainval"],
                   help="which part of the data (the same deterministic split as training; default: test)")
    p.add_argument("--resize", action="store_true", help=RESIZE_DATA_HELP)
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results (the PNG goes beside it)")
    p.add_argument("--batch-size", type=int, default=500, help="images encoded at once")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    add_overwrite_args(p, "allow replacing existing result files")
    p.set_defaults(func=run_eval_tokenizer)


def run_eval_tokenizer(args: argparse.Namespace) -> None:
    from ..evaluation.reconstruction import evaluate_tokenizer

    r = evaluate_tokenizer(args.tokenizer, args.out, data=args.data, split=args.split, data_root=args.data_root,
                           device=args.device, batch_size=args.batch_size, overwrite=args.overwrite,
                           resize=args.resize, progress=not args.no_progress)
    print(f"{r['num_images']} images: PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}, codes used "
          f"{r['codes_used']}/{r['codebook_size']} ({r['usage']:.1%}), perplexity {r['perplexity']:.1f} -> {args.out}")


def add_sample_dump_parser(sub) -> None:
    p = sub.add_parser("sample-dump", help="class-balanced sample dump for evaluation (ADM .npz format)",
                       description="Generate --num-per-class samples of every class into one .npz in the ADM / "
                                   "guided-diffusion reference-batch format (arr_0: uint8 NHWC images, arr_1: labels) "
                                   "with the resolved settings as JSON beside it. Every sample is seeded from "
                                   "(--seed, its index), so the dump is the same however it is split: rerunning "
                                   "after a kill resumes from the finished chunks, and `accelerate launch "
                                   "--num_processes N -m maskgit.cli sample-dump ...` shares the work among N "
                                   "processes (GPUs, or CPU processes).")
    p.add_argument("--model", default="fashion-mnist", help="bundled model name or a save_pretrained directory")
    p.add_argument("--num-per-class", type=int, required=True, help="samples of every class")
    p.add_argument("--out", type=Path, required=True, help="the dump .npz (settings go to the .json beside it)")
    p.add_argument("--batch-size", type=int, default=100,
                   help="samples per chunk (part of the settings: resume with the same value)")
    p.add_argument("--png-dir", type=Path, default=None, help="also write one PNG per sample into this folder")
    add_overwrite_args(p, "replace an existing dump or discard unfinished parts")
    add_sampling_args(p)
    add_autoregressive_args(p)
    p.set_defaults(func=run_sample_dump, device=None)


def run_sample_dump(args: argparse.Namespace) -> None:
    from ..evaluation.sample_dump import sample_dump

    path = sample_dump(args.model, args.out, num_per_class=args.num_per_class, seed=args.seed,
                       batch_size=args.batch_size, device=args.device, png_dir=args.png_dir,
                       overwrite=args.overwrite, progress=not args.no_progress, **sampling_kwargs(args),
                       **autoregressive_kwargs(args))
    if path is not None:
        print(f"wrote {path} and {path.with_suffix('.json')}")


def add_metrics_parser(sub) -> None:
    p = sub.add_parser("metrics", help="FID / IS / precision-recall / CAS of a sample dump",
                       description="Score a sample dump against a reference: Frechet distance (FID with Inception "
                                   "features), Inception Score, improved precision/recall (k-NN manifolds) and, with "
                                   "--cas, the classification accuracy score. REF is a folder of images, a dump / "
                                   "reference batch .npz, or a statistics .npz with mu and sigma (e.g. the ADM "
                                   "ImageNet reference batches). Real-set features are cached. Writes JSON with "
                                   "every setting that affects the numbers, and a PNG sample sheet beside it.")
    p.add_argument("dump", type=Path, help="sample dump .npz (arr_0 [, arr_1]) or a folder of images")
    p.add_argument("--ref", type=Path, required=True, help="reference: image folder, .npz images, or mu/sigma .npz")
    p.add_argument("--features", default="inception",
                   help="inception (Inception-v3 pool3, needs --inception-weights) or classifier:NAME_OR_DIR, "
                        "e.g. classifier:fashion-mnist-classifier")
    p.add_argument("--inception-weights", type=Path, default=None,
                   help="torch-fidelity's Inception-v3 weights file (weights-inception-2015-12-05-6726825d.pth)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="real images scored the same way (e.g. as many training images as the dump): the values "
                        "real data reaches; with --cas, the real training set of the comparison classifier")
    p.add_argument("--cas", action="store_true", help="also compute the classification accuracy score")
    p.add_argument("--cas-epochs", type=int, default=10, help="epochs of both CAS classifiers")
    p.add_argument("--k", type=int, default=3, help="neighbourhood size of precision/recall (paper: 3)")
    p.add_argument("--is-splits", type=int, default=10, help="splits of the Inception Score (standard: 10)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache of real-set statistics (default: ~/.cache/maskgit/reference-stats)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write cached statistics")
    p.add_argument("--batch-size", type=int, default=250, help="images per feature-extractor batch")
    p.add_argument("--seed", type=int, default=0, help="seed of the CAS classifiers and the IS split shuffle")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--out", type=Path, required=True, help=RESULTS_HELP)
    add_overwrite_args(p, "replace existing result files")
    p.set_defaults(func=run_metrics)


def run_metrics(args: argparse.Namespace) -> None:
    from ..evaluation.metrics import evaluate_dump

    for name, value in (("--k", args.k), ("--is-splits", args.is_splits), ("--cas-epochs", args.cas_epochs),
                        ("--batch-size", args.batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    r = evaluate_dump(args.dump, args.ref, args.out, overwrite=args.overwrite, no_cache=args.no_cache,
                      cache_dir=args.cache_dir, features=args.features, inception_weights=args.inception_weights,
                      baseline=args.baseline, cas=args.cas, cas_epochs=args.cas_epochs, k=args.k,
                      splits=args.is_splits, batch_size=args.batch_size, device=args.device, seed=args.seed,
                      progress=not args.no_progress)
    g = r["generated"]
    line = f"FD {_number(g['frechet_distance'])}"
    if g["precision"] is not None:
        line += f", precision {g['precision']:.3f}, recall {g['recall']:.3f}"
    if g["inception_score"]:
        line += f", IS {g['inception_score']['mean']:.3f}"
    if "cas" in r:
        line += f", CAS top-1 {r['cas']['generated']['top1']:.3f} (real {r['cas']['real']['top1']:.3f})"
    _print_summary(f"{line} -> {args.out}", r)
