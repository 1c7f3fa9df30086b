"""The command line on a saved tiny model: sampling, editing, overwrite protection, clear errors."""
import json

import pytest
import torch

from maskgit import MaskGIT
from maskgit.cli import main
from maskgit.config import TOKENIZER_PRESETS, TRANSFORMER_PRESETS, ModelConfig
from maskgit.images import load_image, save_image


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["tiny"],
                      class_names=tuple(f"digit{i}" for i in range(10)))
    return MaskGIT.from_config(cfg).save_pretrained(tmp_path_factory.mktemp("model") / "m")


def test_sample_writes_images_grid_steps_and_config(model_dir, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sample", "--model", str(model_dir), "--labels", "0,digit3", "--num", "2", "--steps", "4",
                 "--out", str(out), "--show-steps"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["0000_digit0.png", "0001_digit0.png", "0002_digit3.png", "0003_digit3.png", "grid.png",
                     "sampling.json", "steps.png"]
    meta = json.loads((out / "sampling.json").read_text())
    assert meta["labels"] == [0, 0, 3, 3] and meta["overrides"]["steps"] == 4
    assert load_image(out / "0000_digit0.png", channels=1).shape == (1, 8, 8)
    # Same seed -> same files; existing outputs are protected.
    before = (out / "grid.png").read_bytes()
    assert main(["sample", "--model", str(model_dir), "--labels", "0,digit3", "--num", "2", "--steps", "4",
                 "--out", str(out)]) == 2
    assert "exist" in capsys.readouterr().err
    assert main(["sample", "--model", str(model_dir), "--labels", "0,digit3", "--num", "2", "--steps", "4",
                 "--out", str(out), "--overwrite"]) == 0
    assert (out / "grid.png").read_bytes() == before


@pytest.mark.parametrize("argv,message", [
    (["--labels", "12"], "out of range"),
    (["--labels", "jacket"], "unknown class name"),
    (["--steps", "0"], "steps"),
])
def test_sample_errors(model_dir, tmp_path, capsys, argv, message):
    assert main(["sample", "--model", str(model_dir), "--out", str(tmp_path / "x"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_editing_commands(model_dir, tmp_path):
    images = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    paths = [save_image(im, tmp_path / f"in{i}.png") for i, im in enumerate(images)]
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:6, 2:6] = 1
    save_image(mask, tmp_path / "mask.png")
    common = ["--model", str(model_dir), "--steps", "4"]
    assert main(["inpaint", *map(str, paths), "--mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "o"),
                 *common]) == 0
    assert (tmp_path / "o" / "in0_inpaint.png").is_file() and (tmp_path / "o" / "inpaint.json").is_file()
    assert main(["outpaint", *map(str, paths), "--pad", "2,0,2,0", "--out", str(tmp_path / "o"), *common]) == 0
    assert load_image(tmp_path / "o" / "in1_outpaint.png", channels=1).shape == (1, 8, 12)
    assert main(["outpaint", str(paths[0]), "--width", "32", "--out", str(tmp_path / "o"), *common]) == 0
    assert load_image(tmp_path / "o" / "in0_extrapolate.png", channels=1).shape == (1, 8, 32)
    assert main(["edit", str(paths[0]), "--box", "0,0,4,4", "--label", "digit7", "--out", str(tmp_path / "o"),
                 *common]) == 0
    assert json.loads((tmp_path / "o" / "edit.json").read_text())["labels"] == ["digit7"]


def test_editing_errors(model_dir, tmp_path, capsys):
    big = tmp_path / "big.png"
    save_image(torch.rand(1, 16, 16), big)
    out = str(tmp_path / "e")
    assert main(["edit", str(big), "--box", "0,0,4,4", "--label", "1", "--model", str(model_dir), "--out", out]) == 2
    assert "--resize" in capsys.readouterr().err
    assert main(["edit", str(big), "--box", "0,0,4,4", "--label", "1", "--model", str(model_dir), "--out", out,
                 "--resize", "--steps", "4"]) == 0
    assert main(["edit", str(big), "--box", "0,0,40,4", "--label", "1", "--model", str(model_dir), "--out", out,
                 "--resize", "--overwrite"]) == 2
    assert "box" in capsys.readouterr().err
    assert main(["inpaint", str(tmp_path / "nope.png"), "--mask", str(big), "--model", str(model_dir),
                 "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["outpaint", str(big), "--model", str(model_dir), "--out", out, "--resize"]) == 2
    assert "exactly one" in capsys.readouterr().err
