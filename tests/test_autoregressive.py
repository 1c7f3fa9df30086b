"""The autoregressive baseline: causal masking, naive vs KV-cached sampling, training and sampling from the CLI."""
import dataclasses
import json

import pytest
import torch

from maskgit import MaskGIT
from maskgit.baselines import sample_autoregressive
from maskgit.baselines.autoregressive import cached_logits, start_ids
from maskgit.cli import main
from maskgit.config import ModelConfig, TransformerConfig, TransformerTrainingConfig, from_dict
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS
from maskgit.transformer import MaskGITTransformer


def causal_model(dtype=torch.float64, **overrides) -> MaskGITTransformer:
    torch.manual_seed(0)
    cfg = dataclasses.replace(TRANSFORMER_PRESETS["tiny"], causal=True, **overrides)
    return MaskGITTransformer(cfg).eval().to(dtype)


@pytest.mark.parametrize("num_classes", [10, 0])
def test_logits_at_i_do_not_depend_on_tokens_from_i_on(num_classes):
    model = causal_model(num_classes=num_classes, null_class=num_classes > 0)
    labels = torch.tensor([1, 4]) if num_classes else None
    tokens = torch.randint(0, 16, (2, 16), generator=torch.Generator().manual_seed(0))
    base = model(tokens, labels)
    for i in (0, 5, 15):
        changed = tokens.clone()
        changed[:, i:] = (changed[:, i:] + 1) % 16
        logits = model(changed, labels)
        assert torch.equal(logits[:, : i + 1], base[:, : i + 1])  # logits[:, i] predicts token i from tokens < i
        if i < 15:
            assert (logits[:, i + 1 :] - base[:, i + 1 :]).abs().max() > 1e-3  # later positions do see it


def test_bidirectional_model_sees_every_token():
    torch.manual_seed(0)
    model = MaskGITTransformer(TRANSFORMER_PRESETS["tiny"]).eval()
    tokens, labels = torch.zeros(1, 16, dtype=torch.long), torch.tensor([0])
    changed = tokens.clone()
    changed[0, -1] = 3
    assert (model(tokens, labels)[0, 0] - model(changed, labels)[0, 0]).abs().max() > 0


def test_cached_step_logits_equal_the_teacher_forced_logits():
    model = causal_model()
    labels = torch.tensor([2, 7, 0])
    tokens = torch.randint(0, 16, (3, 16), generator=torch.Generator().manual_seed(1))
    ids = torch.cat([start_ids(model, labels, 3, "cpu"), tokens], dim=1)
    cache = []
    steps = torch.stack([cached_logits(model, ids[:, i : i + 1], i, cache) for i in range(16)], dim=1)
    torch.testing.assert_close(steps, model(tokens, labels), rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 4)])
def test_naive_and_cached_samplers_give_identical_tokens(dtype, temperature, top_k):
    model = causal_model(dtype)
    labels = torch.tensor([0, 3, 9, 5])
    out = {s: sample_autoregressive(model, labels, sampler=s, temperature=temperature, top_k=top_k,
                                    generator=torch.Generator().manual_seed(3)) for s in ("naive", "cached")}
    assert torch.equal(out["naive"], out["cached"])
    assert out["cached"].shape == (4, 16) and out["cached"].min() >= 0 and out["cached"].max() < 16


def test_unconditional_samplers_and_per_sample_generators():
    model = causal_model(num_classes=0, null_class=False)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (5, 6)]  # noqa: E731
    naive = sample_autoregressive(model, None, num_samples=2, sampler="naive", generator=gens())
    cached = sample_autoregressive(model, None, num_samples=2, generator=gens())
    alone = sample_autoregressive(model, None, num_samples=1, generator=[torch.Generator().manual_seed(6)])
    assert torch.equal(naive, cached) and torch.equal(cached[1:], alone)


def test_top_k_one_is_greedy_decoding():
    model = causal_model()
    labels = torch.tensor([1, 2])
    tokens = sample_autoregressive(model, labels, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tokens, model(tokens, labels).argmax(-1))  # each token is the argmax given its prefix


