"""The `maskgit` command line: a thin layer that parses arguments and calls the library.

Each subcommand is registered by one `add_<name>_parser` function and runs one library call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _labels_arg(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _read_config(path: Path, cls):
    """A training config JSON file -> the typed dataclass `cls`, with errors that name the file."""
    import json

    from .config import from_dict

    if not path.is_file():
        raise FileNotFoundError(f"config {path} is not a file; pass a JSON config such as those in configs/")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"config {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a JSON object of {cls.__name__} fields")
    try:
        return from_dict(cls, data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config {path}: {err}") from None


def add_sampling_args(parser: argparse.ArgumentParser, steps_default: str = "the model's default, 8") -> None:
    """Decoding options shared by sampling and every editing command (None = the model's default)."""
    g = parser.add_argument_group("decoding")
    g.add_argument("--steps", type=int, default=None, help=f"decoding iterations T (default: {steps_default})")
    g.add_argument("--schedule", default=None,
                   help="mask schedule: cosine, linear, square, cubic, exponential, square-root, logarithmic, "
                        "arccos or powX (model default: cosine)")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature (divides logits)")
    g.add_argument("--choice-temperature", type=float, default=None,
                   help="Gumbel noise scale on confidences, annealed to 0 (official: 4.5)")
    g.add_argument("--guidance-scale", type=float, default=None, help="classifier-free guidance w (0 = off)")
    g.add_argument("--guidance-schedule", choices=["constant", "linear"], default=None)
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed, same images)")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")


def sampling_kwargs(args: argparse.Namespace) -> dict:
    keys = ["steps", "schedule", "temperature", "choice_temperature", "guidance_scale", "guidance_schedule"]
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def add_sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate images with a trained model",
                       description="Generate class-conditional images by iterative parallel decoding. Writes one "
                                   "PNG per image, a grid, the resolved sampling config, and optionally a strip "
                                   "of the decoding steps (the paper's t = 0..T figure).")
    p.add_argument("--model", default="fashion-mnist", help="bundled model name or a save_pretrained directory")
    p.add_argument("--labels", type=_labels_arg, default=None,
                   help="comma-separated class indices or names, e.g. 0,3,7 or sneaker,bag (default: every class)")
    p.add_argument("--num", type=int, default=1, help="images per label")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--show-steps", action="store_true", help="also write steps.png (tokens after each step)")
    p.add_argument("--overwrite", action="store_true", help="allow replacing files that already exist in --out")
    add_sampling_args(p)
    p.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> None:
    from .sampling import sample_to_directory

    written = sample_to_directory(args.model, args.out, labels=args.labels, num_per_label=args.num,
                                  seed=args.seed, device=args.device, show_steps=args.show_steps,
                                  overwrite=args.overwrite, **sampling_kwargs(args))
    print(f"wrote {len(written)} files to {args.out}")


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train the transformer by masked visual token modeling",
                       description="Train a MaskGIT transformer on the codes of a trained tokenizer (encoded once "
                                   "and cached). Re-running the same command resumes from the latest checkpoint. "
                                   "Multi-GPU / multi-node: `accelerate launch -m maskgit.cli train ...`.")
    p.add_argument("--config", type=Path, required=True, help="TransformerTrainingConfig JSON (see configs/)")
    p.add_argument("--tokenizer", type=Path, required=True, help="trained tokenizer directory")
    p.add_argument("--data", required=True, help="fashion-mnist, digits, or an image folder (one subfolder per class)")
    p.add_argument("--data-root", default=None, help="where the dataset files live (default: the system location)")
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, samples, metrics.csv, final/)")
    p.add_argument("--max-steps", type=int, default=None, help="stop at this step (the LR schedule is unchanged)")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> None:
    from .config import TransformerTrainingConfig
    from .training.transformer import train_transformer

    cfg = _read_config(args.config, TransformerTrainingConfig)
    final = train_transformer(cfg, tokenizer_dir=args.tokenizer, data=args.data, out=args.out,
                              data_root=args.data_root, max_steps=args.max_steps)
    print(f"model saved to {final}")


