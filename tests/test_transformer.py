import pytest
import torch

from maskgit.config import TransformerConfig
from maskgit.decoding import guided_logits_fn
from maskgit.presets import TRANSFORMER_PRESETS
from maskgit.transformer import MaskGITTransformer


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_shapes(name):
    cfg = TRANSFORMER_PRESETS[name]
    model = MaskGITTransformer(cfg).eval()
    tokens = torch.randint(0, cfg.codebook_size, (3, cfg.num_tokens))
    tokens[:, ::2] = cfg.mask_id
    logits = model(tokens, torch.tensor([0, 1, cfg.null_label]))
    assert logits.shape == (3, cfg.num_tokens, cfg.codebook_size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name,grid", [("imagenet-256", 16), ("imagenet-512", 32)])
def test_imagenet_presets_match_official_parameter_tree(name, grid):
    cfg = TRANSFORMER_PRESETS[name]
    assert cfg.vocab_size == 2025 and cfg.mask_id == 2024 and cfg.seq_len == 1 + grid * grid
    with torch.device("meta"):
        model = MaskGITTransformer(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    # 172,457,193 at 256px (official_param_tree.json); 512px adds 768 rows of 768 position embeddings.
    assert n_params == 172_457_193 + (1025 - 257) * 768 * (grid == 32)
    assert len(list(model.parameters())) == 393
    print(f"{name}: {n_params / 1e6:.2f}M parameters")


def test_imagenet_forward_with_few_layers():
    cfg = TransformerConfig(**{**TRANSFORMER_PRESETS["imagenet-256"].__dict__, "num_layers": 1})
    model = MaskGITTransformer(cfg).eval()
    tokens = torch.full((1, 256), cfg.mask_id)
    assert model(tokens, torch.tensor([999])).shape == (1, 256, 1024)


def test_head_at_selected_rows_equals_the_full_logits():
    cfg = TRANSFORMER_PRESETS["tiny"]
    model = MaskGITTransformer(cfg).eval()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, cfg.codebook_size, (3, cfg.num_tokens), generator=g)
    rows = torch.rand(3, cfg.num_tokens, generator=g) < 0.4
    rows[2] = False  # a sample with nothing selected contributes no rows
    tokens[rows] = cfg.mask_id
    labels = torch.tensor([0, 1, 2])
    full = model(tokens, labels)
    part = model(tokens, labels, rows=rows)
    assert part.shape == (int(rows.sum()), cfg.codebook_size)
    torch.testing.assert_close(part, full[rows], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="rows must be"):
        model(tokens, labels, rows=rows[:, :-1])
    with pytest.raises(ValueError, match="rows must be"):
        model(tokens, labels, rows=rows.long())


def test_logits_do_not_depend_on_hidden_ids_of_masked_tokens():
    cfg = TRANSFORMER_PRESETS["tiny"]
    model = MaskGITTransformer(cfg).eval()
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, cfg.codebook_size, (2, cfg.num_tokens), generator=g)
    b = torch.randint(0, cfg.codebook_size, (2, cfg.num_tokens), generator=g)
    mask = torch.rand(2, cfg.num_tokens, generator=g) < 0.5
    b[~mask] = a[~mask]  # same visible tokens, different original ids under the mask
    labels = torch.tensor([3, 4])
    la = model(a.masked_fill(mask, cfg.mask_id), labels)
    lb = model(b.masked_fill(mask, cfg.mask_id), labels)
    assert torch.equal(la, lb)
    assert not torch.equal(model(a, labels), model(b, labels))  # the visible ids do matter


def test_class_token_changes_logits_and_guidance_zero_is_conditional():
    cfg = TRANSFORMER_PRESETS["tiny"]
    model = MaskGITTransformer(cfg).eval()
    tokens = torch.full((2, cfg.num_tokens), cfg.mask_id)
    labels = torch.tensor([1, 2])
    assert not torch.allclose(model(tokens, labels)[0], model(tokens, labels)[1])
    fn = guided_logits_fn(model, labels, mask_id=cfg.mask_id, null_label=cfg.null_label, guidance_scale=0.0)
    assert torch.equal(fn(tokens), model(tokens, labels))


def test_unconditional_and_bad_inputs():
    cfg = TransformerConfig(codebook_size=16, num_classes=0, grid_size=4, hidden_size=32, num_layers=1, num_heads=2,
                            intermediate_size=64, null_class=False)
    model = MaskGITTransformer(cfg)
    assert cfg.seq_len == 16 and cfg.mask_id == 16
    assert model(torch.zeros(2, 16, dtype=torch.long)).shape == (2, 16, 16)
    with pytest.raises(ValueError, match="tokens per sample"):
        model(torch.zeros(2, 15, dtype=torch.long))
    cond = MaskGITTransformer(TRANSFORMER_PRESETS["tiny"])
    with pytest.raises(ValueError, match="labels"):
        cond(torch.zeros(1, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(hidden_size=30, num_heads=4)


def test_gradients_flow_everywhere():
    cfg = TRANSFORMER_PRESETS["tiny"]
    model = MaskGITTransformer(cfg).train()
    tokens = torch.randint(0, cfg.mask_id + 1, (4, cfg.num_tokens))
    tokens[tokens >= cfg.codebook_size] = cfg.mask_id
    model(tokens, torch.arange(4)).logsumexp(-1).mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []
