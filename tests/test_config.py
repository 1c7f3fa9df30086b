"""Configs: typed `from_dict` with field-path errors, range checks, every shipped config loads, config diffs."""

import json
from pathlib import Path

import pytest
import torch

from maskgit.config import (
    ModelConfig,
    TokenizerConfig,
    TokenizerTrainingConfig,
    TransformerTrainingConfig,
    config_differences,
    from_dict,
    to_dict,
)
from maskgit.evaluation.classifier import ClassifierConfig, load_classifier, save_classifier, train_classifier

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "src" / "maskgit" / "pretrained"


@pytest.mark.parametrize("data, message", [
    ({"batch_size": "16"}, "batch_size must be an int, got '16'"),
    ({"lr": "1e-3"}, "lr must be a number, got '1e-3'"),
    ({"tokenizer": [1]}, "tokenizer must be a JSON object of TokenizerConfig fields, got [1]"),
    ({"tokenizer": {"image_size": "28"}}, "tokenizer.image_size must be an int, got '28'"),
    ({"max_steps": 2.5}, "max_steps must be an int, got 2.5"),
    ({"max_steps": True}, "max_steps must be an int, got True"),
    ({"hflip": 1}, "hflip must be true or false, got 1"),
    ({"betas": [0.9]}, "betas must be a list of 2 numbers, got [0.9]"),
    ({"tokenizer": {"channel_mult": [1, "2"]}}, "tokenizer.channel_mult[1] must be an int, got '2'"),
    ({"perceptual_weights_path": 3}, "perceptual_weights_path must be a string, got 3"),
    ({"tokenizer": {"bogus": 1}}, "tokenizer: unknown field(s) ['bogus']"),
    ({"tokenizer": {"image_size": 9}}, "tokenizer: image_size 9 is not a multiple"),
])
def test_from_dict_rejects_wrong_types_naming_the_field(data, message):
    with pytest.raises(ValueError) as err:
        from_dict(TokenizerTrainingConfig, data)
    assert message in str(err.value)


def test_from_dict_converts_json_values_and_optional_fields():
    cfg = from_dict(TransformerTrainingConfig, {"lr": 1, "betas": [0.9, 0.99], "dropout": None})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.betas == (0.9, 0.99) and cfg.dropout is None
    assert from_dict(TransformerTrainingConfig, {"dropout": 0}).dropout == 0.0
    with pytest.raises(ValueError, match="dropout must be a number or null, got 'x'"):
        from_dict(TransformerTrainingConfig, {"dropout": "x"})
    with pytest.raises(ValueError, match=r"class_names\[1\] must be a string"):
        from_dict(ModelConfig, {"class_names": ["a", 3]})
    cfg = from_dict(TokenizerTrainingConfig, to_dict(TokenizerTrainingConfig()))  # round trip
    assert cfg == TokenizerTrainingConfig()


def test_every_shipped_config_loads():
    for path in sorted((ROOT / "configs").glob("*.json")):
        cls = TokenizerTrainingConfig if path.name.startswith("tokenizer") else TransformerTrainingConfig
        from_dict(cls, json.loads(path.read_text()))
    for path in sorted(PRETRAINED.glob("*/config.json")):
        from_dict(ModelConfig, json.loads(path.read_text()))
    for path in sorted(PRETRAINED.glob("*/tokenizer.json")):
        from_dict(TokenizerConfig, json.loads(path.read_text()))
    for path in sorted(PRETRAINED.glob("*/classifier.json")):
        from_dict(ClassifierConfig, json.loads(path.read_text())["config"])


@pytest.mark.parametrize("cls", [TokenizerTrainingConfig, TransformerTrainingConfig])
@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "batch_size must be positive, got 0"),
    ("batch_size", -4, "batch_size must be positive, got -4"),
    ("max_steps", 0, "max_steps must be positive"),
    ("grad_accum_steps", 0, "grad_accum_steps must be positive"),
    ("lr", 0.0, "lr must be positive"),
    ("log_every", 0, "log_every must be positive"),
    ("checkpoint_every", 0, "checkpoint_every must be positive"),
    ("warmup_steps", -1, "warmup_steps must be >= 0"),
    ("min_lr_ratio", 1.5, "min_lr_ratio must be in [0, 1]"),
])
def test_training_configs_reject_out_of_range_values(cls, field, value, message):
    with pytest.raises(ValueError) as err:
        from_dict(cls, {field: value})
    assert message in str(err.value)


def test_architecture_configs_reject_non_positive_sizes():
    with pytest.raises(ValueError, match="tokenizer: codebook_size must be positive"):
        from_dict(ModelConfig, {"tokenizer": {"codebook_size": 0}})
    with pytest.raises(ValueError, match="transformer: num_heads must be positive"):
        from_dict(ModelConfig, {"transformer": {"num_heads": 0}})
    with pytest.raises(ValueError, match="sampling: steps must be positive"):
        from_dict(ModelConfig, {"sampling": {"steps": 0}})


def test_config_differences_gives_dotted_paths():
    a = to_dict(TokenizerTrainingConfig())
    b = to_dict(from_dict(TokenizerTrainingConfig, {"lr": 0.5, "tokenizer": {"image_size": 32}}))
    assert config_differences(a, b) == [("lr", 1e-3, 0.5), ("tokenizer.image_size", 28, 32)]
    assert config_differences(a, a) == []


def test_load_classifier_names_the_file_and_the_missing_key(tmp_path):
    model = train_classifier(torch.rand(8, 1, 8, 8), torch.arange(8) % 2, epochs=1, batch_size=4,
                             config=ClassifierConfig(image_size=8, num_classes=2, width=4, feature_dim=8))
    save_classifier(model, tmp_path)
    assert load_classifier(tmp_path).config == model.config
    (tmp_path / "classifier.json").write_text(json.dumps({"metrics": {}}))
    with pytest.raises(ValueError, match=r"classifier\.json lacks the key 'config'"):
        load_classifier(tmp_path)
    (tmp_path / "classifier.json").write_text(json.dumps({"config": {"image_size": "8"}}))
    with pytest.raises(ValueError, match="image_size must be an int"):
        load_classifier(tmp_path)
    with pytest.raises(FileNotFoundError, match="train-classifier"):
        load_classifier(tmp_path / "nowhere")


@pytest.mark.parametrize("kwargs, message", [({"epochs": 0}, "epochs must be >= 1"),
                                             ({"batch_size": 0}, "batch_size must be >= 1"),
                                             ({"batch_size": 16}, "fewer than one batch")])
def test_train_classifier_rejects_settings_that_give_no_steps(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_classifier(torch.rand(8, 1, 8, 8), torch.arange(8) % 2, **kwargs,
                         config=ClassifierConfig(image_size=8, num_classes=2, width=4, feature_dim=8))
