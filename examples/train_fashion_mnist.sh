#!/usr/bin/env bash
# The whole Fashion-MNIST recipe behind the bundled model, as one command sequence.
# Every training step resumes if re-run after an interruption. Measured wall times on the 2-core CPU:
# src/maskgit/pretrained/fashion-mnist/MODEL_CARD.md.
# Multi-GPU: replace `maskgit train` by `accelerate launch --multi_gpu --num_processes N -m maskgit.cli train`.
set -euo pipefail
RUNS=${RUNS:-runs}
RESULTS=${RESULTS:-results}
BUNDLE=src/maskgit/pretrained
mkdir -p "$RESULTS"

# 1. Tokenizer (VQGAN, 28x28 -> 7x7 tokens) and its reconstruction metrics on the 10k test images.
OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 -m maskgit.cli train-tokenizer \
  --config configs/tokenizer-fashion-mnist.json --data fashion-mnist --out "$RUNS/tokenizer-fmnist"
maskgit eval-tokenizer --tokenizer "$RUNS/tokenizer-fmnist/final" --data fashion-mnist --split test \
  --out "$RESULTS/tokenizer-fashion-mnist.json" --overwrite

# 2. Model v1: transformer by masked visual token modeling on the tokenizer's codes (train + val split), saved in
#    float16 as v1 was shipped (v1's tokenizer is this float16 copy from here on).
maskgit train --config configs/transformer-fashion-mnist.json --tokenizer "$RUNS/tokenizer-fmnist/final" \
  --data fashion-mnist --out "$RUNS/transformer-fmnist"
python -c "import sys, torch, maskgit; maskgit.MaskGIT.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2], dtype=torch.float16)" \
  "$RUNS/transformer-fmnist/final" "$RUNS/transformer-fmnist-v1-bundle"

# 3. Model v2: 5,000 more steps from v1's weights on the train split only (the 5,000 validation images stay out of
#    this stage, for choosing the sampling settings), same tokenizer.
maskgit train --config configs/transformer-fashion-mnist-v2.json --tokenizer "$RUNS/transformer-fmnist-v1-bundle" \
  --init-from "$RUNS/transformer-fmnist-v1-bundle" --data fashion-mnist --split train --out "$RUNS/transformer-fmnist-v2"

# 4. Model v3's transformer: two more stages on the train split, same tokenizer: 2,500 steps from v2's final
#    weights, then 4,000 from those (each stage warms up again and decays its own cosine schedule). Model v2 was
#    shipped from step 3 with its own defaults (benchmarks/results/fmnist-v2); its numbers are in the model card.
maskgit train --config configs/transformer-fashion-mnist-v2-plus-2500.json --tokenizer "$RUNS/transformer-fmnist-v1-bundle" \
  --init-from "$RUNS/transformer-fmnist-v2/final" --data fashion-mnist --split train --out "$RUNS/transformer-fmnist-v2-plus-2500"
maskgit train --config configs/transformer-fashion-mnist-v3.json --tokenizer "$RUNS/transformer-fmnist-v1-bundle" \
  --init-from "$RUNS/transformer-fmnist-v2-plus-2500/final" --data fashion-mnist --split train --out "$RUNS/transformer-fmnist-v3"

# 5. The judge classifier (real images only; it scores every study and evaluation below), then model v3's default
#    sampling settings chosen on the validation split (steps x guidance x temperatures; rule in the script), saved
#    as v3 was shipped: float16 weights (loaded back as float32) with those defaults in its config.json.
maskgit train-classifier --data fashion-mnist --epochs 5 --out "$BUNDLE/fashion-mnist-classifier" --overwrite
python benchmarks/sampling_studies.py select --model "$RUNS/transformer-fmnist-v3/final" --reference val \
  --num-per-class 100 --out-dir benchmarks/results/fmnist-v3
