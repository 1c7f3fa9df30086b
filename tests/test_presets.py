"""Presets as a first-class choice: listing, JSON "preset" with overrides, the nearest preset for the data, fitting
to the tokenizer and data, run length rescaling, and data that does not fit refused before step 1."""
import json

import pytest

from maskgit.cli import main
from maskgit.config import TokenizerTrainingConfig, TransformerTrainingConfig
from maskgit.data_fit import check_fit, describe_data
from maskgit.presets import PRESETS, TOKENIZER_PRESETS, config_with_preset, nearest_preset, training_config
from maskgit.training.run_config import plan_text, rescale_length, tokenizer_config, transformer_config


def test_preset_tables_live_in_presets_only():
    import maskgit.config

    assert not hasattr(maskgit.config, "TOKENIZER_PRESETS")  # config.py never imports presets.py


def test_presets_command_lists_sizes_and_parameter_counts(capsys):
    assert main(["presets"]) == 0
    text = capsys.readouterr().out
    for name in PRESETS:
        assert name in text
    assert "256x256x3" in text and "172.46M" in text and "54.52M" in text  # the official ImageNet networks
    assert main(["presets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["imagenet-256"]["transformer_params"] == 172_457_193 and rows["rgb-32"]["image"] == "32x32x3"


@pytest.mark.parametrize("channels,size,name", [(1, 28, "fashion-mnist"), (1, 8, "tiny"), (3, 32, "rgb-32"),
                                                (3, 48, "rgb-64"), (3, 224, "imagenet-256"), (1, 64, "gray-32"),
                                                (3, 8, "tiny-rgb")])
def test_nearest_preset(channels, size, name):
    assert nearest_preset(channels, size).name == name


def test_json_preset_with_overrides_nested_and_flat():
    cfg = config_with_preset(TokenizerTrainingConfig, {"preset": "rgb-32", "max_steps": 7,
                                                       "tokenizer": {"image_size": 48, "codebook_size": 256}})
    base = training_config(TokenizerTrainingConfig, "rgb-32")
    assert cfg.max_steps == 7 and cfg.tokenizer.codebook_size == 256 and cfg.tokenizer.image_size == 48
    assert cfg.tokenizer.base_channels == base.tokenizer.base_channels and cfg.lr == base.lr
    assert (cfg.discriminator.in_channels, cfg.discriminator.image_size) == (3, 48)  # follows the images
    with pytest.raises(KeyError, match="choose one of"):
        config_with_preset(TokenizerTrainingConfig, {"preset": "rgb-31"})
    with pytest.raises(ValueError, match="unknown field"):
        config_with_preset(TokenizerTrainingConfig, {"preset": "rgb-32", "tokenizr": {}})


def test_without_config_the_data_choose_the_preset(tmp_path, rgb_folder):
    info = describe_data(str(rgb_folder(tmp_path, sizes=((48, 48), (32, 32)))))
    assert info.channels == 3 and info.image_size == 48 and info.sizes == {(48, 48): 12, (32, 32): 8}
    cfg, notes = tokenizer_config(info)
    assert cfg.tokenizer.in_channels == 3 and cfg.tokenizer.image_size == 48  # rgb-64's network at the data's size
    assert "rgb-64" in notes[0] and "48x48" in notes[0]
    assert cfg == tokenizer_config(info)[0]  # deterministic: the same command resumes


def test_transformer_preset_is_fitted_to_the_tokenizer_and_data(tmp_path, rgb_folder):
    info = describe_data(str(rgb_folder(tmp_path)))
    tok = TOKENIZER_PRESETS["rgb-32"]
    cfg, _ = transformer_config(info, tok, preset="rgb-64")
    assert (cfg.transformer.codebook_size, cfg.transformer.grid_size, cfg.transformer.num_classes) == (512, 8, 2)
    cfg, _ = transformer_config(info, tok, config={"preset": "rgb-32", "transformer": {"num_layers": 2}})
    assert cfg.transformer.num_layers == 2 and cfg.transformer.num_classes == 2
    with pytest.raises(ValueError, match="names preset"):
        transformer_config(info, tok, config={"preset": "rgb-64"}, preset="rgb-32")


def test_run_length_rescales_warmup_and_decay():
    cfg = training_config(TransformerTrainingConfig, "fashion-mnist")  # 2200 steps, warm-up 200
    short = rescale_length(cfg, max_steps=550, num_images=60_000)
    assert (short.max_steps, short.warmup_steps) == (550, 50)
    by_epochs = rescale_length(cfg, epochs=2, num_images=60_000)  # batch 128
    assert by_epochs.max_steps == 938 and by_epochs.warmup_steps == round(200 * 938 / 2200)
    tok = rescale_length(training_config(TokenizerTrainingConfig, "rgb-32"), max_steps=320, num_images=1000)
    assert (tok.max_steps, tok.warmup_steps) == (320, 10)
    with pytest.raises(ValueError, match="not both"):
        rescale_length(cfg, max_steps=5, epochs=1, num_images=10)
    text = plan_text(short, 60_000, short.max_steps)
    assert "550 steps" in text and "70,400 images" in text and "1.17 epochs" in text and "warm-up 50" in text
    assert "before the decay ends" in plan_text(short, 60_000, 100)


def test_check_fit_refuses_colour_for_grey_and_other_sizes_without_resize(tmp_path, rgb_folder):
    info = describe_data(str(rgb_folder(tmp_path)))
    with pytest.raises(ValueError, match="colour images"):
        check_fit(info, 1, 8, resize=False, what="the tokenizer")
    with pytest.raises(ValueError, match="--resize"):
        check_fit(info, 3, 8, resize=False, what="the tokenizer")
    assert any("resizing 8 of 20" in n for n in check_fit(info, 3, 8, resize=True, what="the tokenizer"))


def test_fashion_mnist_config_on_an_rgb_folder_is_refused_before_step_1(tmp_path, capsys, rgb_folder):
    folder = rgb_folder(tmp_path / "data", sizes=((28, 28),))
    out = tmp_path / "run"
    assert main(["train-tokenizer", "--config", "configs/tokenizer-fashion-mnist.json", "--data", str(folder),
                 "--out", str(out), "--no-progress"]) == 2
    assert "colour images" in capsys.readouterr().err
    assert not (out / "checkpoints").exists()


def test_preset_training_resumes_with_the_same_command(tmp_path, capsys, rgb_folder):
    folder = rgb_folder(tmp_path / "data")
    argv = ["train-tokenizer", "--data", str(folder), "--resize", "--max-steps", "2", "--out", str(tmp_path / "tok"),
            "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "nearest preset tiny-rgb" in out and "plan: 2 steps" in out and "resizing 8 of 20" in out
    saved = json.loads((tmp_path / "tok" / "train_config.json").read_text())
    assert (saved["max_steps"], saved["warmup_steps"]) == (2, 0)  # 20 steps, warm-up 5, rescaled
    assert main(argv) == 0 and "nothing to train" in capsys.readouterr().out
    assert main([*argv[:5], "3", *argv[6:]]) == 2  # another run length is another run
    assert "max_steps" in capsys.readouterr().err
