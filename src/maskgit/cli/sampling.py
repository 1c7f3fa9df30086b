"""`maskgit sample` (class-conditional generation) and the editing commands `inpaint`, `outpaint` and `edit`.

Each writes images with the settings that made them beside them; the decoding options are `args.py`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import (
    LABELS_RULE,
    MODEL_HELP,
    add_autoregressive_args,
    add_overwrite_args,
    add_sampling_args,
    autoregressive_kwargs,
    ints,
    labels_arg,
    sampling_kwargs,
)


def add_sample_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate images with a trained model",
                       description="Generate class-conditional images by iterative parallel decoding. Writes one "
                                   "PNG per image, a grid, the resolved sampling config, and optionally a strip "
                                   "of the decoding steps (the paper's t = 0..T figure). Autoregressive models "
                                   "(transformer.causal) are sampled token by token in raster order.")
    p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
    p.add_argument("--labels", type=labels_arg, default=None,
                   help=f"comma-separated class names or indices, e.g. sneaker,bag or 0,3,7; {LABELS_RULE} "
                        f"(default: every class)")
    p.add_argument("--num", type=int, default=1, help="images per label")
    p.add_argument("--batch-size", type=int, default=64,
                   help="images decoded at once (memory grows with it; the images do not depend on it)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--show-steps", action="store_true",
                   help="also write steps.png: the tokens decided after each step, for the first images only")
    add_overwrite_args(p, "allow replacing files that already exist in --out; samples of an earlier run that this "
                          "run would not replace are refused even so (sampling.json lists and describes every sample "
                          "in --out): remove them or choose another --out")
    add_sampling_args(p)
    add_autoregressive_args(p)
    p.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> None:
    from ..sampling import sample_to_directory

    if args.sampler is not None and args.ar_sampler is not None:
        raise ValueError("--sampler is MaskGIT's (confidence, halton, grouped), --ar-sampler the autoregressive "
                         "baseline's (cached, naive): pass the one for your model")

    written = sample_to_directory(args.model, args.out, labels=args.labels, num_per_label=args.num,
                                  seed=args.seed, device=args.device, show_steps=args.show_steps,
                                  overwrite=args.overwrite, batch_size=args.batch_size,
                                  progress=not args.no_progress, **sampling_kwargs(args),
                                  **autoregressive_kwargs(args))
    print(f"wrote {len(written)} files to {args.out}")


def _four_ints(option: str, names: str):
    """An argument type for `option`: four comma-separated integers called `names`."""
    def parse(text: str) -> list[int]:
        values = ints(text)
        if len(values) != 4:
            raise argparse.ArgumentTypeError(f"{option} needs four integers {names}, got {text!r}")
        return values

    return parse


_box = _four_ints("--box", "x0,y0,x1,y1")
_pad = _four_ints("--pad", "left,top,right,bottom")

EDITING_TASKS = {
    "inpaint": "regenerate the masked pixels of images (paper section 4.3)",
    "outpaint": "grow the canvas (--pad) or extrapolate to a width (--width) and fill the new area",
    "edit": "class-conditional editing: regenerate a box with a target class",
}


def add_editing_parsers(sub) -> None:
    for task, help_text in EDITING_TASKS.items():
        p = sub.add_parser(task, help=help_text, description=help_text.capitalize() + ". Inputs are image files "
                           "of the model's size (or --resize); outputs are <name>_<task>.png, each with "
                           "<name>_<task>.json beside it (every setting that made it), so several runs can share "
                           "--out.")
        p.add_argument("images", nargs="+", type=Path,
                       help="input image files (PNG, JPEG, ...; 8/16-bit, palette, grey or RGB; transparent pixels are "
                            "composited on black, with a note)")
        p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
        p.add_argument("--out", type=Path, required=True, help="output directory")
        p.add_argument("--labels", type=labels_arg, default=None,
                       help=f"class name or index (one, or one per image, comma-separated; {LABELS_RULE}); "
                            f"default for inpaint/outpaint: none")
        p.add_argument("--label", dest="labels", type=labels_arg, help=argparse.SUPPRESS)  # the old spelling
        p.add_argument("--resize", action="store_true",
                       help="resize inputs (and --mask) of another size to the model's square size: shorter side "
                            "scaled, centre crop, as for training data")
        p.add_argument("--overwrite", action="store_true",
                       help="allow replacing results (and their JSON) that already exist in --out")
        _add_task_args(p, task)
        add_sampling_args(p, steps_default="12, the official editing schedule" if task == "edit" else None)
        p.set_defaults(func=run_editing, task=task)


def _add_task_args(p: argparse.ArgumentParser, task: str) -> None:
    """What says where to edit: a mask (inpaint), a padding or width (outpaint), a box (edit)."""
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


def run_editing(args: argparse.Namespace) -> None:
    from ..editing_io import edit_files

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
