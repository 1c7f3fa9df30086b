"""MVTM training of the transformer on digits with a real (tiny) tokenizer: smoke run and exact resume."""
import dataclasses
import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from maskgit import MaskGIT
from maskgit.config import TransformerTrainingConfig, from_dict
from maskgit.data import build_dataset
from maskgit.presets import TOKENIZER_PRESETS
from maskgit.training.checkpoint import read_checkpoint_meta
from maskgit.training.token_cache import cached_tokens, module_fingerprint
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


@pytest.mark.parametrize("change, message", [
    ({"lr": 0.5}, "lr: 0.001 in the checkpoint, 0.5 now"),
    ({"max_steps": 4}, "max_steps cannot change on resume"),
    ({"transformer": {**json.loads(open(SMOKE).read())["transformer"], "dropout": 0.0}},
     "transformer.dropout: 0.1 in the checkpoint, 0.0 now"),
])
def test_resume_with_other_settings_is_refused_and_keeps_the_run(tokenizer_dir, tmp_path, change, message):
    train_transformer(smoke_config(max_steps=2), tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path,
                      progress=False)
    saved = {p: p.read_bytes() for p in [tmp_path / "train_config.json", *(tmp_path / "final").iterdir()]}
    with pytest.raises(ValueError, match="new --out") as err:
        train_transformer(smoke_config(**{"max_steps": 2, **change}), tokenizer_dir=tokenizer_dir, data="digits",
                          out=tmp_path, progress=False)
    assert message in str(err.value)
    assert all(p.read_bytes() == data for p, data in saved.items())
    # Logging and checkpoint cadence may differ: the same run resumes (here: it is already done).
    train_transformer(smoke_config(max_steps=2, log_every=3, checkpoint_every=5), tokenizer_dir=tokenizer_dir,
                      data="digits", out=tmp_path, progress=False)


def test_resume_with_another_tokenizer_is_refused(tokenizer_dir, tmp_path):
    train_transformer(smoke_config(max_steps=1), tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path,
                      progress=False)
    torch.manual_seed(1)
    other = save_tokenizer(VQGAN(TOKENIZER_PRESETS["tiny"]), tmp_path / "other-tokenizer")
    with pytest.raises(ValueError, match="tokenizer: '[0-9a-f]+' in the checkpoint"):
        train_transformer(smoke_config(max_steps=1), tokenizer_dir=other, data="digits", out=tmp_path,
                          progress=False)


@pytest.mark.parametrize("max_steps", [0, -1])
def test_max_steps_below_one_is_refused_before_anything_runs(tokenizer_dir, tmp_path, max_steps):
    with pytest.raises(ValueError, match=f"--max-steps must be >= 1, got {max_steps}"):
        train_transformer(smoke_config(), tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path / "run",
                          max_steps=max_steps, progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change, message", [
    ({"transformer": {**json.loads(open(SMOKE).read())["transformer"], "codebook_size": 32}},
     "the tokenizer does not fit the transformer config: tokenizer has 16 codes but the transformer expects 32"),
    ({"transformer": {**json.loads(open(SMOKE).read())["transformer"], "grid_size": 2}},
     "tokenizer makes a 4x4 grid but the transformer expects 2x2"),
    ({"sampling": {"schedule": "bogus"}}, "sampling.schedule: unknown mask schedule 'bogus'"),
    ({"sampling": {"guidance_schedule": "bogus"}}, "guidance_schedule must be one of"),
    ({"mask_schedule": "bogus"}, "mask_schedule: unknown mask schedule 'bogus'"),
    ({"transformer": {**json.loads(open(SMOKE).read())["transformer"], "null_class": False}, "label_dropout": 0.1},
     "needs a null class"),
])
def test_settings_that_do_not_fit_fail_before_any_step(tokenizer_dir, tmp_path, change, message):
    with pytest.raises(ValueError) as err:
        train_transformer(smoke_config(**change), tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path,
                          progress=False)
    assert message in str(err.value)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "token_cache").exists()


