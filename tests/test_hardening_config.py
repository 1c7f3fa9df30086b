"""Configs that omit what they need, and checkpoints that cannot be read (issue 23).

A config without "preset" starts from the preset the data choose (as with no config) and the notes say which
fields came from the file; a checkpoint file that cannot be read is named in one line, and training resumes
from the newest one that can, keeping the broken one.
"""
import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from maskgit.cli import main
from maskgit.config import TokenizerTrainingConfig, TransformerTrainingConfig, from_dict, to_dict
from maskgit.data_fit import describe_data
from maskgit.presets import TOKENIZER_PRESETS
from maskgit.training import checkpoint
from maskgit.training.checkpoint import latest_checkpoint, load_training_state, save_training_state
from maskgit.training.metrics_log import append_csv, truncate_csv
from maskgit.training.run_config import tokenizer_config, transformer_config
from maskgit.vq import VQGAN, save_tokenizer
from maskgit.weights import save_weights


# ---------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("config", [{}, {"max_steps": 5000}, {"preset": None, "lr": 0.002}])
def test_config_without_preset_starts_from_the_preset_the_data_choose(tmp_path, rgb_folder, config):
    info = describe_data(str(rgb_folder(tmp_path, sizes=((32, 32),))))
    derived, _ = tokenizer_config(info)  # no config: rgb-32 at 32x32
    cfg, notes = tokenizer_config(info, config=config)
    assert (cfg.tokenizer.in_channels, cfg.tokenizer.image_size) == (3, 32)  # not the 28x28 greyscale defaults
    fields = {k: v for k, v in config.items() if k != "preset"}
    assert cfg == from_dict(TokenizerTrainingConfig, {**to_dict(derived), **fields})
    text = " ".join(notes)
    assert "rgb-32" in text and f"from the file: {', '.join(fields) or 'none'}" in text


def test_config_without_preset_keeps_nested_file_fields_and_names_them(tmp_path, rgb_folder):
    info = describe_data(str(rgb_folder(tmp_path, sizes=((32, 32),))))
    cfg, notes = tokenizer_config(info, config={"tokenizer": {"codebook_size": 256}, "max_steps": 9})
    assert (cfg.tokenizer.codebook_size, cfg.tokenizer.image_size, cfg.max_steps) == (256, 32, 9)
    assert "from the file: max_steps, tokenizer.codebook_size" in " ".join(notes)
    _, named = tokenizer_config(info, config={"preset": "rgb-64", "max_steps": 9})
    assert "preset rgb-64 (named in the config)" in " ".join(named) and "from the file: max_steps" in " ".join(named)


def test_transformer_config_without_preset_fits_the_tokenizer_and_the_classes(tmp_path, rgb_folder):
    info = describe_data(str(rgb_folder(tmp_path, classes=("red", "blue", "green"))))
    tok = TOKENIZER_PRESETS["tiny-rgb"]
    for config in ({}, {"max_steps": 3}):
        cfg, notes = transformer_config(info, tok, config=config)
        t = cfg.transformer
        assert (t.codebook_size, t.grid_size, t.num_classes) == (16, 4, 3), config
        assert "tiny-rgb" in " ".join(notes)
    assert transformer_config(info, tok, config={})[0] == transformer_config(info, tok)[0]


@pytest.fixture()
def tiny_tokenizer(tmp_path):
    torch.manual_seed(0)
    return save_tokenizer(VQGAN(TOKENIZER_PRESETS["tiny-rgb"]), tmp_path / "tok")


