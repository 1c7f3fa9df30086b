"""The ImageNet path at scale, measured on a synthetic ImageNet-shaped folder (benchmarks/synthetic_imagenet.py).

Stages (each result is kept in OUT.json, so a rerun skips the stages already measured):
  shards  write WebDataset shards of the folder (maskgit.shards.write_shards)
  loader  images/s of the DataLoader with 0, 1, 2 workers: the folder, the shards by index, the shards streamed
  encode  token-cache encoding of the val split with 1 and 2 processes (byte-identical files), small tokenizer
  memory  resident memory of opening a 1.28M x 256 cache and gathering training batches from it
  train   a short 2-process `accelerate launch` training run from the shards (the encode stage's cache)
Writes OUT.json and OUT.png.

    python benchmarks/synthetic_imagenet.py --out /tmp/synthetic-imagenet
    python benchmarks/imagenet_scale.py --folder /tmp/synthetic-imagenet --work /tmp/imagenet-scale \
        --out benchmarks/results/imagenet-scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from maskgit.config import TokenizerConfig, to_dict

# A small tokenizer at 256x256 (16x16 tokens, 1024 codes): the ImageNet layout at 1/16 of the width, so that
# encoding on a CPU takes seconds per hundred images (0.33 GFLOPs per image against 129 for the real one).
SMALL_TOKENIZER = TokenizerConfig(in_channels=3, image_size=256, base_channels=8, channel_mult=(1, 1, 2, 2, 4),
                                  num_res_blocks=1, embed_dim=32, codebook_size=1024, norm_groups=8)
ENCODE = """
import sys, time, torch
from maskgit.data import build_dataset
from maskgit.training.token_cache import cached_tokens, encode_chunks, token_cache_key
from maskgit.vq import load_tokenizer
tok_dir, data, out, rank, world, threads, workers = sys.argv[1:8]
torch.set_num_threads(int(threads))
tokenizer, dataset = load_tokenizer(tok_dir), build_dataset(data, "val", 256)
parts = f"{out}/tokens-{token_cache_key(tokenizer, dataset)}.parts"
from pathlib import Path
encode_chunks(tokenizer, dataset, Path(parts), rank=int(rank), world=int(world), num_workers=int(workers),
              progress=False)
if world == "1":
    cached_tokens(tokenizer, dataset, out)  # merges
"""
MEMORY = """
import sys, psutil, torch
from maskgit.training.token_store import open_tokens
p = psutil.Process()
def mib(m): return {"rss_mib": m.rss / 2**20, "private_mib": (m.rss - m.shared) / 2**20}
out = {"baseline": mib(p.memory_info())}
tokens, labels = open_tokens(sys.argv[1])
out["opened"] = mib(p.memory_info())
t = torch.from_numpy(tokens)
g = torch.Generator().manual_seed(0)
for step in range(int(sys.argv[2])):
    batch = t[torch.randint(0, len(t), (256,), generator=g)].long()
