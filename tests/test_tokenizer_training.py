"""Tokenizer training on digits: smoke run, exact resume, GAN terms, SIGKILL safety, two processes via Accelerate."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from maskgit.config import TokenizerTrainingConfig, TransformerConfig, from_dict
from maskgit.training.checkpoint import latest_checkpoint, load_training_state
from maskgit.training.tokenizer import lr_factor, train_tokenizer
from maskgit.vq import VQGAN, CodeUsage, load_tokenizer

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "tokenizer-digits-smoke.json"


def smoke_config(**overrides) -> TokenizerTrainingConfig:
    data = json.loads(SMOKE.read_text())
    data.update(overrides)
    return from_dict(TokenizerTrainingConfig, data)


def read_metrics(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_two_step_smoke_run_and_resume_with_identical_optimizer_state(tmp_path):
    cfg = smoke_config(max_steps=3)
    final = train_tokenizer(cfg, data="digits", out=tmp_path, max_steps=2, progress=False)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2]
    for key in ("loss", "rec", "commit", "usage", "perplexity"):
        assert all(torch.isfinite(torch.tensor(float(r[key]))) for r in rows), key
    tokenizer = load_tokenizer(final)
    assert tokenizer.encode(torch.rand(1, 1, 8, 8)).shape == (1, 4, 4)
    assert (tmp_path / "samples" / "step_0000002.png").is_file()
    assert json.loads((tmp_path / "train_config.json").read_text())["max_steps"] == 3

    # The checkpoint restores the step, the weights and the optimizer state exactly.
    ckpt = latest_checkpoint(tmp_path / "checkpoints")
    assert ckpt.name == "step_00000002"
    model, usage = VQGAN(cfg.tokenizer), CodeUsage(cfg.tokenizer.codebook_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    state = load_training_state(ckpt, modules={"tokenizer": model, "usage": usage}, optimizers={"tokenizer": optimizer})
    assert state["step"] == 2 and state["config"]["max_steps"] == 3
    for p, q in zip(model.parameters(), tokenizer.parameters()):
        assert torch.equal(p, q)
    opt_state = optimizer.state_dict()
    assert len(opt_state["state"]) == len(list(model.parameters()))
    assert all(float(s["step"]) == 2 for s in opt_state["state"].values())
    assert opt_state["param_groups"][0]["betas"] == tuple(cfg.betas)

    # Re-running with the same config resumes at step 2 instead of starting over.
    train_tokenizer(cfg, data="digits", out=tmp_path, progress=False)
    assert [int(r["step"]) for r in read_metrics(tmp_path / "metrics.csv")] == [1, 2, 3]


def test_resume_reproduces_uninterrupted_run(tmp_path):
    cfg = smoke_config(max_steps=6, checkpoint_every=2, restart_every=2, hflip=True, crop_pad=1)
    train_tokenizer(cfg, data="digits", out=tmp_path / "a", progress=False)
    train_tokenizer(cfg, data="digits", out=tmp_path / "b", max_steps=4, progress=False)
    train_tokenizer(cfg, data="digits", out=tmp_path / "b", progress=False)
    for name in ("tokenizer", "usage"):
        assert_same_weights(tmp_path / "a" / "checkpoints" / "step_00000006" / f"{name}.safetensors",
                            tmp_path / "b" / "checkpoints" / "step_00000006" / f"{name}.safetensors")
    assert len(read_metrics(tmp_path / "b" / "metrics.csv")) == 6


@pytest.mark.parametrize("change, message", [
    ({"tokenizer": {**json.loads(SMOKE.read_text())["tokenizer"], "image_size": 10}},
     "tokenizer.image_size: 8 in the checkpoint, 10 now"),
    ({"lr": 0.5}, "lr: 0.001 in the checkpoint, 0.5 now"),
    ({"max_steps": 4}, "max_steps cannot change on resume"),
])
def test_resume_with_other_settings_is_refused_and_keeps_the_run(tmp_path, change, message):
    train_tokenizer(smoke_config(max_steps=2), data="digits", out=tmp_path, progress=False)
    saved = {p: p.read_bytes() for p in (tmp_path / "train_config.json", tmp_path / "final" / "tokenizer.json",
                                         tmp_path / "final" / "tokenizer.safetensors")}
    with pytest.raises(ValueError, match="new --out") as err:
        train_tokenizer(smoke_config(**{"max_steps": 2, **change}), data="digits", out=tmp_path, progress=False,
                        resize=True)  # digits are 8x8: a 10x10 tokenizer needs resize=True to reach the resume check
    assert message in str(err.value)
    assert all(p.read_bytes() == data for p, data in saved.items())
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_00000002"
    # Logging, sampling and checkpoint cadence may differ: the same run resumes (here: it is already done).
    train_tokenizer(smoke_config(max_steps=2, log_every=5, sample_every=0, checkpoint_every=7), data="digits",
                    out=tmp_path, progress=False)


@pytest.mark.parametrize("max_steps", [0, -1])
def test_max_steps_below_one_is_refused_before_anything_runs(tmp_path, max_steps):
    with pytest.raises(ValueError, match=f"--max-steps must be >= 1, got {max_steps}"):
        train_tokenizer(smoke_config(), data="digits", out=tmp_path / "run", max_steps=max_steps, progress=False)
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "run").write_text("not a directory")
    with pytest.raises(NotADirectoryError, match="give a directory"):
        train_tokenizer(smoke_config(), data="digits", out=tmp_path / "run", progress=False)
    assert (tmp_path / "run").read_text() == "not a directory"


@pytest.mark.parametrize("kind", ["stylegan", "patchgan"])
def test_adversarial_entropy_r1_lecam_terms_are_finite(tmp_path, kind):
    size = 8 if kind == "stylegan" else 16  # PatchGAN needs room for its 4x4 kernels
    cfg = smoke_config(max_steps=2, adversarial_weight=0.1, disc_start_step=1, r1_weight=10.0, lecam_weight=0.01,
                       entropy_weight=0.1, gen_loss="non-saturating", disc_loss="non-saturating",
                       tokenizer={**json.loads(SMOKE.read_text())["tokenizer"], "image_size": size},
                       discriminator={"kind": kind, "in_channels": 1, "base_channels": 8, "num_layers": 2,
                                      "image_size": size})
    train_tokenizer(cfg, data="digits", out=tmp_path, progress=False, resize=size != 8)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert rows[0]["d_loss"] == ""  # the discriminator starts at step 1 (0-based), logged from row 2
    for key in ("g_loss", "adaptive_weight", "d_loss", "r1", "entropy"):
        assert torch.isfinite(torch.tensor(float(rows[1][key]))), key
    assert (tmp_path / "checkpoints" / "step_00000002" / "discriminator.safetensors").is_file()
    assert (tmp_path / "checkpoints" / "step_00000002" / "lecam.safetensors").is_file()


def test_lr_schedule():
    cfg = smoke_config(warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(110, cfg) == pytest.approx(0.1)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "maskgit.cli", *args]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_sigkill_then_same_command_resumes(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**json.loads(SMOKE.read_text()), "max_steps": 150, "checkpoint_every": 1,
                                  "log_every": 50, "sample_every": 0}))
    out = tmp_path / "run"
    command = _cli("train-tokenizer", "--config", str(config), "--data", "digits", "--out", str(out), "--no-progress")
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "checkpoints" / "latest").exists():
        time.sleep(0.05)
    time.sleep(0.2)  # let it write a few more checkpoints, then kill it mid-stream
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    ckpt = latest_checkpoint(out / "checkpoints")
    assert ckpt is not None
    cfg = from_dict(TokenizerTrainingConfig, json.loads(config.read_text()))
    killed_at = load_training_state(ckpt, modules={"tokenizer": VQGAN(cfg.tokenizer)})["step"]
    assert 0 < killed_at < 150
    for step_dir in (out / "checkpoints").glob("step_*"):  # every checkpoint under a final name is whole
        load_training_state(step_dir, modules={"tokenizer": VQGAN(cfg.tokenizer)}, restore_rng=False)

    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed from" in result.stdout + result.stderr
    assert latest_checkpoint(out / "checkpoints").name == "step_00000150"
    assert (out / "final" / "tokenizer.safetensors").is_file()
    assert [int(r["step"]) for r in read_metrics(out / "metrics.csv")] == [50, 100, 150]  # no duplicates


def test_two_processes_with_accelerate_launch(tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` (torchrun); on a CPU-only machine the processes
    talk over gloo (the trainer asks Accelerate for CPU processes when there is no CUDA)."""
    pytest.importorskip("accelerate")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               "29517", "-m", "maskgit.cli", "train-tokenizer", "--config", str(SMOKE), "--data", "digits",
               "--out", str(out), "--max-steps", "2", "--no-progress"]
    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    rows = read_metrics(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(torch.isfinite(torch.tensor(float(r["loss"]))) for r in rows)
    assert latest_checkpoint(out / "checkpoints").name == "step_00000002"
    assert (out / "final" / "tokenizer.safetensors").is_file()


def test_decoder_fine_tuning_keeps_the_codes_and_fits_the_models_transformer(tmp_path):
    from maskgit import MaskGIT
    from maskgit.config import ModelConfig

    size = 16  # PatchGAN needs room for its 4x4 kernels
    tokenizer = {**json.loads(SMOKE.read_text())["tokenizer"], "image_size": size}
    base = load_tokenizer(train_tokenizer(smoke_config(max_steps=2, tokenizer=tokenizer), data="digits",
                                          out=tmp_path / "base", progress=False, resize=True))
    cfg = smoke_config(max_steps=3, trainable="decoder", restart_dead_codes=False, adversarial_weight=0.1,
                       disc_start_step=0, tokenizer=tokenizer,
                       discriminator={"kind": "patchgan", "in_channels": 1, "base_channels": 8, "num_layers": 2})
    tuned = load_tokenizer(train_tokenizer(cfg, data="digits", out=tmp_path / "ft", progress=False, resize=True,
                                           init_from=tmp_path / "base" / "final"))
    before, after = base.state_dict(), tuned.state_dict()
    for name in before:
        if name.startswith("decoder."):
            continue
        assert torch.equal(before[name], after[name]), f"{name} moved: the codes would change"
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("decoder.")), "nothing trained"
    images = torch.rand(4, 1, size, size)
    assert torch.equal(base.encode(images), tuned.encode(images))
    from maskgit.training.tokenizer import tokenizer_from_checkpoint

    last = tokenizer_from_checkpoint(latest_checkpoint(tmp_path / "ft" / "checkpoints"))
    assert all(torch.equal(v, after[k]) for k, v in last.state_dict().items())  # the last checkpoint = final/
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        tokenizer_from_checkpoint(tmp_path / "ft")
    rows = read_metrics(tmp_path / "ft" / "metrics.csv")
    assert all(torch.isfinite(torch.tensor(float(r["g_loss"]))) for r in rows)

    # A model trained on the base codes takes the tuned tokenizer; a retrained one is refused.
    model = MaskGIT.from_config(ModelConfig(tokenizer=base.config, transformer=TransformerConfig(
        codebook_size=base.config.codebook_size, grid_size=base.config.grid_size, hidden_size=16, num_layers=1,
        num_heads=2, intermediate_size=32, num_classes=2)))
    model.tokenizer.load_state_dict(before)
    swapped = model.with_tokenizer(tuned)
    assert swapped.transformer is model.transformer
    assert torch.equal(swapped.tokenizer.decoder.conv_out.weight, tuned.decoder.conv_out.weight)
    full = train_tokenizer(smoke_config(max_steps=2, tokenizer=tokenizer, codebook_init="none"), data="digits",
                           out=tmp_path / "full", progress=False, resize=True, init_from=tmp_path / "base" / "final")
    with pytest.raises(ValueError, match="encoder.*would mean other things"):
        model.with_tokenizer(load_tokenizer(full))