def test_train_with_a_config_without_preset_fits_a_three_class_folder(tmp_path, rgb_folder, tiny_tokenizer, capsys):
    folder = rgb_folder(tmp_path / "data", sizes=((8, 8),), per_class=4, classes=("red", "blue", "green"))
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"max_steps": 2, "sample_every": 0}))
    argv = ["train", "--config", str(config), "--tokenizer", str(tiny_tokenizer), "--data", str(folder),
            "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "preset tiny-rgb" in out and "from the file: max_steps, sample_every" in out
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["transformer"]["num_classes"] == 3 and saved["max_steps"] == 2


def test_train_tokenizer_with_a_config_without_preset_keeps_the_datas_size_and_colour(tmp_path, rgb_folder, capsys):
    folder = rgb_folder(tmp_path / "data", sizes=((8, 8),), per_class=4)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"max_steps": 1}))
    argv = ["train-tokenizer", "--config", str(config), "--data", str(folder), "--out", str(tmp_path / "run"),
            "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "preset tiny-rgb" in out and "from the file: max_steps" in out and "resizing" not in out
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert (saved["tokenizer"]["in_channels"], saved["tokenizer"]["image_size"]) == (3, 8)


def test_a_config_for_the_other_stage_is_refused_naming_the_command(tmp_path, rgb_folder):
    info = describe_data(str(rgb_folder(tmp_path)))
    with pytest.raises(ValueError, match="train-tokenizer config.*`maskgit train-tokenizer`"):
        transformer_config(info, TOKENIZER_PRESETS["tiny-rgb"], config={"tokenizer": {"codebook_size": 16}})
    with pytest.raises(ValueError, match="`maskgit train` config.*`maskgit train`"):
        tokenizer_config(info, config={"transformer": {"num_layers": 2}, "max_steps": 3})


def test_init_from_without_a_network_section_takes_the_init_network(tmp_path, rgb_folder, tiny_tokenizer):
    """--init-from fixes the network: a config that names none starts from it (not from the data's preset)."""
    info = describe_data(str(rgb_folder(tmp_path / "data", sizes=((8, 8),))))
    other = TOKENIZER_PRESETS["tiny-rgb"].__class__(**{**to_dict(TOKENIZER_PRESETS["tiny-rgb"]), "codebook_size": 32,
                                                       "channel_mult": (1, 2)})
    save_tokenizer(VQGAN(other), tmp_path / "tok32")
    cfg, notes = tokenizer_config(info, config={"trainable": "decoder", "restart_dead_codes": False},
                                  init_from=str(tmp_path / "tok32"))
    assert cfg.tokenizer == other and cfg.trainable == "decoder"
    assert "--init-from" in " ".join(notes)
    cfg, _ = tokenizer_config(info, init_from=str(tmp_path / "tok32"))  # no config at all: the same rule
    assert cfg.tokenizer == other
    cfg, _ = tokenizer_config(info, config={"tokenizer": {"codebook_size": 64}}, init_from=str(tmp_path / "tok32"))
    assert cfg.tokenizer == replace(other, codebook_size=64)  # the file's fields go on top (--init-from refuses later)


def test_init_from_model_without_a_transformer_section_takes_its_network(tmp_path, rgb_folder):
    from maskgit.config import TransformerConfig
    from maskgit.pipeline import MaskGIT

    info = describe_data(str(rgb_folder(tmp_path / "data", sizes=((8, 8),))))
    tok = VQGAN(TOKENIZER_PRESETS["tiny-rgb"])
    net = TransformerConfig(codebook_size=16, num_classes=2, grid_size=4, hidden_size=48, num_layers=1, num_heads=2,
                            intermediate_size=32)
    from maskgit.transformer import MaskGITTransformer
    MaskGIT(tok, MaskGITTransformer(net), class_names=("blue", "red")).save_pretrained(tmp_path / "model")
    cfg, notes = transformer_config(info, tok.config, config={"max_steps": 3}, init_from=str(tmp_path / "model"))
    assert cfg.transformer == net and cfg.max_steps == 3 and "--init-from" in " ".join(notes)


def test_resume_refusal_points_at_the_runs_saved_config(tmp_path):
    run = tmp_path / "run"
    cfg = from_dict(TransformerTrainingConfig, {"max_steps": 10})
    ckpt = save_training_state(run / "checkpoints", 2, modules={"m": torch.nn.Linear(2, 2)}, config=to_dict(cfg))
    (run / "train_config.json").write_text(json.dumps(to_dict(cfg)))
    with pytest.raises(ValueError, match=r"train_config.json: pass that file as --config"):
        checkpoint.check_resume(ckpt, from_dict(TransformerTrainingConfig, {"max_steps": 10, "lr": 0.5}))


# ---------------------------------------------------------------------------------------------- checkpoints
def _model(seed=0, width=8):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.LayerNorm(width), torch.nn.Linear(width, 2))


def _trained(seed=0):
    model = _model(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(2):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def _run(directory, steps=(1, 2), keep=3):
    """Checkpoints at `steps` of a tiny run (weights differ per step); returns {step: model}."""
    models = {}
    for step in steps:
        model, opt = _trained(seed=step)
        save_training_state(directory, step, modules={"model": model, "ema": model}, optimizers={"opt": opt},
                            config={"lr": 0.01}, keep=keep)
        models[step] = model
    return models


def _fresh():
    model = _model(seed=99)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def _edit_states(path, change):
    tensors = load_bytes((path / "states.safetensors").read_bytes())
    change(tensors)
    (path / "states.safetensors").write_bytes(save_bytes(tensors))


def _edit_state_json(path, change):
    meta = json.loads((path / "state.json").read_text())
    change(meta)
    (path / "state.json").write_text(json.dumps(meta))


def _cut(name, keep=0.5):
    def corrupt(path):
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[: int(len(data) * keep)])
    return corrupt