def test_grayscale_tokenizer_refuses_an_rgb_folder_and_trains_on_a_grey_one(tokenizer_dir, tmp_path):
    for mode, folder in (("RGB", "rgb"), ("L", "grey")):
        for c, cls in enumerate(("red", "blue")):
            (tmp_path / folder / cls).mkdir(parents=True)
            for i in range(10):
                colour = (200 * (1 - c), 10 * i, 200 * c) if mode == "RGB" else 20 * i + 10 * c
                Image.new(mode, (12, 12), colour).save(tmp_path / folder / cls / f"{i}.png")
    transformer = {**json.loads(open(SMOKE).read())["transformer"], "num_classes": 2}
    cfg = smoke_config(max_steps=1, transformer=transformer)
    with pytest.raises(ValueError, match="colour images"):  # never trained on silently greyed copies
        train_transformer(cfg, tokenizer_dir=tokenizer_dir, data=str(tmp_path / "rgb"), out=tmp_path / "run",
                          progress=False, resize=True)
    with pytest.raises(ValueError, match="--resize"):  # 12x12 images, an 8x8 tokenizer
        train_transformer(cfg, tokenizer_dir=tokenizer_dir, data=str(tmp_path / "grey"), out=tmp_path / "run",
                          progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
    final = train_transformer(cfg, tokenizer_dir=tokenizer_dir, data=str(tmp_path / "grey"), out=tmp_path / "run",
                              progress=False, resize=True)
    assert MaskGIT.from_pretrained(final).class_names == ("blue", "red")


def test_token_cache_re_encodes_for_other_data_or_tokenizer(tokenizer_dir, tmp_path):
    from maskgit.vq import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    val, test = build_dataset("digits", "val"), build_dataset("digits", "test")
    assert len(val) == len(test)
    tokens_val, _ = cached_tokens(tokenizer, val, tmp_path)
    tokens_test, _ = cached_tokens(tokenizer, test, tmp_path)  # same size, other images: encoded afresh
    assert not torch.equal(tokens_val, tokens_test)
    torch.manual_seed(5)
    cached_tokens(VQGAN(TOKENIZER_PRESETS["tiny"]), val, tmp_path)  # other weights
    unsigned = VQGAN(dataclasses.replace(TOKENIZER_PRESETS["tiny"], signed_pixels=False))
    unsigned.load_state_dict(tokenizer.state_dict())
    cached_tokens(unsigned, val, tmp_path)  # same weights, other config
    assert len(list(tmp_path.glob("tokens-*.safetensors"))) == 4
    again, _ = cached_tokens(tokenizer, val, tmp_path)
    assert torch.equal(again, tokens_val) and len(list(tmp_path.glob("tokens-*.safetensors"))) == 4


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

    The kill lands once a checkpoint of step 3 or later is on disk; the run is long enough (STEPS) that it cannot finish in a poll interval.
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
    latest = out / "checkpoints" / "latest"  # names the newest checkpoint; older step dirs are pruned as it moves

    def reached_step_3() -> bool:
        return latest.is_file() and latest.read_text().strip() >= "step_00000003"

    while not reached_step_3() and proc.poll() is None and time.time() < deadline:
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


def test_out_that_is_a_file_is_refused_before_any_work(tokenizer_dir, tmp_path):
    (tmp_path / "run").write_text("not a directory")
    with pytest.raises(NotADirectoryError, match="give a directory"):
        train_transformer(smoke_config(), tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path / "run",
                          progress=False)
    assert (tmp_path / "run").read_text() == "not a directory"


def test_resume_past_the_stop_step_says_nothing_is_trained(tokenizer_dir, tmp_path, capsys):
    cfg = smoke_config(max_steps=3, checkpoint_every=1)
    train_transformer(cfg, tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path, progress=False)
    capsys.readouterr()
    train_transformer(cfg, tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path, max_steps=2, progress=False)
    assert "nothing to train" in capsys.readouterr().out


def test_cli_split_train_keeps_the_validation_images_out(tokenizer_dir, tmp_path, capsys):
    from maskgit.cli import main

    sizes = {}
    for split in ("train", "trainval"):
        args = ["train", "--config", SMOKE, "--tokenizer", str(tokenizer_dir), "--data", "digits", "--max-steps", "1",
                "--out", str(tmp_path / split), "--no-progress"]
        assert main(args + (["--split", split] if split == "train" else [])) == 0
        plan = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("plan:"))
        sizes[split] = int(plan.split(" epochs of ")[1].split()[0].replace(",", ""))
    assert sizes["train"] == len(build_dataset("digits", split="train"))
    assert sizes["trainval"] == len(build_dataset("digits", split="trainval")) > sizes["train"]


