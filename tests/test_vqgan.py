"""VQGAN: presets build and round-trip shapes, discrete path == quantized forward, official layout, I/O errors."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from maskgit.config import DiscriminatorConfig, TokenizerConfig
from maskgit.presets import TOKENIZER_PRESETS
from maskgit.vq import VQGAN, load_tokenizer, save_tokenizer
from maskgit.vq import losses as L
from maskgit.vq.discriminator import build_discriminator
from maskgit.vq.vqgan import ResBlock

OFFICIAL_TREE = Path(__file__).parent / "fixtures" / "official" / "official_param_tree.json"


def shrink(cfg: TokenizerConfig) -> TokenizerConfig:
    """A narrow copy of a preset (same levels, codebook and layout) so big presets run in a blink."""
    return dataclasses.replace(cfg, base_channels=8, norm_groups=4, embed_dim=min(cfg.embed_dim, 16),
                               image_size=cfg.downsample_factor * 2)


@pytest.mark.parametrize("name", sorted(TOKENIZER_PRESETS))
def test_every_preset_builds_and_round_trips_shapes(name):
    cfg = TOKENIZER_PRESETS[name]
    if name in ("imagenet", "rgb-64"):
        cfg = shrink(cfg)
    model = VQGAN(cfg).eval()
    images = torch.rand(2, cfg.in_channels, cfg.image_size, cfg.image_size)
    ids = model.encode(images)
    g = cfg.grid_size
    assert ids.shape == (2, g, g) and ids.dtype == torch.long
    assert 0 <= ids.min() and ids.max() < cfg.codebook_size
    decoded = model.decode_ids(ids)
    assert decoded.shape == images.shape and 0 <= decoded.min() and decoded.max() <= 1
    recon, q = model(images)
    assert recon.shape == images.shape and q.quantized.shape == (2, cfg.embed_dim, g, g)


def test_bundled_tokenizer_matches_the_fashion_mnist_preset():
    bundled = Path(__file__).resolve().parents[1] / "src" / "maskgit" / "pretrained" / "fashion-mnist"
    if not (bundled / "tokenizer.json").is_file():
        pytest.skip("no bundled Fashion-MNIST tokenizer")
    model = load_tokenizer(bundled)
    assert model.config == TOKENIZER_PRESETS["fashion-mnist"]
    assert model.encode(torch.zeros(1, 1, 28, 28)).shape == (1, 7, 7)


def test_preset_grids():
    assert TOKENIZER_PRESETS["fashion-mnist"].grid_size == 7
    assert TOKENIZER_PRESETS["fashion-mnist"].downsample_factor == 4
    assert TOKENIZER_PRESETS["gray-32"].grid_size == 8
    assert TOKENIZER_PRESETS["imagenet"].downsample_factor == 16
    assert TOKENIZER_PRESETS["imagenet"].codebook_size == 1024


@pytest.mark.parametrize("l2,ema", [(False, 0.0), (True, 0.0), (False, 0.9)])
def test_decode_of_ids_equals_quantized_forward_in_eval(l2, ema):
    torch.manual_seed(0)
    cfg = dataclasses.replace(TOKENIZER_PRESETS["tiny"], l2_normalize=l2, ema_decay=ema)
    model = VQGAN(cfg).eval()
    images = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        recon, q = model(images)
        assert torch.equal(model.encode(images), q.ids)
        assert torch.allclose(model.decode_ids(model.encode(images)), recon.clamp(0, 1), atol=1e-6)


def test_any_number_of_channels_and_larger_canvases():
    cfg = dataclasses.replace(TOKENIZER_PRESETS["tiny"], in_channels=4)
    model = VQGAN(cfg).eval()
    ids = model.encode(torch.rand(1, 4, 8, 12))  # any multiple of the factor encodes
    assert ids.shape == (1, 4, 6)
    assert model.decode_ids(ids).shape == (1, 4, 8, 12)


def test_clear_errors_for_wrong_inputs():
    model = VQGAN(TOKENIZER_PRESETS["tiny"])
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model.encode(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="multiples of 2"):
        model.encode(torch.rand(1, 1, 7, 8))
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        model.decode_ids(torch.zeros(1, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="norm_groups"):
        TokenizerConfig(base_channels=12, norm_groups=8)


def test_imagenet_preset_matches_official_parameter_tree():
    official = json.loads(OFFICIAL_TREE.read_text())["tokenizer"]
    model = VQGAN(TOKENIZER_PRESETS["imagenet"])
    state = model.state_dict()
    assert len(state) == official["num_arrays"]
    assert sum(t.numel() for t in state.values()) == official["num_params"]
    # Spot-check the name mapping documented in vqgan.py, including the shortcut quirk's shapes.
    params = official["params"]
    assert tuple(state["encoder.res_blocks.4.shortcut.weight"].shape[:2]) == tuple(params["encoder/ResBlock_4/Conv_2/kernel"][:1:-1])
    assert tuple(state["decoder.upsamples.0.conv.weight"].shape[:2]) == tuple(params["decoder/Conv_1/kernel"][:1:-1])
    assert state["quantizer.codebook"].shape == tuple(params["quantizer/codebook"])


def test_official_shortcut_quirk_applies_to_convolved_features():
    torch.manual_seed(0)
    block = ResBlock(8, 16, groups=4, official_shortcut=True)
    x = torch.randn(1, 8, 4, 4)
    h = block.conv_1(torch.nn.functional.silu(block.norm_1(block.conv_0(torch.nn.functional.silu(block.norm_0(x))))))
    assert torch.allclose(block(x), h + block.shortcut(h), atol=1e-6)
    assert block.shortcut.in_channels == 16 and ResBlock(8, 16, 4).shortcut.in_channels == 8


def test_save_and_load_tokenizer(tmp_path):
    model = VQGAN(TOKENIZER_PRESETS["tiny"])
    save_tokenizer(model, tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert loaded.config == model.config and not loaded.training
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    other = VQGAN(dataclasses.replace(TOKENIZER_PRESETS["tiny"], codebook_size=32))
    from maskgit.weights import load_weights
    with pytest.raises(ValueError, match="quantizer.codebook"):
        load_weights(other, tmp_path / "tokenizer.safetensors")


@pytest.mark.parametrize("kind,size,layers", [("patchgan", 28, 2), ("stylegan", 28, 2), ("stylegan", 8, 3)])
def test_discriminators_score_images(kind, size, layers):
    disc = build_discriminator(DiscriminatorConfig(kind=kind, in_channels=3, base_channels=8, num_layers=layers,
                                                   image_size=size))
    logits = disc(torch.rand(2, 3, size, size))
    assert logits.shape[0] == 2 and torch.isfinite(logits).all()


def test_patchgan_rejects_images_too_small():
    with pytest.raises(ValueError, match="at least 24 pixels"):
        build_discriminator(DiscriminatorConfig(kind="patchgan", num_layers=3, image_size=16))


def test_gan_losses_r1_lecam_entropy_adaptive_weight():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert L.discriminator_loss(real, fake, "hinge").item() == pytest.approx(1.0)
    assert L.generator_loss(fake, "hinge").item() == pytest.approx(0.75)
    assert L.generator_loss(fake, "non-saturating").item() > 0
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    assert L.r1_penalty((x ** 2).sum((1, 2, 3)), x).item() == pytest.approx((4 * x ** 2).sum().item() / 2, rel=1e-5)
    ema = L.LeCamEMA(0.0)
    ema.update(real, fake)
    assert L.lecam_loss(real, fake, ema).item() >= 0
    confident = torch.tensor([[10.0, 0.0], [0.0, 10.0]])  # sharp, evenly spread assignments
    collapsed = torch.tensor([[10.0, 0.0], [10.0, 0.0]])
    assert L.entropy_loss(confident, 1.0) < L.entropy_loss(collapsed, 1.0)
    layer = torch.nn.Linear(2, 2)
    out = layer(torch.ones(1, 2)).sum()
    assert L.adaptive_weight(out * 4, out, layer.weight).item() == pytest.approx(4.0, rel=1e-3)


def test_perceptual_loss_shapes_without_downloaded_weights(tmp_path):
    loss = L.PerceptualLoss()  # random weights: shape check only; real weights come from a local file
    a = torch.rand(1, 1, 32, 32)
    assert loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(a, torch.rand(1, 1, 32, 32)).item() > 0
    from safetensors.torch import save_file
    save_file({f"features.{k}": v for k, v in loss.features.state_dict().items()}, str(tmp_path / "vgg.safetensors"))
    L.load_perceptual_weights(L.PerceptualLoss(), tmp_path / "vgg.safetensors")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        L.load_perceptual_weights(loss, tmp_path / "missing.pth")
