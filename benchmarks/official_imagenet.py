"""Convert official-format ImageNet checkpoints and time sampling with them on this machine.

Writes random arrays with exactly the official ImageNet paths and shapes (tests/fixtures/official/
official_param_tree.json) in the official serialisation, converts them with `maskgit convert-official`,
then samples with the converted model as a user would: seconds per image and peak resident memory, for
the transformer alone and with the tokenizer's decoder, at batch 1 and 8. Random weights decode
nothing meaningful but cost exactly what the real ones cost.

    python benchmarks/official_imagenet.py --work /tmp/official-imagenet --out benchmarks/results/official_imagenet
    python benchmarks/official_imagenet.py --work DIR --make-only   # only the two synthetic checkpoints
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TREE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official" / "official_param_tree.json"


def write_synthetic_checkpoints(work: Path, resolution: int = 256, seed: int = 0) -> tuple[Path, Path]:
    """Random official-format transformer + tokenizer checkpoints (returns their paths)."""
    from maskgit.convert import write_flax_msgpack

    tree = json.loads(TREE.read_text())
    rng = np.random.default_rng(seed)
    paths = []
    for name, key in ((f"transformer_{resolution}.msgpack", f"transformer_{resolution}"),
                      ("tokenizer.msgpack", "tokenizer")):
        arrays = {}
        for path, shape in tree[key]["params"].items():
            if path.endswith("/scale"):  # norms start at identity, as a trained network roughly is
                arrays[path] = np.ones(shape, np.float32)
            else:
                arrays[path] = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
        paths.append(write_flax_msgpack(arrays, work / name))
    return paths[0], paths[1]


def timed_sampling(model_dir: Path, batch: int, steps: int, decode_pixels: bool, repeats: int) -> dict:
    """Seconds per image (median of `repeats` after a warm-up) and peak RSS, in a fresh process."""
    code = f"""
import json, resource, statistics, time, torch
from maskgit import MaskGIT
pipe = MaskGIT.from_pretrained({str(model_dir)!r})
labels = torch.arange({batch}) % pipe.transformer.config.num_classes
def run(seed):
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        if {decode_pixels}:
            return pipe.generate(labels, steps={steps}, generator=g)
        tokens = torch.full(({batch}, pipe.transformer.config.num_tokens), pipe.transformer.config.mask_id)
        return pipe.fill_tokens(tokens, labels, steps={steps}, generator=g)
run(0)
times = []
for r in range({repeats}):
    t = time.perf_counter(); run(r + 1); times.append(time.perf_counter() - t)
print(json.dumps({{"seconds": statistics.median(times), "all_seconds": times,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"batch": batch, "steps": steps, "with_tokenizer_decoder": decode_pixels,
            "seconds_per_batch": result["seconds"], "seconds_per_image": result["seconds"] / batch,
            "all_seconds": result["all_seconds"], "peak_rss_mb": result["peak_rss_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="scratch directory for the ~1.8 GB of files")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/official_imagenet"),
                        help="results prefix: writes .json and .png")
    parser.add_argument("--steps", type=int, default=8, help="decoding steps (the paper's 8 at 256 px)")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after one warm-up")
    parser.add_argument("--make-only", action="store_true", help="only write the synthetic checkpoints")
    args = parser.parse_args()

    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    transformer, tokenizer = write_synthetic_checkpoints(args.work)
    print(f"synthetic checkpoints written in {time.perf_counter() - start:.1f} s")
    if args.make_only:
        return
    model_dir = args.work / "imagenet-256"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "maskgit.cli", "convert-official", "--transformer", str(transformer),
                    "--tokenizer", str(tokenizer), "--out", str(model_dir), "--overwrite"], check=True)
    convert_seconds = time.perf_counter() - start
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        for pixels in (False, True):
            rows.append(timed_sampling(model_dir, batch, args.steps, pixels, args.repeats))
            print(json.dumps(rows[-1]))
    result = {
        "what": "sampling the converted official imagenet-256 model (random weights of the official shapes), "
                "float32, CPU, torch.inference_mode",
        "command": " ".join(["python"] + sys.argv),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__},
        "convert_seconds": convert_seconds,
        "convert_peak_rss_mb_self_and_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "rows": rows,
    }
    from maskgit.atomic import write_json_atomic

    write_json_atomic(args.out.with_suffix(".json"), result)
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out.with_suffix('.json')} and .png")


def plot(result: dict, path: Path) -> None:
    from reporting import pyplot, save_figure

    fig, axes = pyplot().subplots(1, 2, figsize=(9, 3.5))
    labels = [f"B={r['batch']}\n{'+ decoder' if r['with_tokenizer_decoder'] else 'tokens'}" for r in result["rows"]]
    axes[0].bar(labels, [r["seconds_per_image"] for r in result["rows"]], color="tab:blue")
    axes[0].set_ylabel("seconds per image")
    axes[1].bar(labels, [r["peak_rss_mb"] / 1024 for r in result["rows"]], color="tab:orange")
    axes[1].set_ylabel("peak resident memory (GiB)")
    fig.suptitle(f"imagenet-256, {result['rows'][0]['steps']} steps, {result['machine']['threads']} CPU threads "
                 f"({result['machine']['capability']})", fontsize=10)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