def add_evaluation_args(p: argparse.ArgumentParser) -> None:
    """Judge, data, output and decoding options shared by the evaluation commands."""
    p.add_argument("--classifier", default="fashion-mnist-classifier", help="bundled name or directory")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results (a PNG goes beside it)")
    p.add_argument("--overwrite", action="store_true")
    add_sampling_args(p)


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score class-conditional samples with the judge classifier",
                       description="Generate N images per class and report the judge classifier's agreement with "
                                   "the requested class and the Frechet distance of its features to real test "
                                   "images (with the real-train vs real-test floor). Writes JSON + a sample grid.")
    p.add_argument("--model", default="fashion-mnist")
    p.add_argument("--num-per-class", type=int, default=100)
    add_evaluation_args(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.report import evaluate_model

    result = evaluate_model(args.model, args.classifier, args.out, data=args.data, data_root=args.data_root,
                            num_per_class=args.num_per_class, seed=args.seed, device=args.device,
                            overwrite=args.overwrite, **sampling_kwargs(args))
    print(f"agreement {result['agreement']:.4f}, Frechet {result['frechet_to_real_test']:.3f} "
          f"(real floor {result['frechet_real_train_vs_test']:.3f}) -> {args.out}")


def add_evaluate_editing_parser(sub) -> None:
    p = sub.add_parser("evaluate-editing", help="score inpainting and class-conditional editing",
                       description="Inpaint the centre 50%% x 50%% of real test images and edit whole-image boxes "
                                   "to another class; the judge classifier scores both. Writes JSON + a PNG.")
    p.add_argument("--model", default="fashion-mnist")
    p.add_argument("--num-inpaint", type=int, default=500)
    p.add_argument("--num-edit", type=int, default=200)
    add_evaluation_args(p)
    p.set_defaults(func=run_evaluate_editing)


def run_evaluate_editing(args: argparse.Namespace) -> None:
    from .evaluation.editing import evaluate_editing

    r = evaluate_editing(args.model, args.classifier, args.out, data=args.data, data_root=args.data_root,
                         num_inpaint=args.num_inpaint, num_edit=args.num_edit, seed=args.seed, device=args.device,
                         overwrite=args.overwrite, **sampling_kwargs(args))
    print(f"inpainting keeps the label {r['inpainting']['label_kept']:.3f} "
          f"(unedited {r['inpainting']['label_kept_unedited']:.3f}); class edits reach the target "
          f"{r['class_editing']['target_reached']:.3f} -> {args.out}")


def add_train_classifier_parser(sub) -> None:
    p = sub.add_parser("train-classifier", help="train the judge classifier on real images",
                       description="Train the small CNN used to score samples (evaluation/classifier.py).")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="directory for classifier.safetensors + classifier.json")
    p.add_argument("--overwrite", action="store_true", help="allow replacing a classifier already in --out")
    p.set_defaults(func=run_train_classifier)


def run_train_classifier(args: argparse.Namespace) -> None:
    from .evaluation.report import train_judge

    metrics = train_judge(args.data, args.out, data_root=args.data_root, epochs=args.epochs, seed=args.seed,
                          overwrite=args.overwrite)
    print(f"test accuracy {metrics['test_accuracy']:.4f} -> {args.out}")


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _box(text: str) -> list[int]:
    box = _ints(text)
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"--box needs four integers x0,y0,x1,y1, got {text!r}")
    return box


def _pad(text: str) -> list[int]:
    pad = _ints(text)
    if len(pad) != 4:
        raise argparse.ArgumentTypeError(f"--pad needs four integers left,top,right,bottom, got {text!r}")
    return pad