def test_init_from_starts_both_weights_and_ema_at_the_models_and_is_part_of_the_runs_identity(tokenizer_dir,
                                                                                             tmp_path, capsys):
    from maskgit.cli import main

    first = train_transformer(smoke_config(max_steps=2), tokenizer_dir=tokenizer_dir, data="digits",
                              out=tmp_path / "first", progress=False)
    start = {k: v.clone() for k, v in MaskGIT.from_pretrained(first).transformer.state_dict().items()}
    # lr 0 and no weight decay: the weights cannot move, so the run's model and EMA must equal the starting model.
    frozen = smoke_config(max_steps=1, lr=1e-12, weight_decay=0.0, checkpoint_every=1)
    train_transformer(frozen, tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path / "warm", progress=False,
                      init_from=first)
    for name in ("model", "ema"):
        saved = load_file(str(tmp_path / "warm" / "checkpoints" / "step_00000001" / f"{name}.safetensors"))
        assert all(torch.allclose(saved[k], start[k], atol=1e-6) for k in start), name
    # From scratch, the same setting lands elsewhere.
    train_transformer(frozen, tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path / "cold", progress=False)
    cold = load_file(str(tmp_path / "cold" / "checkpoints" / "step_00000001" / "model.safetensors"))
    assert not all(torch.allclose(cold[k], start[k], atol=1e-6) for k in start)
    # The starting point belongs to the run: resuming it from scratch (or from another model) is refused.
    with pytest.raises(ValueError, match="init"):
        train_transformer(smoke_config(max_steps=2, lr=1e-12, weight_decay=0.0, checkpoint_every=1),
                          tokenizer_dir=tokenizer_dir, data="digits", out=tmp_path / "warm", progress=False)
    # The CLI flag reaches the loop.
    args = ["train", "--config", SMOKE, "--tokenizer", str(tokenizer_dir), "--data", "digits", "--max-steps", "1",
            "--out", str(tmp_path / "cli"), "--no-progress", "--init-from", str(first)]
    assert main(args) == 0
    meta = read_checkpoint_meta(tmp_path / "cli" / "checkpoints" / "step_00000001")
    assert meta["extra"]["init"] == module_fingerprint(MaskGIT.from_pretrained(first).transformer)


def test_init_from_a_model_of_another_tokenizer_or_network_is_refused_before_any_step(tokenizer_dir, tmp_path):
    first = train_transformer(smoke_config(max_steps=1), tokenizer_dir=tokenizer_dir, data="digits",
                              out=tmp_path / "first", progress=False)
    torch.manual_seed(1)
    other = save_tokenizer(VQGAN(TOKENIZER_PRESETS["tiny"]), tmp_path / "other-tokenizer")
    with pytest.raises(ValueError, match="its tokenizer is not the one this run trains on"):
        train_transformer(smoke_config(max_steps=1), tokenizer_dir=other, data="digits", out=tmp_path / "a",
                          progress=False, init_from=first)
    wider = {**json.loads(open(SMOKE).read())["transformer"]}
    wider["hidden_size"] *= 2
    with pytest.raises(ValueError, match="its transformer differs from the config's .*hidden_size"):
        train_transformer(smoke_config(max_steps=1, transformer=wider), tokenizer_dir=tokenizer_dir, data="digits",
                          out=tmp_path / "b", progress=False, init_from=first)
    assert not (tmp_path / "a" / "checkpoints").exists() and not (tmp_path / "b" / "checkpoints").exists()
