"""The full sampling-speed benchmark of issue 10: MaskGIT (T = 8, 12) vs naive and KV-cached AR, one network.

Run it on a quiet machine (it takes hours on a 2-core CPU; cells over the budget are timed on the reduced
preset instead):
    OMP_NUM_THREADS=<cores> python benchmarks/sampling_speed.py --out benchmarks/results/sampling_speed_cpu.json
    python benchmarks/sampling_speed.py --device cuda --out benchmarks/results/sampling_speed_cuda.json
Every `maskgit bench` option can be added (e.g. --batches 1,8 --cell-budget 300); the defaults are the full grid.
"""

import sys

from maskgit.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--preset", "imagenet-256", "--grids", "16,32", "--batches", "1,2,4,8,16,32,64",
                   "--dtypes", "float32,bfloat16", "--samplers", "maskgit-8,maskgit-12,ar-cached,ar-naive",
                   "--repeats", "3", "--cell-budget", "240", *sys.argv[1:]]))
