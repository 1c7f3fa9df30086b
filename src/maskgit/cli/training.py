"""`maskgit train-tokenizer`, `train` (the transformer) and `train-classifier` (the judge).

The two model stages share their options (config / preset, data, run length) and how a run's config is
resolved: the JSON config over a preset, fitted to the data (`training/run_config.py`), with notes printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from .args import RESIZE_DATA_HELP, add_data_args, add_overwrite_args, read_json, tokenizer_arg


def add_training_args(p: argparse.ArgumentParser, config_class: str, out_help: str) -> None:
    """The options both training commands share: what to train (config / preset), on what, for how long."""
    p.add_argument("--config", type=Path, default=None,
                   help=f"{config_class} JSON (see configs/); it may name a preset (\"preset\": NAME) whose fields "
                        f"it overrides")
    p.add_argument("--preset", default=None,
                   help="start from this preset (`maskgit presets` lists them); with neither --config nor --preset "
                        "the preset nearest the data's channels and size is used")
    add_data_args(p, required=True)
    p.add_argument("--out", type=Path, required=True, help=out_help)
    p.add_argument("--resize", action="store_true", help=RESIZE_DATA_HELP)
    length = p.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=int, default=None,
                        help="run length in optimiser steps; the LR warm-up and decay are rescaled to it")
    length.add_argument("--epochs", type=float, default=None,
                        help="run length in passes over the training images (converted to steps; the LR warm-up and "
                             "decay are rescaled to it)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def _run_inputs(args: argparse.Namespace):
    """(the --config JSON or None, the data's description), after refusing an --out that must not be written."""
    from ..data_fit import describe_data
    from ..outputs import check_output_dir

    check_output_dir(args.out)  # before reading any data: never into a model directory
    config = None if args.config is None else read_json(args.config)
    return config, describe_data(args.data, progress=not args.no_progress)


def _fitted_config(args: argparse.Namespace, resolve: Callable[[], tuple]):
    """The run's config from `resolve() -> (config, notes)`: errors name the --config file, notes are printed
    (once, not per process under `accelerate launch`)."""
    import os

    try:
        cfg, notes = resolve()
    except (TypeError, ValueError) as err:
        raise ValueError(f"config {args.config}: {err}" if args.config else str(err)) from None
    if os.environ.get("RANK", "0") == "0":
        for note in notes:
            print(f"note: {note}")
    return cfg


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train the transformer by masked visual token modeling",
                       description="Train a MaskGIT transformer on the codes of a trained tokenizer (encoded once "
                                   "and cached). Re-running the same command resumes from the latest checkpoint. "
                                   "batch_size is the total over all processes. Multi-GPU / multi-node: "
                                   "`accelerate launch -m maskgit.cli train ...`.")
    p.add_argument("--tokenizer", type=tokenizer_arg, required=True,
                   help="trained tokenizer: a directory (train-tokenizer's final/, or a model's) or a bundled model "
                        "name (fashion-mnist)")
    add_training_args(p, "TransformerTrainingConfig",
                      "run directory (checkpoints, samples, metrics.csv, final/ = the model for sample/edit/evaluate)")
    p.add_argument("--split", choices=["trainval", "train"], default="trainval",
                   help="trainval: train + validation images (default); train: keep the validation images unseen, "
                        "for choosing sampling settings on them (the test split is never trained on; with a train/ "
                        "val/ layout, train keeps val/ unseen)")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from this model's transformer (a bundled name or a save_pretrained / final/ folder "
                        "trained on the same --tokenizer, with the same network) instead of random weights; the "
                        "config's learning-rate schedule starts again from step 0")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> None:
    from ..training.run_config import transformer_config
    from ..training.transformer import train_transformer
    from ..vq import load_tokenizer

    config, info = _run_inputs(args)
    tokenizer = load_tokenizer(args.tokenizer).config
    cfg = _fitted_config(args, lambda: transformer_config(
        info, tokenizer, config=config, preset=args.preset, max_steps=args.max_steps, epochs=args.epochs,
        split=args.split, init_from=args.init_from))
    final = train_transformer(cfg, tokenizer_dir=args.tokenizer, data=args.data, out=args.out, split=args.split,
                              data_root=args.data_root, resize=args.resize, progress=not args.no_progress,
                              init_from=args.init_from)
    print(f"model saved to {final}")


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
    from ..training.run_config import tokenizer_config
    from ..training.tokenizer import train_tokenizer

    config, info = _run_inputs(args)
    cfg = _fitted_config(args, lambda: tokenizer_config(info, config=config, preset=args.preset,
                                                        max_steps=args.max_steps, epochs=args.epochs,
                                                        init_from=args.init_from))
    # prints where the tokenizer went (main process only)
    train_tokenizer(cfg, data=args.data, out=args.out, data_root=args.data_root, resize=args.resize,
                    progress=not args.no_progress, init_from=args.init_from)


def add_train_classifier_parser(sub) -> None:
    p = sub.add_parser("train-classifier", help="train the judge classifier on real images",
                       description="Train the small CNN used to score samples (evaluation/classifier.py) on the "
                                   "real images of a dataset. Its image size and channels are the model's (--model) "
                                   "or else the data's.")
    add_data_args(p, default="fashion-mnist")
    p.add_argument("--model", default=None,
                   help="a trained model (directory or bundled name) whose image size and channels the judge takes "
                        "(default: the data's most common size and its channels)")
    p.add_argument("--resize", action="store_true", help=RESIZE_DATA_HELP)
    p.add_argument("--epochs", type=int, default=8, help="passes over the training images")
    p.add_argument("--seed", type=int, default=0, help="random seed (initialisation, batches, augmentation)")
    p.add_argument("--out", type=Path, required=True, help="directory for classifier.safetensors + classifier.json")
    add_overwrite_args(p, "allow replacing a classifier already in --out")
    p.set_defaults(func=run_train_classifier)


def run_train_classifier(args: argparse.Namespace) -> None:
    from ..evaluation.report import train_judge

    metrics = train_judge(args.data, args.out, data_root=args.data_root, epochs=args.epochs, seed=args.seed,
                          overwrite=args.overwrite, model=args.model, resize=args.resize,
                          progress=not args.no_progress)
    print(f"test accuracy {metrics['test_accuracy']:.4f} -> {args.out}")
