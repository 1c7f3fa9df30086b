"""The `maskgit` command line: a thin layer that parses arguments and calls the library.

Each subcommand is registered by one `add_<name>_parser` function and runs one library call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _labels_arg(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_sampling_args(parser: argparse.ArgumentParser) -> None:
    """Decoding options shared by sampling and every editing command (None = the model's default)."""
    g = parser.add_argument_group("decoding")
    g.add_argument("--steps", type=int, default=None, help="decoding iterations T (model default: 8)")
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


PARSERS = [add_sample_parser]


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
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as err:
        print(f"maskgit {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
