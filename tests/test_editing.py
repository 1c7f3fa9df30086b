"""Editing tasks end to end with the real tiny tokenizer + transformer (random weights)."""
import pytest
import torch

from maskgit import MaskGIT
from maskgit.config import ModelConfig
from maskgit.editing import fill_canvas, pixel_to_token_mask
from maskgit.presets import TOKENIZER_PRESETS, TRANSFORMER_PRESETS


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    cfg = ModelConfig(tokenizer=TOKENIZER_PRESETS["tiny"], transformer=TRANSFORMER_PRESETS["tiny"])
    return MaskGIT.from_config(cfg).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_inpaint_keeps_tokens_and_far_pixels(pipe, images):
    mask = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    mask[..., 0:2, 0:2] = True  # the top-left token only (factor 2)
    before = pipe.tokenizer.encode(images)
    out = pipe.inpaint(images, mask, labels=[1, 2, 3], blur_radius=2, generator=g())
    assert out.shape == images.shape
    # Pixels farther than the blur radius from the mask equal the original bit for bit.
    assert torch.equal(out[..., 5:, :], images[..., 5:, :]) and torch.equal(out[..., :, 5:], images[..., :, 5:])
    # Tokens outside the token mask are frozen through decoding.
    unknown = pixel_to_token_mask(mask, 2)
    tokens = before.masked_fill(unknown, pipe.transformer.config.mask_id)
    filled = fill_canvas(pipe, tokens, torch.tensor([1, 2, 3]), generator=g())
    assert torch.equal(filled[~unknown], before[~unknown])
    assert not (filled == pipe.transformer.config.mask_id).any()


def test_inpaint_null_class_and_determinism(pipe, images):
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[..., 2:6, 2:6] = True
    a = pipe.inpaint(images, mask, generator=g(3))
    b = pipe.inpaint(images, mask, generator=g(3))
    assert torch.equal(a, b)


def test_outpaint_grows_and_keeps_original(pipe, images):
    out = pipe.outpaint(images, pad=(2, 4, 6, 0), labels=[0, 0, 0], generator=g())
    assert out.shape == (3, 1, 12, 16)
    assert torch.equal(out[..., 4:12, 2:10], images)


def test_extrapolate_four_times_wider(pipe, images):
    out = pipe.extrapolate(images, width=32, labels=[1, 1, 1], generator=g(), overlap=2)
    assert out.shape == (3, 1, 8, 32)
    assert torch.equal(out[..., :8], images)
    # The canvas is consistent: every token decided, the known ones unchanged.
    canvas = torch.full((3, 4, 16), pipe.transformer.config.mask_id)
    canvas[:, :, :4] = pipe.tokenizer.encode(images)
    filled = fill_canvas(pipe, canvas, torch.tensor([1, 1, 1]), overlap=2, generator=g())
    assert not (filled == pipe.transformer.config.mask_id).any()
    assert torch.equal(filled[:, :, :4], canvas[:, :, :4])
    raster = fill_canvas(pipe, canvas, torch.tensor([1, 1, 1]), overlap=2, order="raster", generator=g())
    assert not (raster == pipe.transformer.config.mask_id).any()


def test_class_edit_box(pipe, images):
    out = pipe.edit(images, box=(0, 0, 4, 4), labels=[5, 6, 7], blur_radius=0, generator=g())
    # The box grows by one token (2 px) for decoding, but compositing with radius 0 keeps everything
    # outside the box exactly.
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[0:4, 0:4] = False
    assert torch.equal(out[..., outside], images[..., outside])


def test_bad_editing_inputs(pipe, images):
    with pytest.raises(ValueError, match="mask must be"):
        pipe.inpaint(images, torch.zeros(3, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="box"):
        pipe.edit(images, box=(0, 0, 9, 4), labels=[1, 1, 1])
    with pytest.raises(ValueError, match="multiple"):
        pipe.inpaint(torch.rand(3, 1, 9, 9), torch.zeros(3, 1, 9, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="\\(B, 1, H, W\\)|shape"):
        pipe.inpaint(torch.rand(3, 3, 8, 8), torch.zeros(3, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="out of range"):
        pipe.edit(images, box=(0, 0, 4, 4), labels=[10, 1, 1])
    with pytest.raises(ValueError, match="multiples"):
        pipe.outpaint(images, pad=(1, 0, 0, 0))
    with pytest.raises(ValueError, match="smaller"):
        pipe.inpaint(torch.rand(1, 1, 4, 4), torch.ones(1, 1, 4, 4, dtype=torch.bool))


@pytest.mark.parametrize("bad,message", [
    (lambda x: (x * 255).round().to(torch.uint8), "floats"),
    (lambda x: x * 255, "lie in \\[0, 1\\]"),
    (lambda x: x - 0.5, "lie in \\[0, 1\\]"),
    (lambda x: x.masked_fill(x > 0.5, float("nan")), "lie in \\[0, 1\\]"),
    (lambda x: x.numpy(), "torch tensor"),
])
def test_images_of_the_wrong_type_or_range_are_refused(pipe, images, bad, message):
    mask = torch.ones(3, 1, 8, 8, dtype=torch.bool)
    with pytest.raises((ValueError, TypeError), match=message):
        pipe.inpaint(bad(images), mask)


def test_bad_editing_geometry_is_refused(pipe, images):
    with pytest.raises(ValueError, match="four integer"):
        pipe.edit(images, box=(0, 0, 4), labels=[1, 1, 1])
    with pytest.raises(ValueError, match="integer"):
        pipe.outpaint(images, pad=(2.5, 0, 0, 0))
    with pytest.raises(ValueError, match="several smaller steps"):
        pipe.outpaint(images, pad=(0, 0, 400000, 400000))  # refused before allocating the canvas
    with pytest.raises(ValueError, match="overlap"):
        pipe.extrapolate(images, 32, overlap=4)  # the tiny grid is 4 tokens wide
    with pytest.raises(ValueError, match="multiple of the tokenizer factor"):
        pipe.extrapolate(images, 13)
    with pytest.raises(ValueError, match="must exceed"):
        pipe.edit(images, box=(0, 0, 4, 4), labels=[1, 1, 1], steps=2)


def test_an_empty_mask_warns_and_returns_the_input(pipe, images):
    with pytest.warns(UserWarning, match="selects no pixel"):
        out = pipe.inpaint(images, torch.zeros(3, 1, 8, 8, dtype=torch.bool), generator=g())
    assert torch.equal(out, images)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_run_in_the_models_dtype(pipe, images, dtype):
    mask = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    mask[..., :4, :4] = True
    out = pipe.inpaint(images.to(dtype), mask, generator=g())
    assert out.shape == images.shape and torch.isfinite(out).all()
