"""The MaskGIT facade with the real (tiny, randomly initialised) tokenizer and transformer."""
import json
from pathlib import Path

import pytest
import torch

from maskgit import MaskGIT
from maskgit.config import ModelConfig
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["tiny"],
                      class_names=tuple(f"c{i}" for i in range(10)))
    return MaskGIT.from_config(cfg).eval()


def test_generate_shapes_range_and_history(pipe):
    g = torch.Generator().manual_seed(0)
    images, history = pipe.generate([0, 1, "c2"], steps=5, generator=g, return_history=True)
    assert images.shape == (3, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    assert history.shape == (3, 5, 16)
    steps = pipe.decode_history(history)
    assert steps.shape == (3, 5, 1, 8, 8)
    # Step 0 leaves most tokens unknown: their patches render as the grey placeholder.
    assert (steps[:, 0] == 0.5).float().mean() > 0.5


def test_seeded_generation_is_deterministic(pipe):
    a = pipe.generate([3, 4], generator=torch.Generator().manual_seed(1))
    b = pipe.generate([3, 4], generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_guidance_runs_and_changes_output(pipe):
    a = pipe.generate([3, 4], generator=torch.Generator().manual_seed(1), guidance_scale=0.0)
    # Random weights give near-identical class embeddings: a huge scale makes the guidance term visible.
    b = pipe.generate([3, 4], generator=torch.Generator().manual_seed(1), guidance_scale=1000.0)
    assert a.shape == b.shape and not torch.equal(a, b)


def test_save_load_round_trip_is_bit_identical(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "tokenizer.safetensors",
                                                                    "transformer.safetensors"]
    loaded = MaskGIT.from_pretrained(tmp_path / "m")
    assert loaded.config == pipe.config
    for kw in [dict(), dict(guidance_scale=2.0, steps=3, schedule="linear")]:
        a = pipe.generate([0, 5, 9], generator=torch.Generator().manual_seed(7), **kw)
        b = loaded.generate([0, 5, 9], generator=torch.Generator().manual_seed(7), **kw)
        assert torch.equal(a, b)


def test_truncated_and_foreign_files_are_refused(pipe, tmp_path):
    d = pipe.save_pretrained(tmp_path / "m")
    weights = d / "transformer.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="transformer.safetensors"):
        MaskGIT.from_pretrained(d)
    weights.write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    with pytest.raises(ValueError, match="transformer.safetensors"):
        MaskGIT.from_pretrained(d)
    # Weights of another architecture: strict loading names the mismatch.
    other = MaskGIT.from_config(ModelConfig(
        tokenizer=TOKENIZER_PRESETS["tiny"],
        transformer=TRANSFORMER_PRESETS["tiny"].__class__(**{**TRANSFORMER_PRESETS["tiny"].__dict__, "hidden_size": 64})))
    other.save_pretrained(tmp_path / "other")
    (d / "transformer.safetensors").write_bytes((tmp_path / "other" / "transformer.safetensors").read_bytes())
    with pytest.raises(ValueError, match="shape|mismatch"):
        MaskGIT.from_pretrained(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config"):
        MaskGIT.from_pretrained(d)
    cfg = json.loads((tmp_path / "other" / "config.json").read_text())
    cfg["transformer"]["bogus_field"] = 1
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="bogus_field"):
        MaskGIT.from_pretrained(d)
    with pytest.raises(FileNotFoundError, match="bundled"):
        MaskGIT.from_pretrained(tmp_path / "missing")


def test_bad_labels_and_steps(pipe):
    with pytest.raises(ValueError, match="out of range"):
        pipe.generate([10])
    with pytest.raises(ValueError, match="out of range"):
        pipe.generate([-1])
    with pytest.raises(ValueError, match="unknown class name"):
        pipe.generate(["c11"])
    with pytest.raises(ValueError, match="steps"):
        pipe.generate([1], steps=0)
    with pytest.raises(ValueError, match="class-conditional"):
        pipe.generate(num_samples=2)


def test_mismatched_networks_are_refused():
    with pytest.raises(ValueError, match="codes"):
        ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["small"])


def test_half_precision_files_load_as_float32(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "fp32")
    pipe.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    size = lambda d: sum(p.stat().st_size for p in d.glob("*.safetensors"))
    assert size(tmp_path / "fp16") < 0.6 * size(tmp_path / "fp32")
    loaded = MaskGIT.from_pretrained(tmp_path / "fp16")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    ref = pipe.transformer.Embed_0.word_embeddings.weight
    assert torch.equal(loaded.transformer.Embed_0.word_embeddings.weight, ref.half().float())
    assert next(pipe.parameters()).dtype == torch.float32  # saving did not touch the live model


def test_bundled_fashion_mnist_model_is_deterministic():
    from maskgit import bundled_models

    assert "fashion-mnist" in bundled_models()
    model = MaskGIT.from_pretrained("fashion-mnist")
    assert model.class_names[7] == "Sneaker" and model.transformer.config.num_classes == 10
    a = model.generate(["sneaker", 0, 9], generator=torch.Generator().manual_seed(0))
    b = MaskGIT.from_pretrained("fashion-mnist").generate(["sneaker", 0, 9], generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 28, 28) and torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown class name"):
        model.generate(["jacket"])
    with pytest.raises(ValueError, match="out of range"):
        model.generate([10])


def test_labels_accept_one_index_or_name_and_refuse_non_integers(pipe):
    torch.testing.assert_close(pipe.resolve_labels(3), torch.tensor([3]))
    torch.testing.assert_close(pipe.resolve_labels("3"), torch.tensor([3]))
    with pytest.raises(ValueError, match="integer"):
        pipe.resolve_labels(torch.tensor([1.7, 2.2]))
    with pytest.raises(ValueError, match="1-D"):
        pipe.resolve_labels(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="class indices or names"):
        pipe.resolve_labels([1.5])
    with pytest.raises(ValueError, match="class indices or names"):
        pipe.generate(3.0)
    with pytest.raises(ValueError, match="finite"):
        pipe.generate([1], temperature=float("nan"))
    with pytest.raises(ValueError, match="finite"):
        pipe.generate([1], guidance_scale=float("inf"))


def test_unknown_devices_are_refused(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="invalid device"):
        MaskGIT.from_pretrained(tmp_path, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            MaskGIT.from_pretrained(tmp_path, device="cuda")
    assert MaskGIT.from_pretrained(Path("fashion-mnist")).class_names[0] == "T-shirt/top"