def test_decoder_fine_tuning_needs_a_fixed_codebook_and_a_starting_tokenizer(tmp_path):
    with pytest.raises(ValueError, match="set restart_dead_codes to false"):
        smoke_config(trainable="decoder")
    with pytest.raises(ValueError, match="pass --init-from"):
        train_tokenizer(smoke_config(trainable="decoder", restart_dead_codes=False), data="digits",
                        out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    train_tokenizer(smoke_config(max_steps=1), data="digits", out=tmp_path / "base", progress=False)
    other = {**json.loads(SMOKE.read_text())["tokenizer"], "embed_dim": 4}
    with pytest.raises(ValueError, match="embed_dim: 8 there, 4 here"):
        train_tokenizer(smoke_config(tokenizer=other), data="digits", out=tmp_path / "run", progress=False,
                        init_from=tmp_path / "base" / "final")
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        train_tokenizer(smoke_config(), data="digits", out=tmp_path / "run", progress=False,
                        init_from=tmp_path / "nowhere")
    # A resumed run must start from the same weights.
    train_tokenizer(smoke_config(max_steps=2), data="digits", out=tmp_path / "run", progress=False,
                    max_steps=1, init_from=tmp_path / "base" / "final")
    train_tokenizer(smoke_config(max_steps=1, seed=1), data="digits", out=tmp_path / "base2", progress=False)
    with pytest.raises(ValueError, match="new --out"):
        train_tokenizer(smoke_config(max_steps=2), data="digits", out=tmp_path / "run", progress=False,
                        init_from=tmp_path / "base2" / "final")


def test_init_from_takes_a_bundled_model_name():
    from maskgit import MaskGIT
    from maskgit.training.tokenizer import initial_tokenizer

    bundled = MaskGIT.from_pretrained("fashion-mnist").tokenizer
    state, fingerprint = initial_tokenizer("fashion-mnist", bundled.config)
    assert all(torch.equal(state[k], v) for k, v in bundled.state_dict().items())
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        initial_tokenizer("no-such-model", bundled.config)
