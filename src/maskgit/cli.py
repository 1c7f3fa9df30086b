"""The `maskgit` command line: a thin layer that parses arguments and calls the library.

Each subcommand is registered by one `add_<name>_parser` function and runs one library call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _labels_arg(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _read_json(path: Path) -> dict:
    """A JSON config file -> its object, with errors that name the file."""
    import json

    if not path.is_file():
        raise FileNotFoundError(f"config {path} is not a file; pass a JSON config such as those in configs/")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"config {path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a JSON object of config fields")
    return data


def _read_config(path: Path, cls):
    """A training config JSON file (fields of `cls`, optionally "preset": NAME) -> the typed dataclass `cls`."""
    from .presets import config_with_preset

    try:
        return config_with_preset(cls, _read_json(path))
    except (TypeError, ValueError) as err:
        raise ValueError(f"config {path}: {err}") from None


def _print_notes(notes: list[str]) -> None:
    import os

    if os.environ.get("RANK", "0") == "0":  # once, not per process under `accelerate launch`
        for note in notes:
            print(f"note: {note}")


MODEL_HELP = "a bundled model name (fashion-mnist) or a directory written by save_pretrained / `maskgit train`"


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
    g.add_argument("--guidance-schedule", choices=["constant", "linear"], default=None,
                   help="guidance over the steps: constant w, or a linear ramp from 0 to w (model default: constant)")
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
    p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
    p.add_argument("--labels", type=_labels_arg, default=None,
                   help="comma-separated class indices or names, e.g. 0,3,7 or sneaker,bag (default: every class)")
    p.add_argument("--num", type=int, default=1, help="images per label")
    p.add_argument("--batch-size", type=int, default=64,
                   help="images decoded at once (memory grows with it; the images do not depend on it)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--show-steps", action="store_true",
                   help="also write steps.png: the tokens decided after each step, for the first images only")
    p.add_argument("--overwrite", action="store_true", help="allow replacing files that already exist in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_sampling_args(p)
    p.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> None:
    from .sampling import sample_to_directory

    written = sample_to_directory(args.model, args.out, labels=args.labels, num_per_label=args.num,
                                  seed=args.seed, device=args.device, show_steps=args.show_steps,
                                  overwrite=args.overwrite, batch_size=args.batch_size,
                                  progress=not args.no_progress, **sampling_kwargs(args))
    print(f"wrote {len(written)} files to {args.out}")


DATA_HELP = ("fashion-mnist, digits (scikit-learn), or an image folder with one subfolder of images per class "
             "(PNG, JPEG, ...; 8/16-bit, palette, grey or RGB, alpha composited on black)")
DATA_ROOT_HELP = "directory of the Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)"
RESIZE_DATA_HELP = ("allow images of another size than the model's: scale the shorter side to its size and "
                    "centre-crop (without it such data is refused)")


def add_training_args(p: argparse.ArgumentParser, config_class: str, out_help: str) -> None:
    """The options both training commands share: what to train (config / preset), on what, for how long."""
    p.add_argument("--config", type=Path, default=None,
                   help=f"{config_class} JSON (see configs/); it may name a preset (\"preset\": NAME) whose fields "
                        f"it overrides")
    p.add_argument("--preset", default=None,
                   help="start from this preset (`maskgit presets` lists them); with neither --config nor --preset "
                        "the preset nearest the data's channels and size is used")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    p.add_argument("--out", type=Path, required=True, help=out_help)
    p.add_argument("--resize", action="store_true", help=RESIZE_DATA_HELP)
    length = p.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=int, default=None,
                        help="run length in optimiser steps; the LR warm-up and decay are rescaled to it")
    length.add_argument("--epochs", type=float, default=None,
                        help="run length in passes over the training images (converted to steps; the LR warm-up and "
                             "decay are rescaled to it)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def _config_json(args: argparse.Namespace) -> dict | None:
    return None if args.config is None else _read_json(args.config)


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train the transformer by masked visual token modeling",
                       description="Train a MaskGIT transformer on the codes of a trained tokenizer (encoded once "
                                   "and cached). Re-running the same command resumes from the latest checkpoint. "
                                   "batch_size is the total over all processes. Multi-GPU / multi-node: "
                                   "`accelerate launch -m maskgit.cli train ...`.")
    p.add_argument("--tokenizer", type=Path, required=True,
                   help="trained tokenizer directory (train-tokenizer's final/)")
    add_training_args(p, "TransformerTrainingConfig",
                      "run directory (checkpoints, samples, metrics.csv, final/ = the model for sample/edit/evaluate)")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> None:
    from .data_fit import describe_data
    from .training.run_config import transformer_config
    from .training.transformer import train_transformer
    from .vq import load_tokenizer

    config = _config_json(args)
    info = describe_data(args.data, progress=not args.no_progress)
    tokenizer = load_tokenizer(args.tokenizer).config
    try:
        cfg, notes = transformer_config(info, tokenizer, config=config, preset=args.preset,
                                        max_steps=args.max_steps, epochs=args.epochs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config {args.config}: {err}" if args.config else str(err)) from None
    _print_notes(notes)
    final = train_transformer(cfg, tokenizer_dir=args.tokenizer, data=args.data, out=args.out,
                              data_root=args.data_root, resize=args.resize, progress=not args.no_progress)
    print(f"model saved to {final}")


def add_evaluation_args(p: argparse.ArgumentParser) -> None:
    """Judge, data, output and decoding options shared by the evaluation commands."""
    p.add_argument("--classifier", default="fashion-mnist-classifier",
                   help="judge classifier: a bundled name or a `maskgit train-classifier` directory (trained on the "
                        "model's data)")
    p.add_argument("--data", default="fashion-mnist", help="the data the model was trained on; " + DATA_HELP)
    p.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    p.add_argument("--resize", action="store_true", help=RESIZE_DATA_HELP)
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results (a PNG goes beside it)")
    p.add_argument("--overwrite", action="store_true", help="allow replacing existing result files")
    add_sampling_args(p)


def add_evaluate_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score class-conditional samples with the judge classifier",
                       description="Generate N images per class and report the judge classifier's agreement with "
                                   "the requested class and the Frechet distance of its features to real test "
                                   "images (with the real-train vs real-test floor). Writes JSON + a sample grid.")
    p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
    p.add_argument("--num-per-class", type=int, default=100, help="images generated per class")
    add_evaluation_args(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.report import evaluate_model

    result = evaluate_model(args.model, args.classifier, args.out, data=args.data, data_root=args.data_root,
                            num_per_class=args.num_per_class, seed=args.seed, device=args.device,
                            overwrite=args.overwrite, resize=args.resize, **sampling_kwargs(args))
    print(f"agreement {result['agreement']:.4f}, Frechet {_number(result['frechet_to_real_test'])} "
          f"(real floor {_number(result['frechet_real_train_vs_test'])}) -> {args.out}")


def _number(value: float | None) -> str:
    return "n/a (too few images)" if value is None else f"{value:.3f}"


def add_evaluate_editing_parser(sub) -> None:
    p = sub.add_parser("evaluate-editing", help="score inpainting and class-conditional editing",
                       description="Inpaint the centre 50%% x 50%% of real test images and edit whole-image boxes "
                                   "to another class; the judge classifier scores both. Writes JSON + a PNG.")
    p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
    p.add_argument("--num-inpaint", type=int, default=500,
                   help="test images inpainted (at most half the test split; the rest is the real reference)")
    p.add_argument("--num-edit", type=int, default=200, help="class edits (test images edited to another class)")
    add_evaluation_args(p)
    p.set_defaults(func=run_evaluate_editing)


def run_evaluate_editing(args: argparse.Namespace) -> None:
    from .evaluation.editing import evaluate_editing

    r = evaluate_editing(args.model, args.classifier, args.out, data=args.data, data_root=args.data_root,
                         num_inpaint=args.num_inpaint, num_edit=args.num_edit, seed=args.seed, device=args.device,
                         overwrite=args.overwrite, resize=args.resize, **sampling_kwargs(args))
    print(f"inpainting keeps the label {r['inpainting']['label_kept']:.3f} "
          f"(unedited {r['inpainting']['label_kept_unedited']:.3f}); class edits reach the target "
          f"{r['class_editing']['target_reached']:.3f} -> {args.out}")


def add_train_classifier_parser(sub) -> None:
    p = sub.add_parser("train-classifier", help="train the judge classifier on real images",
                       description="Train the small CNN used to score samples (evaluation/classifier.py) on the "
                                   "real images of a dataset. Its image size and channels are the model's (--model) "
                                   "or else the data's.")
    p.add_argument("--data", default="fashion-mnist", help=DATA_HELP)
    p.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    p.add_argument("--model", default=None,
                   help="a trained model (directory or bundled name) whose image size and channels the judge takes "
                        "(default: the data's most common size and its channels)")
    p.add_argument("--resize", action="store_true", help=RESIZE_DATA_HELP)
    p.add_argument("--epochs", type=int, default=8, help="passes over the training images")
    p.add_argument("--seed", type=int, default=0, help="random seed (initialisation, batches, augmentation)")
    p.add_argument("--out", type=Path, required=True, help="directory for classifier.safetensors + classifier.json")
    p.add_argument("--overwrite", action="store_true", help="allow replacing a classifier already in --out")
    p.set_defaults(func=run_train_classifier)


def run_train_classifier(args: argparse.Namespace) -> None:
    from .evaluation.report import train_judge

    metrics = train_judge(args.data, args.out, data_root=args.data_root, epochs=args.epochs, seed=args.seed,
                          overwrite=args.overwrite, model=args.model, resize=args.resize)
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
        p.add_argument("images", nargs="+", type=Path,
                       help="input image files (PNG, JPEG, ...; 8/16-bit, palette, grey or RGB; transparent pixels are "
                            "composited on black, with a note)")
        p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
        p.add_argument("--out", type=Path, required=True, help="output directory")
        p.add_argument("--label", dest="labels", type=_labels_arg, default=None,
                       help="class index or name (one, or one per image); default for inpaint/outpaint: none")
        p.add_argument("--resize", action="store_true",
                       help="resize inputs of another size to the model's square size (non-square inputs are "
                            "stretched; crop them first to keep proportions)")
        p.add_argument("--overwrite", action="store_true", help="allow replacing files that already exist in --out")
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
                                   "a single process unless MPI is configured. batch_size is the total over all "
                                   "processes.")
    add_training_args(p, "TokenizerTrainingConfig",
                      "run directory (checkpoints/, samples/, metrics.csv, final/ = the tokenizer for `maskgit train`)")
    p.set_defaults(func=run_train_tokenizer)


def run_train_tokenizer(args: argparse.Namespace) -> None:
    from .data_fit import describe_data
    from .training.run_config import tokenizer_config
    from .training.tokenizer import train_tokenizer

    config = _config_json(args)
    info = describe_data(args.data, progress=not args.no_progress)
    try:
        cfg, notes = tokenizer_config(info, config=config, preset=args.preset, max_steps=args.max_steps,
                                      epochs=args.epochs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config {args.config}: {err}" if args.config else str(err)) from None
    _print_notes(notes)
    train_tokenizer(cfg, data=args.data, out=args.out, data_root=args.data_root, resize=args.resize,
                    progress=not args.no_progress)  # prints where the tokenizer went (main process only)


def add_eval_tokenizer_parser(sub) -> None:
    p = sub.add_parser("eval-tokenizer", help="reconstruction quality of a tokenizer",
                       description="PSNR, SSIM, codebook usage and perplexity of a trained tokenizer on a held-out "
                                   "split. Writes a JSON file and a PNG (originals above reconstructions) beside it.")
    p.add_argument("--tokenizer", type=Path, required=True, help="directory with tokenizer.safetensors + .json")
    p.add_argument("--data", default="fashion-mnist", help=DATA_HELP)
    p.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    p.add_argument("--split", default="test", choices=["train", "val", "test", "trainval"],
                   help="which part of the data (the same deterministic split as training; default: test)")
    p.add_argument("--resize", action="store_true", help=RESIZE_DATA_HELP)
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results (the PNG goes beside it)")
    p.add_argument("--batch-size", type=int, default=500, help="images encoded at once")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    p.add_argument("--overwrite", action="store_true", help="allow replacing existing result files")
    p.set_defaults(func=run_eval_tokenizer)


def run_eval_tokenizer(args: argparse.Namespace) -> None:
    from .evaluation.reconstruction import evaluate_tokenizer

    r = evaluate_tokenizer(args.tokenizer, args.out, data=args.data, split=args.split, data_root=args.data_root,
                           device=args.device, batch_size=args.batch_size, overwrite=args.overwrite,
                           resize=args.resize)
    print(f"{r['num_images']} images: PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}, codes used "
          f"{r['codes_used']}/{r['codebook_size']} ({r['usage']:.1%}), perplexity {r['perplexity']:.1f} -> {args.out}")


def add_presets_parser(sub) -> None:
    p = sub.add_parser("presets", help="list the model presets: image size, token grid, codebook, parameters",
                       description="The named model sizes `--preset NAME` (or \"preset\": NAME in a JSON config) "
                                   "starts from. Transformer parameters are counted at the preset's class count; "
                                   "training fits it to the data.")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run_presets)


def run_presets(args: argparse.Namespace) -> None:
    import json

    from .presets import preset_rows

    rows = preset_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'preset':<14}{'image (HxWxC)':<15}{'tokens':<8}{'codes':>6}{'tokenizer':>12}{'transformer':>13}  about")
    for r in rows:
        print(f"{r['name']:<14}{r['image']:<15}{r['grid']:<8}{r['codebook']:>6}{r['tokenizer_params'] / 1e6:>11.2f}M"
              f"{r['transformer_params'] / 1e6:>12.2f}M  {r['description']} ({r['classes']} classes)")


PARSERS = [add_presets_parser,
           add_sample_parser, add_editing_parsers, add_train_parser, add_evaluate_parser, add_evaluate_editing_parser,
           add_train_classifier_parser,
           add_train_tokenizer_parser, add_eval_tokenizer_parser]


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
