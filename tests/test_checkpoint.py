"""Checkpoints: safetensors weights with strict, explicit errors; pickle-free optimizer states; atomic writes."""

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from maskgit.config import TransformerTrainingConfig, from_dict, to_dict
from maskgit.training.checkpoint import (
    check_resume,
    flatten_state,
    latest_checkpoint,
    load_training_state,
    save_training_state,
    unflatten_state,
)
from maskgit.weights import empty_module, load_weights, save_weights


class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(5, 3)
        self.head = torch.nn.Linear(3, 5, bias=False)
        self.head.weight = self.embed.weight  # tied: stored once


def trained(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return model, opt, sched


def test_weights_round_trip_with_tied_parameters(tmp_path):
    model = Tied()
    save_weights(model, tmp_path / "w.safetensors")
    other = Tied()
    load_weights(other, tmp_path / "w.safetensors")
    assert torch.equal(other.embed.weight, model.embed.weight) and other.head.weight is other.embed.weight


def test_load_weights_names_missing_unexpected_and_mismatched_keys(tmp_path):
    save_weights(torch.nn.Linear(3, 2), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"shape mismatches.*weight: file \(2, 3\) vs model \(4, 3\)"):
        load_weights(torch.nn.Linear(3, 4), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): \['bias'\]"):
        load_weights(torch.nn.Linear(3, 2, bias=False), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"missing keys.*0.weight"):
        load_weights(torch.nn.Sequential(torch.nn.Linear(3, 2)), tmp_path / "w.safetensors")


def test_truncated_or_foreign_files_give_clear_errors(tmp_path):
    save_weights(torch.nn.Linear(30, 20), tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or foreign"):
        load_weights(torch.nn.Linear(30, 20), tmp_path / "cut.safetensors")
    (tmp_path / "foreign.safetensors").write_bytes(b"PK\x03\x04 this is a zip file")
    with pytest.raises(ValueError, match="truncated or foreign"):
        load_weights(torch.nn.Linear(30, 20), tmp_path / "foreign.safetensors")
    with pytest.raises(FileNotFoundError):
        load_weights(torch.nn.Linear(30, 20), tmp_path / "missing.safetensors")


def test_optimizer_state_flattens_to_json_and_back_exactly():
    _, opt, sched = trained()
    for state in (opt.state_dict(), sched.state_dict()):
        tensors = {}
        meta = flatten_state(state, tensors, "x")
        restored = unflatten_state(json.loads(json.dumps(meta)), tensors)
        assert restored.keys() == state.keys()
        assert repr(restored) == repr(state)  # same structure, key types (int ids), tuples and values


def test_training_state_round_trip_restores_everything(tmp_path):
    model, opt, sched = trained()
    torch.manual_seed(123), np.random.seed(5), random.seed(7)
    expected_rng = (torch.rand(3), np.random.rand(2), random.random())
    torch.manual_seed(123), np.random.seed(5), random.seed(7)
    path = save_training_state(tmp_path, 3, modules={"model": model}, optimizers={"opt": opt},
                               schedulers={"sched": sched}, config={"lr": 0.01}, epoch=1, data_position=42,
                               extra={"note": "x"})
    model2, opt2, sched2 = trained(seed=1)
    torch.manual_seed(0)
    state = load_training_state(path, modules={"model": model2}, optimizers={"opt": opt2}, schedulers={"sched": sched2})
    assert (state["step"], state["epoch"], state["data_position"]) == (3, 1, 42)
    assert state["config"] == {"lr": 0.01} and state["extra"] == {"note": "x"}
    after = (torch.rand(3), np.random.rand(2), random.random())
    assert torch.equal(after[0], expected_rng[0]) and np.array_equal(after[1], expected_rng[1])
    assert after[2] == expected_rng[2]
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert repr(opt2.state_dict()) == repr(opt.state_dict())
    assert sched2.state_dict() == sched.state_dict()


def test_latest_pointer_pruning_and_fallback(tmp_path):
    model, opt, _ = trained()
    for step in (1, 2, 3):
        save_training_state(tmp_path, step, modules={"model": model}, optimizers={"opt": opt}, keep=2)
    assert latest_checkpoint(tmp_path).name == "step_00000003"
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000002", "step_00000003"]
    # A kill between the directory rename and the pointer update leaves an older pointer: still loadable.
    (tmp_path / "latest").write_text("step_00000002")
    assert latest_checkpoint(tmp_path).name == "step_00000002"
    # A dangling pointer or a half-written directory (no state.json) falls back to the newest complete one.
    (tmp_path / "latest").write_text("step_00000009")
    (tmp_path / "step_00000010").mkdir()
    assert latest_checkpoint(tmp_path).name == "step_00000003"
    assert latest_checkpoint(tmp_path / "nothing-here") is None


@pytest.mark.parametrize("resave", [False, True])
def test_kill_while_deleting_a_checkpoint_leaves_no_partial_one_under_a_final_name(tmp_path, monkeypatch, resave):
    """Pruning (and re-saving a step) deletes a directory; a kill half-way must not leave `step_*` without state."""
    model, opt, _ = trained()
    for step in (1, 2):
        save_training_state(tmp_path, step, modules={"model": model}, optimizers={"opt": opt}, keep=2)
    real_rmtree = shutil.rmtree

    def killed_half_way(path, *args, **kwargs):  # delete one file, then die as a SIGKILL would
        files = sorted(p for p in Path(path).rglob("*") if p.is_file())
        if files:
            files[-1].unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(tmp_path, 2 if resave else 3, modules={"model": model}, optimizers={"opt": opt}, keep=2)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    for step_dir in tmp_path.glob("step_*"):
        load_training_state(step_dir, modules={"model": trained()[0]}, restore_rng=False)
    assert latest_checkpoint(tmp_path) is not None
    # The next save sweeps the leftovers of the killed delete.
    save_training_state(tmp_path, 4, modules={"model": model}, optimizers={"opt": opt}, keep=2)
    assert not list(tmp_path.glob(".step_*"))


def test_check_resume_refuses_other_settings_and_names_them(tmp_path):
    cfg = from_dict(TransformerTrainingConfig, {"max_steps": 10, "transformer": {"hidden_size": 64}})
    ckpt = save_training_state(tmp_path / "run" / "checkpoints", 2, modules={"model": trained()[0]},
                               config=to_dict(cfg), extra={"data": "abc"})
    check_resume(ckpt, cfg, identity={"data": "abc"})
    # Logging and checkpointing cadence may change; identities the checkpoint lacks are not compared.
    check_resume(ckpt, from_dict(TransformerTrainingConfig, {**to_dict(cfg), "log_every": 1, "sample_every": 0,
                                                             "checkpoint_every": 1}), identity={"other": 1})
    changed = from_dict(TransformerTrainingConfig, {**to_dict(cfg), "lr": 0.5,
                                                    "transformer": {**to_dict(cfg.transformer), "hidden_size": 32}})
    with pytest.raises(ValueError) as err:
        check_resume(ckpt, changed)
    message = str(err.value)
    assert "lr: 0.0001 in the checkpoint, 0.5 now" in message and "transformer.hidden_size: 64" in message
    assert "new --out" in message and str(tmp_path / "run") in message and "max_steps cannot" not in message
    with pytest.raises(ValueError, match="max_steps cannot change on resume.*learning-rate schedule"):
        check_resume(ckpt, from_dict(TransformerTrainingConfig, {**to_dict(cfg), "max_steps": 20}))
    with pytest.raises(ValueError, match="data: 'abc' in the checkpoint, 'xyz' now"):
        check_resume(ckpt, cfg, identity={"data": "xyz"})


def test_check_resume_fills_fields_missing_from_older_checkpoints(tmp_path):
    cfg = TransformerTrainingConfig()
    old = to_dict(cfg)
    del old["num_workers"], old["hflip"]  # written before these fields existed; defaults apply
    ckpt = save_training_state(tmp_path, 1, modules={"model": trained()[0]}, config=old)
    check_resume(ckpt, cfg)
    with pytest.raises(ValueError, match="hflip: False in the checkpoint, True now"):
        check_resume(ckpt, from_dict(TransformerTrainingConfig, {"hflip": True}))


def test_empty_module_skips_initialisation_and_restores_torch_init_even_after_an_error():
    inits = {name: getattr(torch.nn.init, name) for name in ("normal_", "trunc_normal_", "kaiming_uniform_")}
    with pytest.raises(RuntimeError, match="boom"):
        empty_module(lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    model = empty_module(lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Embedding(3, 8)))
    assert all(getattr(torch.nn.init, name) is fn for name, fn in inits.items())
    assert all(p.device.type == "cpu" for p in model.parameters())
    torch.manual_seed(0)  # initialisation works again afterwards
    assert torch.nn.Linear(4, 8).weight.abs().sum() > 0


def test_loading_the_bundled_model_imports_neither_dynamo_nor_sympy():
    """Meta-device construction pulled in torch._dynamo and sympy (~4 s of `maskgit serve`'s start-up)."""
    code = ("import sys, maskgit; maskgit.MaskGIT.from_pretrained('fashion-mnist'); "
            "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
