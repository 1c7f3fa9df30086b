"""Pure functions of maskgit.editing: token masks, blurred compositing, window layout."""
import pytest
import torch

from maskgit.editing import blur_mask, box_mask, composite, pad_canvas, pixel_to_token_mask, window_origins


def test_token_is_unknown_iff_its_patch_touches_the_mask():
    mask = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    mask[0, 0, 5, 9] = True  # one pixel in token (1, 2) for factor 4
    tokens = pixel_to_token_mask(mask, 4)
    assert tokens.shape == (1, 4, 4)
    assert tokens.nonzero().tolist() == [[0, 1, 2]]
    grown = pixel_to_token_mask(mask, 4, dilate=1)
    assert int(grown.sum()) == 9 and grown[0, 0:3, 1:4].all()


@pytest.mark.parametrize("factor,size", [(2, 8), (4, 28), (16, 64)])
def test_random_masks_match_bruteforce(factor, size):
    g = torch.Generator().manual_seed(factor)
    mask = torch.rand(3, 1, size, size, generator=g) > 0.97
    tokens = pixel_to_token_mask(mask, factor)
    n = size // factor
    for b in range(3):
        for i in range(n):
            for j in range(n):
                touch = bool(mask[b, 0, i * factor:(i + 1) * factor, j * factor:(j + 1) * factor].any())
                assert bool(tokens[b, i, j]) == touch


def test_composite_keeps_far_pixels_exact():
    g = torch.Generator().manual_seed(0)
    original, generated = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    mask = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    mask[:, :, 10:20, 12:18] = True
    radius = 4
    out = composite(original, generated, mask, radius)
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    # Chebyshev distance to the box; the separable kernel has a square support of half-width `radius`.
    dy = torch.clamp(torch.maximum(10 - ys, ys - 19), min=0)
    dx = torch.clamp(torch.maximum(12 - xs, xs - 17), min=0)
    far = torch.maximum(dy, dx) > radius
    assert torch.equal(out[..., far], original[..., far])
    assert not torch.equal(out[..., ~far], original[..., ~far])
    soft = blur_mask(mask, radius)
    assert soft.min() >= 0 and soft.max() <= 1 and soft[:, :, 15, 15].lt(1).all()
    inside = mask.expand_as(original)
    assert torch.equal(out[inside], generated[inside])  # masked pixels are fully regenerated
    assert torch.equal(composite(original, generated, mask, 0)[mask.expand_as(original)], generated[mask.expand_as(original)])


def test_window_origins_cover_the_canvas():
    for size, window, overlap in [(7, 7, 3), (28, 7, 3), (30, 7, 0), (16, 4, 2), (33, 16, 8)]:
        starts = window_origins(size, window, overlap)
        covered = torch.zeros(size, dtype=torch.bool)
        for s in starts:
            covered[s:s + window] = True
        assert covered.all() and starts[0] == 0 and starts[-1] == size - window
    with pytest.raises(ValueError, match="smaller"):
        window_origins(5, 7, 3)


def test_box_and_pad_validation():
    images = torch.rand(2, 1, 28, 28)
    m = box_mask(images, (4, 8, 12, 20))
    assert m.shape == (2, 1, 28, 28) and int(m[0].sum()) == 8 * 12
    for bad in [(0, 0, 29, 10), (10, 0, 5, 10), (-1, 0, 4, 4)]:
        with pytest.raises(ValueError, match="box"):
            box_mask(images, bad)
    canvas, new = pad_canvas(images, (4, 0, 8, 0), 4)
    assert canvas.shape == (2, 1, 28, 40) and torch.equal(canvas[..., 4:32], images)
    assert new[..., 4:32].sum() == 0 and new[..., :4].all() and new[..., 32:].all()
    with pytest.raises(ValueError, match="multiples"):
        pad_canvas(images, (3, 0, 0, 0), 4)
