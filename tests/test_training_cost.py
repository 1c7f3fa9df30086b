"""The training cost model: transformer FLOPs close to 6 x parameters x tokens, GPU-hours from peak and MFU."""

import json

import pytest

from maskgit.config import TokenizerTrainingConfig, TransformerTrainingConfig, from_dict
from maskgit.presets import TRANSFORMER_PRESETS, config_with_preset
from maskgit.speed.flops import parameter_count
from maskgit.speed.training_cost import cost_text, recipe_cost, tokenizer_image_flops, transformer_sample_flops


def test_transformer_flops_are_about_six_times_parameters_times_tokens():
    cfg = TRANSFORMER_PRESETS["imagenet-256"]
    embeddings = (cfg.vocab_size + cfg.seq_len) * cfg.hidden_size  # lookups, not matmuls
    rule = 6 * (parameter_count(cfg) - embeddings) * cfg.seq_len
    assert transformer_sample_flops(cfg) == pytest.approx(rule, rel=0.1)  # attention adds a few percent
    long = TRANSFORMER_PRESETS["imagenet-512"]
    assert transformer_sample_flops(long) > 4 * transformer_sample_flops(cfg)  # 4x tokens, quadratic attention


def test_the_paper_recipe_in_gpu_hours():
    cfg = config_with_preset(TransformerTrainingConfig, json.load(open("configs/transformer-imagenet-256.json")))
    cost = recipe_cost(cfg, 1_281_167, gpu="A100", mfu=0.4)
    assert cfg.max_steps == 1_501_500 and cost["epochs"] == pytest.approx(300, rel=1e-3)
    assert cost["gpu_hours"] == pytest.approx(cost["total_flops"] / (312e12 * 0.4) / 3600)
    assert 100 < cost["gpu_hours"] < 1000
    assert "A100 GPU-hours at 40% MFU" in cost_text(cfg, 1_281_167)
    with pytest.raises(ValueError, match="mfu"):
        recipe_cost(cfg, 10, mfu=0)


def test_tokenizer_losses_add_their_networks():
    base = from_dict(TokenizerTrainingConfig, {"tokenizer": {"in_channels": 3, "image_size": 32}})
    gan = from_dict(TokenizerTrainingConfig, {"tokenizer": {"in_channels": 3, "image_size": 32},
                                             "adversarial_weight": 0.1,
                                             "discriminator": {"in_channels": 3, "image_size": 32}})
    assert 0 < tokenizer_image_flops(base) < tokenizer_image_flops(gan)