def add_editing_parsers(sub) -> None:
    specs = {
        "inpaint": "regenerate the masked pixels of images (paper section 4.3)",
        "outpaint": "grow the canvas (--pad) or extrapolate to a width (--width) and fill the new area",
        "edit": "class-conditional editing: regenerate a box with a target class",
    }
    for task, help_text in specs.items():
        p = sub.add_parser(task, help=help_text, description=help_text.capitalize() + ". Inputs are image files "
                           "of the model's size (or --resize); outputs are <name>_<task>.png plus <task>.json.")
        p.add_argument("images", nargs="+", type=Path, help="input image files (PNG, JPEG, ...)")
        p.add_argument("--model", default="fashion-mnist")
        p.add_argument("--out", type=Path, required=True, help="output directory")
        p.add_argument("--label", dest="labels", type=_labels_arg, default=None,
                       help="class index or name (one, or one per image); default for inpaint/outpaint: none")
        p.add_argument("--resize", action="store_true",
                       help="resize inputs of another size to the model's square size (non-square inputs are "
                            "stretched; crop them first to keep proportions)")
        p.add_argument("--overwrite", action="store_true")
        if task == "inpaint":
            p.add_argument("--mask", required=True, help="mask image, white where content is regenerated")
            p.add_argument("--blur-radius", type=int, default=None, help="compositing blur (default: one token)")
        elif task == "outpaint":
            p.add_argument("--pad", type=_pad, default=None, help="left,top,right,bottom pixels to add")
            p.add_argument("--width", type=int, default=None, help="extrapolate to the right up to this width")
            p.add_argument("--overlap", type=int, default=None, help="window overlap in tokens (default: half)")
        else:
            p.add_argument("--box", type=_box, required=True, help="x0,y0,x1,y1 in pixels (x1, y1 exclusive)")
            p.add_argument("--start-iter", type=int, default=None,
                           help="first decoding iteration (default: 2, the official editing schedule)")
        add_sampling_args(p, steps_default="12, the official editing schedule" if task == "edit" else
                          "the model's default, 8")
        p.set_defaults(func=run_editing, task=task)


def run_editing(args: argparse.Namespace) -> None:
    from .editing_io import edit_files

    task, extra = args.task, {}
    if task == "outpaint":
        if (args.pad is None) == (args.width is None):
            raise ValueError("outpaint needs exactly one of --pad left,top,right,bottom or --width W")
        task = "extrapolate" if args.width is not None else task
        if args.overlap is not None:
            extra["overlap"] = args.overlap
    if task == "inpaint" and args.blur_radius is not None:
        extra["blur_radius"] = args.blur_radius
    if task == "edit" and args.start_iter is not None:
        extra["start_iter"] = args.start_iter
    written = edit_files(args.model, task, args.images, args.out, mask=getattr(args, "mask", None),
                         box=getattr(args, "box", None), pad=getattr(args, "pad", None),
                         width=getattr(args, "width", None), labels=args.labels, resize=args.resize,
                         overwrite=args.overwrite, seed=args.seed, device=args.device,
                         **sampling_kwargs(args), **extra)
    print(f"wrote {len(written)} files to {args.out}")


