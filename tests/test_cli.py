"""The command line on a saved tiny model: sampling, editing, overwrite protection, clear errors."""
import json

import pytest
import torch

from maskgit import MaskGIT
from maskgit.cli import main
from maskgit.config import ModelConfig
from maskgit.images import load_image, save_image
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS


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
                 "--out", str(out), "--show-steps", "--overwrite"]) == 0
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
    assert (tmp_path / "o" / "in0_inpaint.png").is_file() and (tmp_path / "o" / "in0_inpaint.json").is_file()
    assert main(["outpaint", *map(str, paths), "--pad", "2,0,2,0", "--out", str(tmp_path / "o"), *common]) == 0
    assert load_image(tmp_path / "o" / "in1_outpaint.png", channels=1).shape == (1, 8, 12)
    assert main(["outpaint", str(paths[0]), "--width", "32", "--out", str(tmp_path / "o"), *common]) == 0
    assert load_image(tmp_path / "o" / "in0_extrapolate.png", channels=1).shape == (1, 8, 32)
    assert main(["edit", str(paths[0]), "--box", "0,0,4,4", "--label", "digit7", "--out", str(tmp_path / "o"),
                 *common]) == 0
    assert json.loads((tmp_path / "o" / "in0_edit.json").read_text())["labels"] == ["digit7"]


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


@pytest.fixture
def inputs(tmp_path):
    """An 8x8 image, a corrupt 'PNG', a mask, and a same-named image in another folder."""
    image = tmp_path / "a" / "x.png"
    image.parent.mkdir()
    save_image(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1)), image)
    twin = tmp_path / "b" / "x.png"
    twin.parent.mkdir()
    twin.write_bytes(image.read_bytes())
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    mask = tmp_path / "mask.png"
    save_image(torch.ones(1, 8, 8), mask)
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("keep me")
    return {"image": str(image), "twin": str(twin), "corrupt": str(corrupt), "mask": str(mask),
            "file": str(a_file), "tmp": tmp_path}


@pytest.mark.parametrize("case,message", [
    ("sample_out_is_a_file", "is a file"),
    ("sample_empty_labels", "--labels is empty"),
    ("sample_nan_temperature", "finite"),
    ("sample_nan_guidance", "finite"),
    ("inpaint_corrupt_image", "not a readable image"),
    ("inpaint_corrupt_mask", "not a readable image"),
    ("inpaint_same_names", "distinct file names"),
    ("edit_steps_below_start", "must exceed"),
    ("extrapolate_odd_width", "multiple of the tokenizer factor"),
    ("extrapolate_negative_overlap", "overlap"),
    ("train_config_is_a_directory", "not a file"),
    ("train_config_bad_json", "not valid JSON"),
    ("eval_tokenizer_png_out", "must name a .json file"),
    ("classifier_exists", "exist"),
])
def test_bad_input_gives_a_clear_error_and_writes_nothing(model_dir, inputs, capsys, case, message):
    tmp, model = inputs["tmp"], ["--model", str(model_dir)]
    out = str(tmp / "out")
    bad_json = tmp / "bad.json"
    bad_json.write_text("{'lr': 1}")
    (tmp / "judge").mkdir()
    (tmp / "judge" / "classifier.json").write_text("{}")
    argv = {
        "sample_out_is_a_file": ["sample", *model, "--out", inputs["file"] + "/sub"],
        "sample_empty_labels": ["sample", *model, "--labels", ",", "--out", out],
        "sample_nan_temperature": ["sample", *model, "--temperature", "nan", "--out", out],
        "sample_nan_guidance": ["sample", *model, "--guidance-scale", "nan", "--out", out],
        "inpaint_corrupt_image": ["inpaint", inputs["corrupt"], "--mask", inputs["mask"], *model, "--out", out],
        "inpaint_corrupt_mask": ["inpaint", inputs["image"], "--mask", inputs["corrupt"], *model, "--out", out],
        "inpaint_same_names": ["inpaint", inputs["image"], inputs["twin"], "--mask", inputs["mask"], *model,
                               "--out", out],
        "edit_steps_below_start": ["edit", inputs["image"], "--box", "0,0,4,4", "--label", "1", "--steps", "2",
                                   *model, "--out", out],
        "extrapolate_odd_width": ["outpaint", inputs["image"], "--width", "33", *model, "--out", out],
        "extrapolate_negative_overlap": ["outpaint", inputs["image"], "--width", "32", "--overlap", "-1", *model,
                                         "--out", out],
        "train_config_is_a_directory": ["train", "--config", str(tmp), "--tokenizer", str(model_dir), "--data",
                                        "digits", "--out", out],
        "train_config_bad_json": ["train", "--config", str(bad_json), "--tokenizer", str(model_dir), "--data",
                                  "digits", "--out", out],
        "eval_tokenizer_png_out": ["eval-tokenizer", "--tokenizer", str(model_dir), "--data", "digits",
                                   "--out", out + ".png"],
        "classifier_exists": ["train-classifier", "--data", "digits", "--out", str(tmp / "judge")],
    }[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not (tmp / "out").exists()
    assert (tmp / "judge" / "classifier.json").read_text() == "{}"
    assert open(inputs["file"]).read() == "keep me"


@pytest.mark.parametrize("flag,value", [("--box", "4,4,20"), ("--box", "1,2,3,4,5")])
def test_box_needs_four_integers(model_dir, inputs, capsys, flag, value):
    with pytest.raises(SystemExit):
        main(["edit", inputs["image"], flag, value, "--label", "1", "--model", str(model_dir), "--out", "x"])
    assert "four integers" in capsys.readouterr().err


def test_unavailable_device_is_refused_before_any_work(model_dir, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["sample", "--model", str(model_dir), "--device", "cuda", "--out", str(tmp_path / "o")]) == 2
    assert "not available" in capsys.readouterr().err
    assert main(["sample", "--model", str(model_dir), "--device", "gpu0", "--out", str(tmp_path / "o")]) == 2
    assert "invalid device" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
