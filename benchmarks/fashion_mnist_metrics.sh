#!/usr/bin/env bash
# Acceptance run of `maskgit sample-dump` + `maskgit metrics` on 10,000 samples of the bundled model
# (also study 4: CAS of the bundled model against real data). Each step is timed with /usr/bin/time -v
# (logs: benchmarks/results/fashion-mnist-10k-*.time.txt). Dumps and reference batches go to $WORK.
#   PYTHONPATH=src bash benchmarks/fashion_mnist_metrics.sh
set -euo pipefail
WORK=${WORK:-/tmp/maskgit-metrics}
RES=benchmarks/results
NPROC=${NPROC:-2}
export OMP_NUM_THREADS=1
mkdir -p "$WORK" "$RES"
t() { local name=$1; shift; /usr/bin/time -v -o "$RES/fashion-mnist-10k-$name.time.txt" "$@"; }
t reference-test maskgit reference-batch --data fashion-mnist --split test --out "$WORK/fmnist-test.npz" --overwrite
t reference-train maskgit reference-batch --data fashion-mnist --split trainval --num 10000 --seed 0 \
  --out "$WORK/fmnist-train10k.npz" --overwrite
t sample-dump accelerate launch --multi_gpu --num_processes "$NPROC" -m maskgit.cli sample-dump \
  --model fashion-mnist --num-per-class 1000 --batch-size 250 --seed 0 --out "$WORK/fmnist-10k.npz" --overwrite
# --no-cache: the real sets' features are computed inside the timed run (worst case).
t metrics maskgit metrics "$WORK/fmnist-10k.npz" --ref "$WORK/fmnist-test.npz" \
  --baseline "$WORK/fmnist-train10k.npz" --features classifier:fashion-mnist-classifier --cas --no-cache \
  --out "$RES/fashion-mnist-10k-metrics.json" --overwrite
grep -H -E "Elapsed \(wall" "$RES"/fashion-mnist-10k-*.time.txt