def add_train_tokenizer_parser(sub) -> None:
    p = sub.add_parser("train-tokenizer", help="train a VQGAN tokenizer on images",
                       description="Train a VQGAN tokenizer (reconstruction + quantizer losses, optional perceptual, "
                                   "adversarial and entropy losses). Re-running the same command resumes from the "
                                   "latest checkpoint. Several processes: `accelerate launch --multi_gpu "
                                   "--num_processes N -m maskgit.cli train-tokenizer ...` (GPUs, or on a machine "
                                   "without CUDA N CPU processes over gloo; add --num_machines/--machine_rank/"
                                   "--main_process_ip for several nodes). Plain `accelerate launch --cpu` starts "
                                   "a single process unless MPI is configured.")
    p.add_argument("--config", type=Path, required=True, help="TokenizerTrainingConfig JSON (see configs/)")
    p.add_argument("--data", required=True, help="fashion-mnist, digits, or an image folder (one subfolder per class)")
    p.add_argument("--data-root", default=None, help="where the dataset files live (default: the system location)")
    p.add_argument("--out", type=Path, required=True,
                   help="run directory (checkpoints/, samples/, metrics.csv, final/)")
    p.add_argument("--max-steps", type=int, default=None, help="stop at this step (the LR schedule is unchanged)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.set_defaults(func=run_train_tokenizer)


def run_train_tokenizer(args: argparse.Namespace) -> None:
    from .config import TokenizerTrainingConfig
    from .training.tokenizer import train_tokenizer

    cfg = _read_config(args.config, TokenizerTrainingConfig)
    train_tokenizer(cfg, data=args.data, out=args.out, data_root=args.data_root, max_steps=args.max_steps,
                    progress=not args.no_progress)  # prints where the tokenizer went (main process only)


def add_eval_tokenizer_parser(sub) -> None:
    p = sub.add_parser("eval-tokenizer", help="reconstruction quality of a tokenizer",
                       description="PSNR, SSIM, codebook usage and perplexity of a trained tokenizer on a held-out "
                                   "split. Writes a JSON file and a PNG (originals above reconstructions) beside it.")
    p.add_argument("--tokenizer", type=Path, required=True, help="directory with tokenizer.safetensors + .json")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", default="test", choices=["train", "val", "test", "trainval"])
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results (the PNG goes beside it)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--overwrite", action="store_true", help="allow replacing existing result files")
    p.set_defaults(func=run_eval_tokenizer)


def run_eval_tokenizer(args: argparse.Namespace) -> None:
    from .evaluation.reconstruction import evaluate_tokenizer

    r = evaluate_tokenizer(args.tokenizer, args.out, data=args.data, split=args.split, data_root=args.data_root,
                           device=args.device, batch_size=args.batch_size, overwrite=args.overwrite)
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
    p.add_argument("--overwrite", action="store_true", help="replace an existing dump or discard unfinished parts")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_sampling_args(p)
    p.set_defaults(func=run_sample_dump, device=None)


def run_sample_dump(args: argparse.Namespace) -> None:
    from .evaluation.sample_dump import sample_dump

    path = sample_dump(args.model, args.out, num_per_class=args.num_per_class, seed=args.seed,
                       batch_size=args.batch_size, device=args.device, png_dir=args.png_dir,
                       overwrite=args.overwrite, progress=not args.no_progress, **sampling_kwargs(args))
    if path is not None:
        print(f"wrote {path} and {path.with_suffix('.json')}")


def add_reference_batch_parser(sub) -> None:
    p = sub.add_parser("reference-batch", help="write real images of a dataset as a reference batch (.npz)",
                       description="Write a dataset split (or --num random images of it) in the ADM reference-batch "
                                   "format (arr_0 uint8 NHWC, arr_1 labels), for `maskgit metrics --ref/--baseline`.")
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist, digits, or an image folder")
    p.add_argument("--data-root", default=None, help="where the dataset files live (default: the system location)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "trainval"])
    p.add_argument("--num", type=int, default=None, help="this many images drawn at random (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draw")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=run_reference_batch)


def run_reference_batch(args: argparse.Namespace) -> None:
    from .evaluation.image_sets import write_dataset_batch

    path = write_dataset_batch(args.data, args.split, args.out, num=args.num, seed=args.seed,
                               data_root=args.data_root, overwrite=args.overwrite)
    print(f"wrote {path}")


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
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results (a PNG goes beside it)")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files")
    p.set_defaults(func=run_metrics)


def run_metrics(args: argparse.Namespace) -> None:
    from .evaluation.metrics import evaluate_dump

    for name, value in (("--k", args.k), ("--is-splits", args.is_splits), ("--cas-epochs", args.cas_epochs),
                        ("--batch-size", args.batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    r = evaluate_dump(args.dump, args.ref, args.out, overwrite=args.overwrite, no_cache=args.no_cache,
                      cache_dir=args.cache_dir, features=args.features, inception_weights=args.inception_weights,
                      baseline=args.baseline, cas=args.cas, cas_epochs=args.cas_epochs, k=args.k,
                      splits=args.is_splits, batch_size=args.batch_size, device=args.device, seed=args.seed)
    g = r["generated"]
    line = f"FD {g['frechet_distance']:.3f}"
    if g["precision"] is not None:
        line += f", precision {g['precision']:.3f}, recall {g['recall']:.3f}"
    if g["inception_score"]:
        line += f", IS {g['inception_score']['mean']:.3f}"
    if "cas" in r:
        line += f", CAS top-1 {r['cas']['generated']['top1']:.3f} (real {r['cas']['real']['top1']:.3f})"
    print(f"{line} -> {args.out}")


PARSERS = [add_sample_parser, add_editing_parsers, add_train_parser, add_evaluate_parser, add_evaluate_editing_parser,
           add_train_classifier_parser,
           add_train_tokenizer_parser, add_eval_tokenizer_parser,
           add_sample_dump_parser, add_reference_batch_parser, add_metrics_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskgit", description="MaskGIT: masked generative image transformer")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, KeyError, OSError) as err:  # user errors; OSError: files (missing, existing, unwritable)
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"maskgit {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
