"""MVTM training of the transformer on digits with a real (tiny) tokenizer: smoke run and exact resume."""
import json

import pytest
import torch
from safetensors.torch import load_file

from maskgit import MaskGIT
from maskgit.config import TOKENIZER_PRESETS, TransformerTrainingConfig, from_dict
from maskgit.training.transformer import lr_at, train_transformer
from maskgit.vq import VQGAN, save_tokenizer

SMOKE = "configs/transformer-digits-smoke.json"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    torch.manual_seed(0)
    return save_tokenizer(VQGAN(TOKENIZER_PRESETS["tiny"]), tmp_path_factory.mktemp("tok"))


def smoke_config(**overrides) -> TransformerTrainingConfig:
    data = json.loads(open(SMOKE).read())
    data.update(overrides)
    return from_dict(TransformerTrainingConfig, data)


def test_two_step_smoke_run(tokenizer_dir, tmp_path):
    cfg = smoke_config(max_steps=2, checkpoint_every=1)
    final = train_transformer(cfg, tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path, progress=False)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) == 3
    losses = [float(r.split(",")[1]) for r in rows[1:]]
    assert all(torch.isfinite(torch.tensor(losses)))
    pipe = MaskGIT.from_pretrained(final)
    assert pipe.class_names == tuple(str(d) for d in range(10))
    images = pipe.generate([0, 1], steps=3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 1, 8, 8)
    assert (tmp_path / "train_config.json").is_file()


def test_resume_reproduces_uninterrupted_run(tokenizer_dir, tmp_path):
    cfg = smoke_config(max_steps=4, checkpoint_every=2)
    train_transformer(cfg, tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path / "a", progress=False)
    # Interrupted run: stop after step 2 (as a kill right after the checkpoint would), then rerun.
    train_transformer(cfg, tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path / "b", max_steps=2,
                      progress=False)
    train_transformer(cfg, tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path / "b", progress=False)
    for name in ["model", "ema"]:
        a = load_file(str(tmp_path / "a" / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "b" / "checkpoints" / "step_00000004" / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)


def test_lr_schedule():
    cfg = smoke_config(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)
    assert lr_at(110, cfg) == pytest.approx(0.1)


def test_two_processes_with_accelerate_launch(tokenizer_dir, tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               "29527", "-m", "maskgit.cli", "train", "--config", SMOKE, "--tokenizer", str(tokenizer_dir),
               "--data", "digits", "--out", str(out), "--max-steps", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2]
    assert (out / "final" / "transformer.safetensors").is_file()


STEPS = 40


def test_sigkill_then_same_command_reproduces_uninterrupted_run(tokenizer_dir, tmp_path):
    """Kill a real training process mid-run; the same command resumes and ends with the same weights.

    The kill lands once step 3 is on disk; the run is long enough (STEPS) that it cannot finish in a poll interval.
    """
    import os
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "config.json"
    config.write_text(json.dumps({**json.loads(open(SMOKE).read()), "max_steps": STEPS, "checkpoint_every": 1}))

    def command(out):
        return [sys.executable, "-m", "maskgit.cli", "train", "--config", str(config), "--tokenizer",
                str(tokenizer_dir), "--data", "digits", "--out", str(out)]

    # The reference runs in a process like the killed one: the same thread count gives the same float reductions.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference, out = tmp_path / "reference", tmp_path / "killed"
    assert subprocess.run(command(reference), env=env, capture_output=True).returncode == 0
    proc = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "step_00000003").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "final").exists(), "the run finished before it could be killed"
    assert subprocess.run(command(out), env=env, capture_output=True).returncode == 0
    for name in ["model", "ema"]:
        a = load_file(str(reference / "checkpoints" / f"step_{STEPS:08d}" / f"{name}.safetensors"))
        b = load_file(str(out / "checkpoints" / f"step_{STEPS:08d}" / f"{name}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    steps = [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, STEPS + 1))  # rows past the resumed checkpoint were dropped, then logged again
