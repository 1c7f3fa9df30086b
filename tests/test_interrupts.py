"""Ctrl-C (SIGINT) and kill -9 (SIGKILL) during every command that does long work.

SIGINT ends with exit status 130 and one line saying what was kept and that the same command goes on; no
traceback. After either signal the very same command finishes cleanly (resuming where the command keeps
partial work: training checkpoints, sample-dump chunks, sample PNGs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from maskgit.presets import TOKENIZER_PRESETS
from maskgit.vq import VQGAN, save_tokenizer

ROOT = Path(__file__).resolve().parents[1]
FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _command(name: str, tmp: Path) -> tuple[list[str], callable, callable]:
    """(argv, ready(): the command is doing its long work, finished(): its output is complete)."""
    out = tmp / "out"
    if name == "sample":
        argv = ["sample", "--labels", "0", "--num", "240", "--batch-size", "8", "--out", str(out)]
        return argv, lambda: len(list(out.glob("*.png"))) >= 8, lambda: len(list(out.glob("*.png"))) >= 240
    if name == "sample-dump":
        argv = ["sample-dump", "--num-per-class", "24", "--batch-size", "8", "--out", str(tmp / "dump.npz")]
        return argv, lambda: any((tmp / "dump.parts").glob("*.npz")), lambda: (tmp / "dump.npz").is_file()
    if name == "train-tokenizer":
        config = tmp / "tok.json"
        config.write_text(json.dumps({**json.loads((ROOT / "configs" / "tokenizer-digits-smoke.json").read_text()),
                                      "max_steps": 400, "checkpoint_every": 5, "log_every": 100,
                                      "sample_every": 0}))
        argv = ["train-tokenizer", "--config", str(config), "--data", "digits", "--out", str(out)]
        return argv, lambda: (out / "checkpoints" / "latest").exists(), lambda: (out / "final").is_dir()
    if name == "train":
        torch.manual_seed(0)
        tokenizer = save_tokenizer(VQGAN(TOKENIZER_PRESETS["tiny"]), tmp / "tokenizer")
        config = tmp / "tr.json"
        config.write_text(json.dumps({**json.loads((ROOT / "configs" / "transformer-digits-smoke.json").read_text()),
                                      "max_steps": 400, "checkpoint_every": 5}))
        argv = ["train", "--config", str(config), "--tokenizer", str(tokenizer), "--data", "digits", "--out", str(out)]
        return argv, lambda: (out / "checkpoints" / "latest").exists(), lambda: (out / "final").is_dir()
    if name == "train-classifier":
        argv = ["train-classifier", "--data", "digits", "--epochs", "60", "--out", str(out)]
        return argv, None, lambda: (out / "classifier.safetensors").is_file()
    if name == "bench":
        argv = ["bench", "--preset", "tiny", "--grids", "4", "--batches", "2", "--dtypes", "float32",
                "--samplers", "maskgit-4,ar-naive", "--repeats", "400", "--matmul-size", "64",
                "--out", str(tmp / "bench.json")]
        return argv, None, lambda: (tmp / "bench.json").is_file()
    if name == "eval-tokenizer":
        argv = ["eval-tokenizer", "--tokenizer", "fashion-mnist", "--batch-size", "100", "--out",
                str(tmp / "rec.json")]
        return argv, None, lambda: (tmp / "rec.json").is_file()
    if name == "evaluate":
        argv = ["evaluate", "--num-per-class", "60", "--out", str(tmp / "eval.json")]
        return argv, None, lambda: (tmp / "eval.json").is_file()
    raise ValueError(name)


SIGINT_COMMANDS = ["sample", "sample-dump", "train-tokenizer", "train", "train-classifier", "bench",
                   "eval-tokenizer", "evaluate"]
NEED_FASHION_MNIST = {"eval-tokenizer", "evaluate"}


def _start_and_signal(argv: list[str], ready, tmp: Path, sig: int) -> tuple[int, str]:
    """Run `maskgit argv`, wait until `ready()` (None: until it has printed progress), send `sig`; (rc, stderr)."""
    log = tmp / f"stderr-{sig}.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "maskgit.cli", *argv], env=_env(), stdout=subprocess.DEVNULL,
                                stderr=err, cwd=tmp)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if (ready() if ready is not None else "%|" in log.read_text(errors="replace")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"{argv[0]} ended before the signal: {log.read_text()[-2000:]}"
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
    return rc, log.read_text(errors="replace")


@pytest.mark.parametrize("name", SIGINT_COMMANDS)
def test_ctrl_c_gives_one_line_and_exit_130_then_the_same_command_finishes(name, tmp_path):
    if name in NEED_FASHION_MNIST and not FMNIST.is_file():
        pytest.skip("needs the Fashion-MNIST package (make test installs it)")
    argv, ready, finished = _command(name, tmp_path)
    rc, stderr = _start_and_signal(argv, ready, tmp_path, signal.SIGINT)
    assert rc == 130, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    last = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()][-1]
    assert last.startswith(f"maskgit {name}: interrupted; "), last
    assert "same command" in last
    result = subprocess.run([sys.executable, "-m", "maskgit.cli", *argv], env=_env(), capture_output=True,
                            text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert finished()


@pytest.mark.parametrize("name", ["sample", "sample-dump"])
def test_kill_9_then_the_same_command_finishes(name, tmp_path):
    argv, ready, finished = _command(name, tmp_path)
    rc, stderr = _start_and_signal(argv, ready, tmp_path, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    result = subprocess.run([sys.executable, "-m", "maskgit.cli", *argv], env=_env(), capture_output=True,
                            text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert finished()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["train-classifier", "bench", "eval-tokenizer", "evaluate"])
def test_kill_9_then_the_same_command_starts_again(name, tmp_path):
    """Commands that write their results only at the end: after kill -9 the same command simply runs again.
    (Training and sample-dump have their own kill -9 tests in test_*_training.py and test_sample_dump.py.)"""
    if name in NEED_FASHION_MNIST and not FMNIST.is_file():
        pytest.skip("needs the Fashion-MNIST package (make test installs it)")
    argv, ready, finished = _command(name, tmp_path)
    rc, _ = _start_and_signal(argv, ready, tmp_path, signal.SIGKILL)
    assert rc == -signal.SIGKILL and not finished()
    result = subprocess.run([sys.executable, "-m", "maskgit.cli", *argv], env=_env(), capture_output=True,
                            text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert finished()
