"""Two processes (`accelerate launch`, CPU/gloo) train the transformer from WebDataset shards, are killed, resume.

The token cache both processes encoded must be byte-identical to one encoded by a single process.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from maskgit.presets import TOKENIZER_PRESETS
from maskgit.shards import ShardDataset, write_shards
from maskgit.training.token_cache import cached_tokens
from maskgit.vq import VQGAN, save_tokenizer

pytest.importorskip("webdataset")
SMOKE = "configs/transformer-digits-smoke.json"
STEPS = 40
LAUNCH = """
import sys
from maskgit.config import TransformerTrainingConfig, from_dict
import json
cfg = from_dict(TransformerTrainingConfig, json.load(open(sys.argv[1])))
from maskgit.training.transformer import train_transformer
train_transformer(cfg, tokenizer_dir=sys.argv[2], data=sys.argv[3], out=sys.argv[4], split="train", progress=False)
"""


def _imagenet_like(root):
    """train/ and val/ side by side, 3 classes of 8x8 RGB images."""
    g = torch.Generator().manual_seed(0)
    for split, count in (("train", 12), ("val", 3)):
        for c in range(3):
            (root / split / f"n0{c}").mkdir(parents=True)
            for i in range(count):
                pixels = torch.randint(0, 256, (8, 8, 3), generator=g, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / f"n0{c}" / f"{i}.png")
    return root


def test_two_processes_train_from_shards_and_resume_after_a_kill(tmp_path):
    shards = tmp_path / "shards"
    write_shards(_imagenet_like(tmp_path / "imagenet"), shards, shard_size=5, progress=False)
    torch.manual_seed(0)
    tokenizer = VQGAN(TOKENIZER_PRESETS["tiny-rgb"])
    tok_dir = save_tokenizer(tokenizer, tmp_path / "tok")
    config = json.loads(open(SMOKE).read())
    config.update(max_steps=STEPS, checkpoint_every=1, num_workers=1, batch_size=8,
                  transformer={**config["transformer"], "num_classes": 3})
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "launch.py").write_text(LAUNCH)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               "29531", str(tmp_path / "launch.py"), str(tmp_path / "config.json"), str(tok_dir), str(shards),
               str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    latest, deadline = out / "checkpoints" / "latest", time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if latest.is_file() and latest.read_text().strip() >= "step_00000003":
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both training processes
    proc.wait()
    killed_at = int(latest.read_text().strip().split("_")[1])
    assert 3 <= killed_at < STEPS, killed_at
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout and "resumed from" in result.stdout
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, STEPS + 1))
    assert (out / "final" / "transformer.safetensors").is_file()
    # the cache the two processes wrote is the one a single process writes
    cached_tokens(tokenizer, ShardDataset(shards, "train", 8), tmp_path / "single")
    (two,), (one,) = (list((d).glob("tokens-*.safetensors")) for d in (out / "token_cache", tmp_path / "single"))
    assert two.name == one.name and two.read_bytes() == one.read_bytes()
