"""Re-make chunks of a sample dump in this one process and compare them with the dump, bit for bit.

A dump made on N processes (or resumed after kills) must equal the one-process dump; regenerating a few
chunks here (by default the first chunk of each of the first two processes and the last chunk) checks that
without paying for a second full dump.

    python benchmarks/check_dump.py /tmp/maskgit-metrics/fmnist-10k.npz \
        --out benchmarks/results/fashion-mnist-10k-check.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from maskgit import MaskGIT
from maskgit.atomic import write_json_atomic
from maskgit.evaluation.image_sets import load_image_set
from maskgit.evaluation.sample_dump import chunk_ranges, generate_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", type=Path)
    parser.add_argument("--chunks", default="0,1,-1", help="chunk numbers to regenerate (negative: from the end)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    settings = json.loads(args.dump.with_suffix(".json").read_text())
    dump = load_image_set(args.dump)
    pipe = MaskGIT.from_pretrained(settings["model"])
    chunks = chunk_ranges(len(dump.images), settings["batch_size"])
    overrides = {k: v for k, v in settings["sampling"].items() if v is not None}
    rows = []
    for number in (int(c) for c in args.chunks.split(",")):
        chunk = chunks[number]
        again = generate_samples(pipe, chunk, dump.labels, seed=settings["seed"], **overrides)
        equal = bool(np.array_equal(again, dump.images[chunk.start:chunk.stop]))
        rows.append({"chunk": chunk.start // settings["batch_size"], "indices": [chunk.start, chunk.stop],
                     "made_by_process": (chunk.start // settings["batch_size"]) % settings["world_size"],
                     "bit_identical": equal})
        print(rows[-1], flush=True)
    write_json_atomic(args.out, {"dump": str(args.dump), "world_size": settings["world_size"], "rows": rows,
                                 "all_identical": all(r["bit_identical"] for r in rows),
                                 "command": "python benchmarks/check_dump.py " + " ".join(sys.argv[1:])})


if __name__ == "__main__":
    main()