def _write(name, data):
    return lambda path: (path / name).write_bytes(data)


CORRUPTIONS = {
    "state.json empty": ("state.json", _write("state.json", b"")),
    "state.json garbage": ("state.json", _write("state.json", b"\x00\xffnot json")),
    "state.json truncated": ("state.json", _cut("state.json")),
    "state.json a list": ("state.json", _write("state.json", b"[1, 2]")),
    "state.json missing keys": ("state.json", _write("state.json", b'{"step": 2}')),
    "state.json step a string": ("state.json", lambda p: _edit_state_json(p, lambda m: m.update(step="2"))),
    "state.json modules not a list": ("state.json", lambda p: _edit_state_json(p, lambda m: m.update(modules=3))),
    "state.json config a list": ("state.json", lambda p: _edit_state_json(p, lambda m: m.update(config=[1]))),
    "state.json optimizer state a list": ("state.json",
                                          lambda p: _edit_state_json(p, lambda m: m["states"].update({"optimizer:opt": [1]}))),
    "state.json rng numpy short": ("state.json", lambda p: _edit_state_json(p, lambda m: m["rng"].update(numpy=[1]))),
    "weights empty": ("model.safetensors", _write("model.safetensors", b"")),
    "weights truncated": ("model.safetensors", _cut("model.safetensors")),
    "weights garbage": ("model.safetensors", _write("model.safetensors", b"\x07" * 64)),
    "weights missing": ("model.safetensors", lambda p: (p / "model.safetensors").unlink()),
    "weights of another shape": ("model.safetensors", lambda p: save_weights(_model(width=9), p / "model.safetensors")),
    "ema truncated": ("ema.safetensors", _cut("ema.safetensors", 0.9)),
    "optimizer state empty": ("states.safetensors", _write("states.safetensors", b"")),
    "optimizer state truncated": ("states.safetensors", _cut("states.safetensors", 0.95)),
    "optimizer state garbage": ("states.safetensors", _write("states.safetensors", b"{}" * 20)),
    "optimizer tensor missing": ("states.safetensors",
                                 lambda p: _edit_states(p, lambda t: t.pop("optimizer:opt.state.0.exp_avg"))),
    "optimizer tensor of another shape": ("states.safetensors", lambda p: _edit_states(
        p, lambda t: t.update({"optimizer:opt.state.0.exp_avg": torch.zeros(3)}))),
    "rng state of another shape": ("states.safetensors",
                                   lambda p: _edit_states(p, lambda t: t.update({"rng.torch": t["rng.torch"][:10]}))),
    "numpy rng of another dtype": ("states.safetensors", lambda p: _edit_states(
        p, lambda t: t.update({"rng.numpy": torch.zeros(3, dtype=torch.float32)}))),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_an_unreadable_checkpoint_file_is_named_in_one_line(tmp_path, case):
    name, corrupt = CORRUPTIONS[case]
    _run(tmp_path, steps=(2,))
    corrupt(tmp_path / "step_00000002")
    model, opt = _fresh()
    with pytest.raises(checkpoint.CheckpointError) as err:
        load_training_state(tmp_path / "step_00000002", modules={"model": model, "ema": model},
                            optimizers={"opt": opt})
    message = str(err.value)
    assert str(tmp_path / "step_00000002" / name) in message and "\n" not in message


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_resume_falls_back_to_the_newest_readable_checkpoint_and_keeps_the_broken_one(tmp_path, case):
    name, corrupt = CORRUPTIONS[case]
    models = _run(tmp_path, steps=(1, 2))
    corrupt(tmp_path / "step_00000002")
    notes = []
    ckpt = checkpoint.resume_checkpoint(tmp_path, log=notes.append)
    model, opt = _fresh()
    state = checkpoint.load_resumable_state(ckpt, modules={"model": model, "ema": model}, optimizers={"opt": opt},
                                 log=notes.append)
    assert state["step"] == 1 and state["path"].name == "step_00000001"
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), models[1].parameters()))
    assert len(notes) == 1 and "step_00000002" in notes[0] and name in notes[0] and "step_00000001" in notes[0]
    assert (tmp_path / "unreadable_step_00000002" / "state.json").exists()  # kept, out of the rotation
    assert latest_checkpoint(tmp_path).name == "step_00000001"


def test_no_readable_checkpoint_is_refused_in_one_line_and_nothing_is_moved(tmp_path):
    _run(tmp_path, steps=(1, 2))
    for step in (1, 2):
        (tmp_path / f"step_{step:08d}" / "state.json").write_text("garbage")
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.resume_checkpoint(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "step_00000002" / "state.json") in message and "\n" not in message
    assert "1 earlier" in message and sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000001",
                                                                                          "step_00000002"]


