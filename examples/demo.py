"""`make demo`: sample and edit with the bundled Fashion-MNIST model, writing PNGs.

Writes to --out: classes.png (one row per class), steps.png (the tokens after each decoding step,
the paper's t = 0..T figure), editing.png (inpainting, outpainting, extrapolation and class edits)
and demo.json (the settings). Falls back to a tiny random model when no bundled model is installed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import maskgit
from maskgit import MaskGIT, bundled_models
from maskgit.atomic import write_json_atomic
from maskgit.config import ModelConfig, to_dict
from maskgit.images import load_image, save_grid
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS

ASSETS = Path(maskgit.__file__).parent / "assets" / "fashion-mnist-test"


def load_model() -> tuple[MaskGIT, str]:
    if "fashion-mnist" in bundled_models():
        return MaskGIT.from_pretrained("fashion-mnist"), "fashion-mnist"
    print("no bundled model installed: running the algorithm on a tiny randomly initialised model")
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["tiny"])
    return MaskGIT.from_config(cfg).eval(), "tiny-random"


def editing_inputs(pipe: MaskGIT, samples: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Real Fashion-MNIST test images shipped with the package when the model takes 28x28 grayscale,
    else the model's own samples."""
    cfg = pipe.tokenizer.config
    files = sorted(ASSETS.glob("*.png"))
    if files and (cfg.in_channels, cfg.image_size) == (1, 28):
        return torch.stack([load_image(f, channels=1) for f in files])[:6], "shipped Fashion-MNIST test images"
    return samples[:6], "the model's own samples"


def editing_sheet(pipe: MaskGIT, originals: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Rows: original | inpainting mask | inpainted | outpainted (left+right) | class edit, per image."""
    n, c, h, w = originals.shape
    f = pipe.tokenizer.config.downsample_factor
    mask = torch.zeros(n, 1, h, w, dtype=torch.bool)
    mask[..., h // 4: h - h // 4, w // 4: w - w // 4] = True  # centre 50% x 50%
    inpainted = pipe.inpaint(originals, mask, generator=g)
    pad = (w // 2) // f * f
    outpainted = pipe.outpaint(originals, pad=(pad, 0, pad, 0), generator=g)
    num_classes = max(1, pipe.transformer.config.num_classes)
    targets = (torch.arange(n) + 1) % num_classes
    edited = pipe.edit(originals, box=(0, 0, w, h), labels=targets, generator=g)
    # Put everything on one canvas width: outpainted images are wider, so centre the others.
    width = outpainted.shape[-1]

    def centre(x):
        left = (width - x.shape[-1]) // 2
        return torch.nn.functional.pad(x, (left, width - x.shape[-1] - left), value=1.0)

    masked = originals.masked_fill(mask.expand_as(originals), 0.5)
    rows = [centre(originals), centre(masked), centre(inpainted), outpainted, centre(edited)]
    return torch.stack(rows, dim=1).flatten(0, 1), len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.time()
    pipe, name = load_model()
    g = torch.Generator().manual_seed(args.seed)
    num_classes = max(1, pipe.transformer.config.num_classes)
    per_class = 8
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images, history = pipe.generate(labels, generator=g, return_history=True)
    save_grid(images, args.out / "classes.png", nrow=per_class)
    steps = pipe.decode_history(history[::per_class])  # one sample per class, every step
    save_grid(steps.flatten(0, 1), args.out / "steps.png", nrow=steps.shape[1])
    originals, source = editing_inputs(pipe, images[::per_class])
    sheet, ncols = editing_sheet(pipe, originals, g)
    save_grid(sheet, args.out / "editing.png", nrow=ncols)
    write_json_atomic(args.out / "demo.json", {"model": name, "seed": args.seed, "config": to_dict(pipe.config),
                                              "editing_inputs": source,
                                              "editing_rows": ["original", "masked centre", "inpainted",
                                                               "outpainted left+right", "class edit to next class"],
                                              "seconds": round(time.time() - start, 1)})
    print(f"[{name}] wrote classes.png, steps.png, editing.png to {args.out}/ in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
