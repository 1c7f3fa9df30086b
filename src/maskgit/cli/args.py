"""What the subcommands share: option parsers (labels, tokenizer, integer lists, JSON configs), help texts, the
decoding and autoregressive option groups, and the data and output options that recur across commands.

Nothing here imports torch: the parser is built (and `--help` answered) before any library import.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bundled import PRETRAINED_DIR, bundled_or_path
from ..decoding import SAMPLERS

MODEL_HELP = "a bundled model name (fashion-mnist) or a directory written by save_pretrained / `maskgit train`"
LABELS_RULE = ("names are matched first (case-insensitive; a model trained on an image folder has its class folder "
               "names), and a number is a class index only when no class has that name")
DATA_HELP = ("fashion-mnist, digits (scikit-learn), an image folder with one subfolder of images per class "
             "(PNG, JPEG, ...; 8/16-bit, palette, grey or RGB, alpha composited on black), train/ and val/ such "
             "folders side by side (used as given, e.g. ImageNet), or a directory of `maskgit shards`")
DATA_ROOT_HELP = "directory of the Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)"
RESIZE_DATA_HELP = ("allow images of another size than the model's: scale the shorter side to its size and "
                    "centre-crop (without it such data is refused)")
DEVICE_HELP = "cpu, cuda, cuda:1, mps ..."


def labels_arg(text: str) -> list[str]:
    """'sneaker,3' -> ['sneaker', '3']; the model resolves each (see LABELS_RULE, `MaskGIT.resolve_labels`)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def tokenizer_arg(text: str) -> Path:
    """--tokenizer: a directory, or a bundled model name (whose tokenizer is used)."""
    return bundled_or_path(text, "tokenizer.json")


def ints(text: str) -> list[int]:
    """'1,8,64' -> [1, 8, 64]."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def read_json(path: Path) -> dict:
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


def add_data_args(p: argparse.ArgumentParser, data_help: str = DATA_HELP, **data_options) -> None:
    """--data (`data_options`: required=True or a default) and --data-root."""
    p.add_argument("--data", help=data_help, **data_options)
    p.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)


def add_overwrite_args(p: argparse.ArgumentParser, overwrite_help: str, progress_help: str = "no progress bar") -> None:
    """--overwrite and --no-progress, the two options that close most commands."""
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.add_argument("--no-progress", action="store_true", help=progress_help)


def _bundled_sampling() -> dict:
    """The bundled model's sampling defaults (its config.json, read without importing torch), for help texts."""
    import json

    try:
        return json.loads((PRETRAINED_DIR / "fashion-mnist" / "config.json").read_text()).get("sampling", {})
    except (OSError, ValueError):
        return {}


def add_sampling_args(parser: argparse.ArgumentParser, steps_default: str | None = None) -> None:
    """Decoding options shared by sampling and every editing command (None = the model's default)."""
    from ..config import SamplingConfig

    bundled, library = _bundled_sampling(), SamplingConfig()

    def default(name: str) -> str:  # what applies when the option is left out
        value = bundled.get(name, getattr(library, name))
        return f"(default: the model's own; the bundled fashion-mnist: {'none' if value is None else value})"

    g = parser.add_argument_group("decoding (left out: the model's own defaults, or those of --sampling)")
    g.add_argument("--steps", type=int, default=None,
                   help=f"decoding iterations T {f'(default: {steps_default})' if steps_default else default('steps')}")
    g.add_argument("--schedule", default=None,
                   help="mask schedule: cosine, linear, square, cubic, exponential, square-root, logarithmic, "
                        f"arccos or powX {default('schedule')}")
    g.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature (divides logits) {default('temperature')}")
    g.add_argument("--choice-temperature", type=float, default=None,
                   help="Gumbel noise scale on confidences, annealed to 0 (official: 4.5) "
                        f"{default('choice_temperature')}")
    g.add_argument("--guidance-scale", type=float, default=None,
                   help=f"classifier-free guidance w, 0 = off {default('guidance_scale')}")
    g.add_argument("--guidance-schedule", choices=["constant", "linear", "power-cosine"], default=None,
                   help="guidance over the steps: constant w, a linear ramp from 0 to w, or power-cosine "
                        f"w (1 - cos(pi (t/T)^p)) / 2 (MDT, TiTok, MaskBit) {default('guidance_schedule')}")
    g.add_argument("--guidance-exponent", type=float, default=None,
                   help=f"p of the power-cosine guidance schedule (TiTok: 2.75) {default('guidance_exponent')}")
    g.add_argument("--guidance-start", type=float, default=None,
                   help="guide only the steps whose progress (t + 1) / T exceeds this, in [0, 1); earlier steps skip "
                        f"the unconditional pass, so they cost half (a guidance interval) {default('guidance_start')}")
    g.add_argument("--sampler", choices=list(SAMPLERS), default=None,
                   help="confidence: the official sampler (keep the most confident tokens); halton: decide positions "
                        "in a 2-D Halton order over the grid (Besnier et al. 2025; use with --schedule arccos as "
                        "its reference); grouped: ReCAP's grouped decoding, a confidence step per full pass whose "
                        "ranking decides the positions of the --cheap-passes steps after it "
                        f"{default('sampler')}")
    g.add_argument("--temperature-end", type=float, default=None,
                   help="softmax temperature at the last step; it runs linearly from --temperature (none: constant) "
                        f"{default('temperature_end')}")
    g.add_argument("--cheap-passes", type=int, default=None,
                   help="cached (ReCAP) passes after each full forward pass: only changed and needed positions are "
                        f"recomputed, the other keys/values reused {default('cheap_passes')}")
    g.add_argument("--sampling", dest="sampling_preset", default=None,
                   help="a named sampling setting the model ships (the bundled fashion-mnist: fast); the options "
                        "above override it (default: the model's defaults)")
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed, same images) (default: 0)")
    g.add_argument("--device", default="cpu", help=f"{DEVICE_HELP} (default: cpu)")
    g.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto",
                   help="compute dtype of the transformer (weights stay float32); auto: the fastest for the device: "
                        "bfloat16 on CUDA and on CPUs with native bf16, float32 elsewhere (default: auto)")
    g.add_argument("--compile", action="store_true",
                   help="run the decoding step through torch.compile (CUDA: captured as a CUDA graph); the first "
                        "call compiles, which pays off for large batches or many calls")


def sampling_kwargs(args: argparse.Namespace) -> dict:
    """The decoding options that were given, as keyword arguments of the library's sampling calls."""
    keys = ["steps", "schedule", "temperature", "choice_temperature", "guidance_scale", "guidance_schedule", "dtype",
            "guidance_exponent", "guidance_start", "sampler", "temperature_end", "cheap_passes", "sampling_preset"]
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