def test_a_garbage_latest_pointer_is_ignored(tmp_path):
    _run(tmp_path, steps=(1, 2))
    for pointer in (b"\xff\xfe\x00", b"../../etc", b"step_00000001\n"):
        (tmp_path / "latest").write_bytes(pointer)
        expected = "step_00000001" if pointer.startswith(b"step") else "step_00000002"
        assert latest_checkpoint(tmp_path).name == expected
        assert checkpoint.resume_checkpoint(tmp_path).name == expected


@pytest.mark.parametrize("keep", [1, 2])
def test_rotation_never_deletes_a_newer_checkpoint_or_the_one_just_written(tmp_path, keep):
    """A newer checkpoint left in place (e.g. by a run that fell back past it) is not counted or pruned."""
    _run(tmp_path, steps=(1, 2, 4), keep=0)
    model, opt = _trained()
    save_training_state(tmp_path, 3, modules={"model": model}, optimizers={"opt": opt}, keep=keep)
    kept = sorted(p.name for p in tmp_path.glob("step_*"))
    assert kept == (["step_00000003", "step_00000004"] if keep == 1 else ["step_00000002", "step_00000003",
                                                                           "step_00000004"])


def test_train_tokenizer_resumes_past_a_garbage_state_json_and_matches_an_uninterrupted_run(tmp_path, rgb_folder,
                                                                                              capsys):
    folder = rgb_folder(tmp_path / "data", sizes=((8, 8),), per_class=4)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"max_steps": 4, "checkpoint_every": 2, "sample_every": 0}))

    def run(out):
        return main(["train-tokenizer", "--config", str(config), "--data", str(folder), "--out", str(out),
                     "--no-progress"])

    assert run(tmp_path / "a") == 0 and run(tmp_path / "b") == 0
    broken = tmp_path / "b" / "checkpoints" / "step_00000004" / "state.json"
    broken.write_bytes(b"garbage")
    (tmp_path / "b" / "final").rename(tmp_path / "b" / "final-before")
    capsys.readouterr()
    assert run(tmp_path / "b") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"{broken}" in out and "resumed from" in out and "step_00000002 at step 2" in out
    assert (tmp_path / "b" / "checkpoints" / "unreadable_step_00000004" / "state.json").read_bytes() == b"garbage"
    a = load_bytes((tmp_path / "a" / "final" / "tokenizer.safetensors").read_bytes())
    b = load_bytes((tmp_path / "b" / "final" / "tokenizer.safetensors").read_bytes())
    assert all(torch.equal(a[k], b[k]) for k in a)  # the retrained steps reproduce the lost ones exactly
    assert [r.split(",")[0] for r in (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1:]] == \
        ["1", "2", "3", "4"]


def test_cli_names_the_unreadable_checkpoint_when_none_can_be_read(tmp_path, rgb_folder, capsys):
    folder = rgb_folder(tmp_path / "data", sizes=((8, 8),), per_class=4)
    argv = ["train-tokenizer", "--data", str(folder), "--out", str(tmp_path / "run"), "--max-steps", "2",
            "--no-progress"]
    assert main(argv) == 0
    for state in (tmp_path / "run" / "checkpoints").glob("step_*/state.json"):
        state.write_text("[]")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "state.json" in err and "start over" in err


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01garbage", b"time,loss\n1,2\n", b""])
def test_an_unreadable_metrics_log_is_named_in_one_line(tmp_path, content):
    path = tmp_path / "metrics.csv"
    path.write_bytes(content)
    if not content:  # an empty log is an empty log
        truncate_csv(path, 3)
        append_csv(path, {"step": 1, "loss": 0.5})
        assert path.read_text().splitlines()[0] == "step,loss"
        return
    for call in (lambda: truncate_csv(path, 3), lambda: append_csv(path, {"step": 1, "loss": 0.5})):
        with pytest.raises(ValueError) as err:
            call()
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == content  # never rewritten


def test_an_unreadable_token_cache_is_named_in_one_line(tmp_path):
    from maskgit.data import TensorImageDataset
    from maskgit.training.token_cache import cached_tokens

    tokenizer = VQGAN(TOKENIZER_PRESETS["tiny-rgb"])
    dataset = TensorImageDataset(torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    tokens, _ = cached_tokens(tokenizer, dataset, tmp_path)
    cache = next(tmp_path.glob("tokens-*.safetensors"))
    cache.write_bytes(b"garbage")
    with pytest.raises(ValueError) as err:
        cached_tokens(tokenizer, dataset, tmp_path)
    assert str(cache) in str(err.value) and "\n" not in str(err.value) and "delete it" in str(err.value)