python - "$RUNS/transformer-fmnist-v3/final" benchmarks/results/fmnist-v3/study-select.json "$RUNS/transformer-fmnist-v3-bundle" <<'PY'
import dataclasses, json, sys, torch, maskgit
pipe = maskgit.MaskGIT.from_pretrained(sys.argv[1])
pipe.sampling = dataclasses.replace(pipe.sampling, **json.load(open(sys.argv[2]))["chosen"]["settings"])
pipe.save_pretrained(sys.argv[3], dtype=torch.float16)
PY

# 6. Model v4 (shipped): v3's transformer with a sharper decoder. The tokenizer's decoder alone is fine-tuned
#    against a PatchGAN (adaptive adversarial weight, hinge losses) on the train split, its encoder and codebook
#    frozen, so the codes, and the transformer trained on them, stay valid. Of its checkpoints (every 250 steps) the
#    one whose reconstructions of 1,000 train images lie nearest the validation images is kept; guidance is then
#    re-checked on the validation split (select --local: v3's defaults with guidance w - 2, w, w + 2, same rule).
OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 -m maskgit.cli train-tokenizer \
  --config configs/tokenizer-fashion-mnist-decoder-ft.json --init-from "$RUNS/transformer-fmnist-v1-bundle" \
  --data fashion-mnist --out "$RUNS/tokenizer-fmnist-decoder-ft"
python benchmarks/tokenizer_checkpoints.py --run "$RUNS/tokenizer-fmnist-decoder-ft" \
  --export "$RUNS/tokenizer-fmnist-decoder-ft/best-val" --out benchmarks/results/fmnist-v4/decoder-checkpoints --overwrite
maskgit eval-tokenizer --tokenizer "$RUNS/tokenizer-fmnist-decoder-ft/best-val" --data fashion-mnist --split test \
  --out "$RESULTS/tokenizer-fashion-mnist-decoder-ft.json" --overwrite
python - "$RUNS/transformer-fmnist-v3-bundle" "$RUNS/tokenizer-fmnist-decoder-ft/best-val" "$RUNS/fmnist-v4-candidate" <<'PY'
import sys, torch, maskgit
from maskgit.vq import load_tokenizer
pipe = maskgit.MaskGIT.from_pretrained(sys.argv[1]).with_tokenizer(load_tokenizer(sys.argv[2]))
pipe.save_pretrained(sys.argv[3], dtype=torch.float16)
PY
python benchmarks/sampling_studies.py select --local --model "$RUNS/fmnist-v4-candidate" --reference val \
  --num-per-class 100 --out-dir benchmarks/results/fmnist-v4
python - "$RUNS/fmnist-v4-candidate" benchmarks/results/fmnist-v4/study-select.json "$BUNDLE/fashion-mnist" <<'PY'
import dataclasses, json, sys, torch, maskgit
pipe = maskgit.MaskGIT.from_pretrained(sys.argv[1])
pipe.sampling = dataclasses.replace(pipe.sampling, **json.load(open(sys.argv[2]))["chosen"]["settings"])
pipe.save_pretrained(sys.argv[3], dtype=torch.float16)
PY

# 7. The scores of the bundled model's samples and edits.
maskgit evaluate --model fashion-mnist --num-per-class 100 --out "$RESULTS/generation-fashion-mnist.json" --overwrite
for seed in 1 2; do maskgit evaluate --model fashion-mnist --num-per-class 100 --seed "$seed" \
  --out "$RESULTS/generation-fashion-mnist-seed$seed.json" --overwrite; done
python benchmarks/fashion_mnist_seed_spread.py --model fashion-mnist --labels v4 --seeds 10 \
  --out benchmarks/results/fmnist-v4/seed-spread --overwrite
# Tokenizer floor vs samples, before (v1, committed) and after.
python benchmarks/fashion_mnist_decomposition.py --before benchmarks/results/decomposition-v1.json \
  --out benchmarks/results/decomposition-v4 --overwrite
maskgit evaluate-editing --model fashion-mnist --out "$RESULTS/editing-fashion-mnist.json" --overwrite
# The standard metrics on 10,000 samples (FD / precision / recall / IS on judge features, CAS), and the studies.
bash benchmarks/fashion_mnist_metrics.sh
for study in schedules guidance temperature; do python benchmarks/sampling_studies.py "$study"; done