def test_sampler_argument_checks():
    model = causal_model()
    labels = torch.tensor([1])
    for kwargs, message in [({"sampler": "beam"}, "sampler"), ({"temperature": 0.0}, "temperature"),
                            ({"top_k": 0}, "top_k")]:
        with pytest.raises(ValueError, match=message):
            sample_autoregressive(model, labels, **kwargs)
    with pytest.raises(ValueError, match="causal"):
        sample_autoregressive(MaskGITTransformer(TRANSFORMER_PRESETS["tiny"]), labels)


def test_old_configs_load_as_bidirectional():
    data = {k: v for k, v in dataclasses.asdict(TRANSFORMER_PRESETS["tiny"]).items() if k != "causal"}
    assert from_dict(TransformerConfig, data).causal is False


@pytest.fixture(scope="module")
def ar_pipe():
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"],
                      transformer=dataclasses.replace(TRANSFORMER_PRESETS["tiny"], causal=True))
    return MaskGIT.from_config(cfg).eval()


def test_pipeline_samples_a_causal_model(ar_pipe):
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    images, history = ar_pipe.generate([1, 2], generator=g(), return_history=True)
    assert images.shape == (2, 1, 8, 8) and history.shape == (2, 4, 16)
    assert ((history == ar_pipe.transformer.config.mask_id).sum(-1) == torch.tensor([12, 8, 4, 0])).all()
    assert torch.equal(images, ar_pipe.generate([1, 2], generator=g(), sampler="naive"))
    with pytest.raises(ValueError, match="only apply to MaskGIT"):
        ar_pipe.generate([1], steps=8)
    with pytest.raises(ValueError, match="autoregressive"):
        ar_pipe.fill_tokens(history[:, 0], torch.tensor([1, 2]))


def test_ar_training_smoke_resume_and_cli_sampling(tmp_path):
    from maskgit.training.transformer import train_transformer
    from maskgit.vq import VQGAN, save_tokenizer

    torch.manual_seed(0)
    tokenizer = save_tokenizer(VQGAN(TOKENIZER_PRESETS["tiny"]), tmp_path / "tok")
    data = json.loads(open("configs/transformer-digits-smoke.json").read())
    data["transformer"]["causal"] = True
    cfg = from_dict(TransformerTrainingConfig, {**data, "max_steps": 3, "checkpoint_every": 1})
    run = tmp_path / "run"
    train_transformer(cfg, tokenizer_dir=tokenizer, data="digits", out=run, max_steps=2, progress=False)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor(float(r.split(",")[1]))) for r in rows[1:])
    final = train_transformer(cfg, tokenizer_dir=tokenizer, data="digits", out=run, progress=False)  # resumes
    assert len((run / "metrics.csv").read_text().splitlines()) == 4
    assert MaskGIT.from_pretrained(final).transformer.config.causal
    out = tmp_path / "samples"
    assert main(["sample", "--model", str(final), "--labels", "0,3", "--out", str(out), "--top-k", "4",
                 "--show-steps", "--ar-sampler", "naive"]) == 0
    assert (out / "grid.png").is_file() and (out / "steps.png").is_file()
    assert main(["sample", "--model", str(final), "--labels", "0", "--out", str(tmp_path / "x"), "--steps", "4"]) == 2
    # A class-balanced dump of the AR model records its own sampler settings, not MaskGIT's decoding ones.
    dump = tmp_path / "ar.npz"
    assert main(["sample-dump", "--model", str(final), "--num-per-class", "1", "--out", str(dump), "--top-k", "4",
                 "--no-progress"]) == 0
    settings = json.loads(dump.with_suffix(".json").read_text())["sampling"]
    assert settings["sampler"] == "cached" and settings["top_k"] == 4 and "steps" not in settings
    import numpy as np

    assert np.load(dump)["arr_0"].shape[0] == 10