out["after_batches"] = mib(p.memory_info())
out["peak_rss_mib"] = p.memory_info().rss / 2**20
print("RESULT", __import__("json").dumps(out))
"""
LAUNCH = """
import json, sys
from maskgit.config import TransformerTrainingConfig, from_dict
from maskgit.training.transformer import train_transformer
cfg = from_dict(TransformerTrainingConfig, json.load(open(sys.argv[1])))
train_transformer(cfg, tokenizer_dir=sys.argv[2], data=sys.argv[3], out=sys.argv[4], split="val", progress=False)
"""


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))) / 2**20
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory, 1), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(), "gpu": None,
            "load_average_at_start": os.getloadavg()}


def stage_shards(folder: Path, work: Path) -> dict:
    from maskgit.shards import write_shards

    shutil.rmtree(work / "shards", ignore_errors=True)
    start = time.perf_counter()
    index = write_shards(folder, work / "shards", shard_size=1000, progress=False)
    seconds = time.perf_counter() - start
    images = sum(s["count"] for s in index["splits"].values())
    size = sum(f.stat().st_size for f in (work / "shards").glob("*.tar"))
    return {"images": images, "seconds": seconds, "images_per_s": images / seconds, "shards": len(list(
        (work / "shards").glob("*.tar"))), "bytes": size}


def _time_loader(dataset, workers: int, images: int) -> float:
    """Images/s of a DataLoader (batches of 64) over `dataset` until `images` are read, worker start included."""
    from torch.utils.data import DataLoader

    start, seen = time.perf_counter(), 0
    for batch, _ in DataLoader(dataset, batch_size=64, num_workers=workers):
        seen += len(batch)
        if seen >= images:
            break
    return seen / (time.perf_counter() - start)


def stage_loader(folder: Path, work: Path, images: int) -> dict:
    from maskgit.data import build_dataset
    from maskgit.shards import ShardDataset, stream_shards

    subprocess.run(f"cat $(find {folder} -name '*.JPEG') > /dev/null; cat {work}/shards/*.tar > /dev/null",
                   shell=True, check=True)  # a warm page cache for every source
    sources = {"folder": lambda: build_dataset(str(folder), "train", 256),
               "shards (by index)": lambda: ShardDataset(work / "shards", "train", 256),
               "shards (webdataset stream)": lambda: stream_shards(work / "shards", "train", 256)}
    rows = []
    for name, make in sources.items():
        for workers in (0, 1, 2):
            rows.append({"source": name, "workers": workers, "batch": 64, "image_size": 256,
                         "images_per_s": _time_loader(make(), workers, images)})
            print(rows[-1], flush=True)
    return {"images_per_run": images, "page_cache": "warm", "rows": rows}


def _tokenizer(work: Path) -> Path:
    from maskgit.vq import VQGAN, save_tokenizer

    torch.manual_seed(0)
    return save_tokenizer(VQGAN(SMALL_TOKENIZER), work / "tokenizer")


def stage_encode(work: Path) -> dict:
    from maskgit.data import build_dataset
    from maskgit.training.token_store import merge_parts

    tok, val = _tokenizer(work), build_dataset(str(work / "shards"), "val", 256)
    script = work / "encode.py"
    script.write_text(ENCODE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for world, threads in ((1, 2), (2, 1)):
        out = work / f"cache-{world}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, str(script), str(tok), str(work / "shards"), str(out), str(r),
                                   str(world), str(threads), "1"], env=env) for r in range(world)]
        assert all(p.wait() == 0 for p in procs)
        if world > 1:  # every share is there: the merge, as rank 0 of a run does it after the barrier
            parts = next(out.glob("tokens-*.parts"))
            merge_parts(parts, parts.with_suffix(".safetensors"), -(-len(val) // 256),
                        {"images": str(len(val)), "views": "1"})
        seconds = time.perf_counter() - start
        path = next(out.glob("tokens-*.safetensors"))
        runs[world] = {"processes": world, "torch_threads_each": threads, "workers_each": 1, "seconds": seconds,
                       "file": path.name, "bytes": path.stat().st_size}
        print(runs[world], flush=True)
    same = (work / "cache-1" / runs[1]["file"]).read_bytes() == (work / "cache-2" / runs[2]["file"]).read_bytes()
    images = runs[1]["bytes"] // (8 + 256 * 2)
    for run in runs.values():
        run["images_per_s"] = images / run["seconds"]
    return {"split": "val", "images": images, "tokenizer": to_dict(SMALL_TOKENIZER), "runs": list(runs.values()),
            "byte_identical": same}


def stage_memory(work: Path, rows: int = 1_281_167, batches: int = 1000) -> dict:
    from maskgit.training.token_store import merge_parts, write_part

    parts, path = work / "big-parts", work / f"tokens-{rows}.safetensors"
    if not path.exists():
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
        g = np.random.default_rng(0)
        for c, first in enumerate(range(0, rows, 256 * 40)):
            n = min(256 * 40, rows - first)
            write_part(parts, c, g.integers(0, 1024, (n, 256), dtype=np.int16), np.arange(first, first + n) % 1000)
        merge_parts(parts, path, c + 1)
    script = work / "memory.py"
    script.write_text(MEMORY)
    result = subprocess.run([sys.executable, str(script), str(path), str(batches)], capture_output=True, text=True,
                            check=True)
    numbers = json.loads(result.stdout.split("RESULT", 1)[1])
    return {"rows": rows, "tokens_per_row": 256, "dtype": "int16", "file_bytes": path.stat().st_size,
            "batches_of_256": batches, **numbers,
            "grown_by_opening_mib": numbers["opened"]["rss_mib"] - numbers["baseline"]["rss_mib"],
            "private_grown_after_batches_mib": numbers["after_batches"]["private_mib"]
            - numbers["baseline"]["private_mib"]}


def stage_train(work: Path, steps: int = 30) -> dict:
    tok, out = work / "tokenizer", work / "train"
    shutil.rmtree(out, ignore_errors=True)
    (out / "token_cache").mkdir(parents=True)
    cache = next((work / "cache-1").glob("tokens-*.safetensors"))
    shutil.copy(cache, out / "token_cache" / cache.name)  # the encode stage's cache: the run only trains
    from maskgit.shards import read_index

    classes = len(read_index(work / "shards")["classes"])
    config = {"transformer": {"codebook_size": 1024, "num_classes": classes, "grid_size": 16, "hidden_size": 256,
                              "num_layers": 4, "num_heads": 8, "intermediate_size": 1024},
              "batch_size": 32, "max_steps": steps, "warmup_steps": 5, "lr": 3e-4, "log_every": 1,
              "sample_every": 0, "checkpoint_every": 10, "num_workers": 1}
    (work / "train.json").write_text(json.dumps(config))
    (work / "launch.py").write_text(LAUNCH)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               "29561", str(work / "launch.py"), str(work / "train.json"), str(tok), str(work / "shards"), str(out)]
    start = time.perf_counter()
    result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()]
    header, last = rows[0], dict(zip(rows[0], rows[-1]))
    return {"processes": 2, "steps": steps, "batch_size": 32, "config": config, "wall_seconds": seconds,
            "images_per_s": float(last["images_per_s"]), "loss_first": float(dict(zip(header, rows[1]))["loss"]),
            "loss_last": float(last["loss"]), "plan": [line for line in result.stdout.splitlines()
                                                         if line.startswith(("plan:", "note: cost"))]}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    if "loader" in results:
        rows = results["loader"]["rows"]
        sources = list(dict.fromkeys(r["source"] for r in rows))
        for i, workers in enumerate((0, 1, 2)):
            values = [next(r["images_per_s"] for r in rows if r["source"] == s and r["workers"] == workers)
                      for s in sources]
            axes[0].bar(np.arange(len(sources)) + 0.27 * (i - 1), values, 0.27, label=f"{workers} workers")
        axes[0].set_xticks(range(len(sources)), sources, fontsize=8)
        axes[0].set_ylabel("images / s (256x256, batch 64)")
        axes[0].set_title("DataLoader throughput")
        axes[0].legend()
    if "encode" in results:
        runs = results["encode"]["runs"]
        axes[1].bar([f"{r['processes']} process(es)" for r in runs], [r["seconds"] for r in runs])
        axes[1].set_ylabel("seconds")
        axes[1].set_title(f"token cache of {results['encode']['images']:,} images "
                          f"(identical: {results['encode']['byte_identical']})", fontsize=9)
    if "memory" in results:
        m = results["memory"]
        labels = ["file", "RSS opened", "RSS after\nbatches", "private after\nbatches"]
        values = [m["file_bytes"] / 2**20, m["opened"]["rss_mib"] - m["baseline"]["rss_mib"],
                  m["after_batches"]["rss_mib"] - m["baseline"]["rss_mib"], m["private_grown_after_batches_mib"]]
        axes[2].bar(labels, values)
        axes[2].set_ylabel("MiB beyond the baseline")
        axes[2].set_title(f"1.28M x 256 cache, {m['batches_of_256']} batches of 256", fontsize=9)
    fig.suptitle(f"{results['machine']['cpu']}, {results['machine']['cores']} cores", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="the synthetic folder (train/ and val/)")
    parser.add_argument("--work", type=Path, required=True, help="scratch space (shards, caches, runs)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/imagenet-scale.json"))
    parser.add_argument("--stages", default="shards,loader,encode,memory,train")
    parser.add_argument("--loader-images", type=int, default=2048)
    parser.add_argument("--memory-rows", type=int, default=1_281_167, help="rows of the cache opened (ImageNet's)")
    parser.add_argument("--train-steps", type=int, default=30)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results.setdefault("machine", machine())
    stages = {"shards": lambda: stage_shards(args.folder, args.work),
              "loader": lambda: stage_loader(args.folder, args.work, args.loader_images),
              "encode": lambda: stage_encode(args.work), "memory": lambda: stage_memory(args.work, args.memory_rows),
              "train": lambda: stage_train(args.work, args.train_steps)}
    for name in args.stages.split(","):
        if name in results:
            continue
        print(f"stage {name}", flush=True)
        results[name] = stages[name]()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        plot(results, args.out.with_suffix(".png"))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
