"""A model trained on an image folder, with no config, is sampled, edited and evaluated (test-sized: the folder's
8x8 and 12x12 RGB images pick the tiny-rgb preset); the full-size example of docs/guides/own-images.md runs in
tests/test_docs.py."""
import json

import pytest

from maskgit.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory, rgb_folder):
    root = tmp_path_factory.mktemp("own")
    folder = rgb_folder(root / "images", per_class=12)
    tok, tf = root / "tok", root / "tf"
    assert main(["train-tokenizer", "--data", str(folder), "--resize", "--max-steps", "2", "--out", str(tok),
                 "--no-progress"]) == 0
    assert main(["train", "--tokenizer", str(tok / "final"), "--data", str(folder), "--resize", "--epochs", "1",
                 "--out", str(tf), "--no-progress"]) == 0
    return root, folder, tf / "final"


def test_transformer_fits_the_tokenizer_and_the_folder(trained):
    _, _, model = trained
    config = json.loads((model / "config.json").read_text())
    assert config["transformer"]["num_classes"] == 2 and config["class_names"] == ["blue", "red"]
    assert config["tokenizer"]["in_channels"] == 3 and config["tokenizer"]["image_size"] == 8


def test_train_classifier_evaluate_and_evaluate_editing_on_a_folder_model(trained, capsys):
    root, folder, model = trained
    judge = root / "judge"
    common = ["--data", str(folder), "--model", str(model)]
    assert main(["train-classifier", *common, "--out", str(judge)]) == 2  # mixed sizes need --resize
    assert "--resize" in capsys.readouterr().err
    assert main(["train-classifier", *common, "--resize", "--epochs", "2", "--out", str(judge)]) == 0
    assert json.loads((judge / "classifier.json").read_text())["config"]["in_channels"] == 3
    assert main(["evaluate", *common, "--classifier", str(judge), "--resize", "--num-per-class", "3", "--steps", "2",
                 "--out", str(root / "gen.json")]) == 0
    result = json.loads((root / "gen.json").read_text())
    assert result["num_images"] == 6 and 0 <= result["agreement"] <= 1
    assert main(["evaluate-editing", *common, "--classifier", str(judge), "--resize", "--out",
                 str(root / "edit.json")]) == 0
    result = json.loads((root / "edit.json").read_text())
    assert result["inpainting"]["num_images"] >= 1 and (root / "edit.png").is_file()


def test_train_classifier_without_a_model_takes_the_datas_size(trained, tmp_path):
    _, folder, _ = trained
    assert main(["train-classifier", "--data", str(folder), "--resize", "--epochs", "1", "--out", str(tmp_path)]) == 0
    config = json.loads((tmp_path / "classifier.json").read_text())["config"]
    assert (config["in_channels"], config["image_size"], config["num_classes"]) == (3, 8, 2)
