"""The cost of the paper's ImageNet recipes (configs/*-imagenet-*.json): FLOPs per step / epoch / run and GPU-hours.

Analytic (maskgit.speed.training_cost): no GPU needed. Writes OUT.json and OUT.md (a Markdown table).

    python benchmarks/imagenet_cost.py --out benchmarks/results/imagenet-cost.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from maskgit.config import TokenizerTrainingConfig, TransformerTrainingConfig
from maskgit.presets import config_with_preset
from maskgit.speed.training_cost import DEFAULT_MFU, PEAK_TFLOPS, encode_cost, recipe_cost

IMAGENET_TRAIN = 1_281_167  # ILSVRC-2012 training images
RECIPES = {  # name: (config file, config class, training sequences per epoch)
    "tokenizer-imagenet-256": ("configs/tokenizer-imagenet-256.json", TokenizerTrainingConfig, IMAGENET_TRAIN),
    "transformer-imagenet-256": ("configs/transformer-imagenet-256.json", TransformerTrainingConfig, IMAGENET_TRAIN),
    "transformer-imagenet-512": ("configs/transformer-imagenet-512.json", TransformerTrainingConfig, IMAGENET_TRAIN),
}


def cost_rows(mfu: float = DEFAULT_MFU) -> list[dict]:
    """One row per recipe and accelerator."""
    rows = []
    for name, (path, cls, images) in RECIPES.items():
        cfg = config_with_preset(cls, json.loads(Path(path).read_text()))
        for gpu in PEAK_TFLOPS:
            rows.append({"recipe": name, "config": path, "images_per_epoch": images,
                         "batch_size": cfg.batch_size, **recipe_cost(cfg, images, gpu=gpu, mfu=mfu)})
            if cls is TransformerTrainingConfig:  # its token cache, encoded once (both flips when hflip)
                size = cfg.transformer.grid_size * 16
                tokenizer = replace(config_with_preset(TokenizerTrainingConfig, {"preset": "imagenet-256"}).tokenizer,
                                    image_size=size)
                views = (1 + cfg.crop_views) * (2 if cfg.hflip else 1)
                rows.append({"recipe": f"token cache {size} ({views} views)", "config": path,
                             "images_per_epoch": images, "batch_size": None, "max_steps": None, "epochs": 1,
                             "step_flops": None, "epoch_flops": None,
                             **encode_cost(tokenizer, images, views, gpu=gpu, mfu=mfu),
                             "peak_tflops": PEAK_TFLOPS[gpu]})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| recipe | batch | steps | epochs | FLOPs / step | FLOPs / epoch | FLOPs / run | accelerator | "
             "GPU-hours | days on 8 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["step_flops"] is None:  # a token cache: one pass of the encoder
            lines.append(f"| {r['recipe']} | - | - | 1 | - | - | {r['total_flops']:.3g} | {r['gpu']} "
                         f"({r['peak_tflops']:g} TFLOP/s) | {r['gpu_hours']:,.1f} | {r['gpu_hours'] / 8 / 24:.2f} |")
            continue
        lines.append(f"| {r['recipe']} | {r['batch_size']} | {r['max_steps']:,} | {r['epochs']:.0f} | "
                     f"{r['step_flops']:.3g} | {r['epoch_flops']:.3g} | {r['total_flops']:.3g} | {r['gpu']} "
                     f"({r['peak_tflops']:g} TFLOP/s) | {r['gpu_hours']:,.0f} | {r['gpu_hours'] / 8 / 24:.1f} |")
    return "\n".join(lines) + f"\n\nAt {rows[0]['mfu']:.0%} model-FLOPs utilisation of the dense bf16 peak.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/imagenet-cost.json"))
    parser.add_argument("--mfu", type=float, default=DEFAULT_MFU)
    args = parser.parse_args()
    rows = cost_rows(args.mfu)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"mfu": args.mfu, "rows": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
