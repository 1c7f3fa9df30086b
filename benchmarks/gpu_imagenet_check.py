"""GPU check of the ImageNet-256 path: sampling speed (`maskgit bench`, plus compiled generation) and 200 training
steps of the imagenet-256 transformer on synthetic tokens, with the measured model-FLOPs utilisation.

On a CUDA machine (about 10 minutes on one H100):
    python benchmarks/gpu_imagenet_check.py --out benchmarks/results/gpu-imagenet-check
CPU smoke test of the script itself (seconds; numbers mean nothing):
    python benchmarks/gpu_imagenet_check.py --device cpu --steps 2 --batch-size 2 --bench-batch 1 \
        --bench-sampler maskgit-2 --no-compile --out /tmp/gpu-check-smoke
Writes OUT/gpu-check.json (and OUT/bench.{json,png,md} from `maskgit bench`).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from maskgit.config import SamplingConfig, TransformerTrainingConfig, to_dict
from maskgit.pipeline import MaskGIT
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS
from maskgit.speed.training_cost import PEAK_TFLOPS, step_flops
from maskgit.training.transformer import build_optimizer, lr_at, mvtm_step_loss
from maskgit.transformer import MaskGITTransformer
from maskgit.vq import VQGAN


def run_bench(out: Path, device: str, batch: int, sampler: str) -> dict:
    """`maskgit bench` at the imagenet-256 shape (16x16 tokens), bf16, one batch size; its JSON."""
    command = [sys.executable, "-m", "maskgit.cli", "bench", "--preset", "imagenet-256", "--grids", "16",
               "--batches", str(batch), "--dtypes", "bfloat16", "--samplers", sampler, "--device", device,
               "--repeats", "3" if device != "cpu" else "1", "--warmup", "30" if device != "cpu" else "1",
               "--out", str(out / "bench.json"), "--overwrite", "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        return {"command": " ".join(command), "error": result.stderr[-2000:]}
    return {"command": " ".join(command), "result": json.loads((out / "bench.json").read_text())}


def time_generation(device: str, batch: int, steps: int, compile: bool, repeats: int = 3) -> dict:
    """Images/s of `MaskGIT.generate` (tokens and VQGAN decoding) at imagenet-256 with random weights, bf16."""
    torch.manual_seed(0)
    pipe = MaskGIT(VQGAN(TOKENIZER_PRESETS["imagenet"]), MaskGITTransformer(TRANSFORMER_PRESETS["imagenet-256"]),
                   SamplingConfig(steps=steps)).to(device).eval()
    labels = list(range(batch))
    kwargs = {"dtype": "bfloat16", "compile": compile, "generator": torch.Generator(device).manual_seed(0)}
    start = time.perf_counter()
    pipe.generate(labels, **kwargs)  # warm-up (and compilation)
    _sync(device)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pipe.generate(labels, **kwargs)
        _sync(device)
        times.append(time.perf_counter() - start)
    best = min(times)
    return {"batch": batch, "steps": steps, "compile": compile, "first_call_s": first, "best_s": best,
            "images_per_s": batch / best}


def train_steps(device: str, steps: int, batch: int, compile: bool, warmup: int = 10) -> dict:
    """`steps` MVTM steps of the imagenet-256 transformer on random tokens (bf16 autocast, AdamW): s/step, MFU."""
    torch.manual_seed(0)
    tcfg = TRANSFORMER_PRESETS["imagenet-256"]
    cfg = TransformerTrainingConfig(transformer=tcfg, batch_size=batch, max_steps=max(steps, 1), warmup_steps=0,
                                    label_dropout=0.0)
    model = MaskGITTransformer(tcfg).to(device)
    optimizer = build_optimizer(model, cfg)
    forward = torch.compile(model) if compile else model
    g = torch.Generator(device).manual_seed(0)
    tokens = torch.randint(0, tcfg.codebook_size, (batch, tcfg.num_tokens), device=device, generator=g)
    labels = torch.randint(0, tcfg.num_classes, (batch,), device=device, generator=g)
    times, losses = [], []
    for step in range(steps):
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            loss, _ = mvtm_step_loss(forward, tokens, labels, cfg, g)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    timed = times[min(warmup, max(0, steps - 1)):]
    per_step = sum(timed) / len(timed)
    flops = step_flops(replace(cfg, grad_accum_steps=1))
    result = {"steps": steps, "batch": batch, "compile": compile, "s_per_step": per_step,
              "images_per_s": batch / per_step, "first_step_s": times[0], "model_tflops_per_step": flops / 1e12,
              "achieved_tflops": flops / per_step / 1e12, "loss_first": losses[0], "loss_last": losses[-1],
              "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None}
    for gpu, peak in PEAK_TFLOPS.items():
        result[f"mfu_vs_{gpu}"] = result["achieved_tflops"] / peak
    result["epoch_hours_on_this_device"] = 1_281_167 / result["images_per_s"] / 3600
    result["config"] = to_dict(cfg)
    return result


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def machine(device: str) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "device": device}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30, cuda=torch.version.cuda)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu-check.json and the bench files")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--batch-size", type=int, default=256, help="training batch (the paper's 256)")
    parser.add_argument("--bench-batch", type=int, default=64)
    parser.add_argument("--bench-sampler", default="maskgit-8")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (generation and training)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --device cpu for the smoke test")
    args.out.mkdir(parents=True, exist_ok=True)
    compile = not args.no_compile
    steps = int(args.bench_sampler.split("-")[1].split("+")[0])
    report = {"machine": machine(args.device), "args": {k: str(v) for k, v in vars(args).items()}}
    report["bench"] = run_bench(args.out, args.device, args.bench_batch, args.bench_sampler)
    repeats = 1 if args.device == "cpu" else 3
    report["generation"] = [time_generation(args.device, args.bench_batch, steps, c, repeats)
                            for c in ([False, True] if compile else [False])]
    report["training"] = train_steps(args.device, args.steps, args.batch_size, compile)
    (args.out / "gpu-check.json").write_text(json.dumps(report, indent=1) + "\n")
    t = report["training"]
    print(f"training: {t['s_per_step'] * 1000:.1f} ms/step at batch {t['batch']}, {t['images_per_s']:.0f} images/s, "
          f"{t['achieved_tflops']:.1f} TFLOP/s; generation: "
          + ", ".join(f"{g['images_per_s']:.1f} images/s (compile={g['compile']})" for g in report["generation"])
          + f" -> {args.out / 'gpu-check.json'}")


if __name__ == "__main__":
    main()
