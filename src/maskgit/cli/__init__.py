"""The `maskgit` command line: a thin layer that parses arguments and calls the library.

Each subcommand is registered by one `add_<name>_parser` function and runs one library call. The commands live
in one module per area (`sampling`: sample and editing; `training`; `evaluation`; `tools`: presets, reference
batches, conversion, benchmarks, the editor), their shared options in `args.py`. `main` runs one command;
`python -m maskgit.cli` and the `maskgit` console script call it.
"""

from __future__ import annotations

import argparse
import sys

from . import evaluation, sampling, tools, training

RESUMES = "checkpoints written so far stay in --out: the same command resumes from the newest"
NOTHING_WRITTEN = "results are written only at the end, so nothing was written: the same command starts again"
INTERRUPTED = {  # what a Ctrl-C leaves behind, per command (the others: NOTHING_WRITTEN)
    "train": RESUMES, "train-tokenizer": RESUMES,
    "sample-dump": "finished chunks stay beside --out (.parts): the same command resumes from them",
    "sample": "the images written so far stay in --out: the same command writes the rest",
    "metrics": "real-set statistics computed so far stay cached: the same command starts again and reuses them",
    "shards": "the shards finished so far stay in --out: the same command goes on from them",
}

PARSERS = [tools.add_presets_parser,
           sampling.add_sample_parser, sampling.add_editing_parsers, training.add_train_parser,
           evaluation.add_evaluate_parser, evaluation.add_evaluate_editing_parser,
           training.add_train_classifier_parser, training.add_train_tokenizer_parser,
           evaluation.add_eval_tokenizer_parser, evaluation.add_sample_dump_parser, tools.add_reference_batch_parser,
           evaluation.add_metrics_parser, tools.add_shards_parser, tools.add_convert_official_parser,
           tools.add_bench_parser,
           tools.add_serve_parser]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="maskgit", description="MaskGIT: masked generative image transformer")
    parser.add_argument("--version", action="version", version=f"maskgit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in PARSERS:
        add(sub)
    return parser


def _close_progress_bars() -> None:
    """Close the bars an interrupted command left open, so that they do not redraw after its last message."""
    if "tqdm" in sys.modules:
        from tqdm import tqdm

        for bar in list(getattr(tqdm, "_instances", ())):
            bar.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: one line saying what was kept and how to go on, exit 130 as shells expect
        _close_progress_bars()
        print(f"maskgit {args.command}: interrupted; {INTERRUPTED.get(args.command, NOTHING_WRITTEN)}",
              file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError) as err:  # user errors; OSError: files (missing, existing, unwritable)
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"maskgit {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0
