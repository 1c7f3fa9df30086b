import math

import pytest
import torch

from maskgit.schedules import SCHEDULES, canonical_schedule, mask_ratio

ALL = list(SCHEDULES) + ["uniform", "pow2", "pow3", "pow0.5", "pow1.7", "log", "exp"]


@pytest.mark.parametrize("name", ALL)
def test_endpoints_and_monotone(name):
    r = torch.linspace(0, 1, 1001)
    g = mask_ratio(r, name, num_tokens=256)
    assert g.shape == r.shape
    assert torch.all(g[1:] <= g[:-1] + 1e-7), "gamma must be non-increasing"
    assert g.min() >= 1e-6 and g.max() <= 1.0
    assert g[-1].item() == pytest.approx(1e-6)  # official clip: gamma(1) -> 1e-6
    if canonical_schedule(name) != "exp":
        assert g[0].item() == 1.0
    else:
        assert g[0].item() == pytest.approx(1 - 1 / 256)  # official exp form at r = 0


@pytest.mark.parametrize("paper,official", [("linear", "uniform"), ("square", "pow2"), ("cubic", "pow3"),
                                            ("square-root", "pow0.5"), ("logarithmic", "log"),
                                            ("exponential", "exp"), ("cosine", "cosine")])
def test_paper_and_official_names_agree(paper, official):
    r = torch.rand(100)
    assert torch.equal(mask_ratio(r, paper, 64), mask_ratio(r, official, 64))


def test_reference_formulas():
    n = 256
    for r in [0.1, 0.25, 0.5, 0.9]:
        rt = torch.tensor(r, dtype=torch.float64)
        assert mask_ratio(rt, "cosine").item() == pytest.approx(math.cos(math.pi / 2 * r))
        assert mask_ratio(rt, "square").item() == pytest.approx(1 - r**2)
        assert mask_ratio(rt, "cubic").item() == pytest.approx(1 - r**3)
        assert mask_ratio(rt, "sqrt").item() == pytest.approx(1 - r**0.5)
        assert mask_ratio(rt, "linear").item() == pytest.approx(1 - r)
        assert mask_ratio(rt, "log", n).item() == pytest.approx(-math.log2(r) / math.log2(n))
        assert mask_ratio(rt, "exp", n).item() == pytest.approx(1 - 2 ** (-math.log2(n) * (1 - r)))
        assert mask_ratio(rt, "arccos").item() == pytest.approx(math.acos(r) * 2 / math.pi)


def test_float32_by_default_matches_official_rounding():
    # SPEC: at T = 12, step 7 (r = 8/12), N = 256 gives 127 masked tokens in float32, 128 in float64.
    r = 8 / 12
    assert math.floor(256 * mask_ratio(r, "cosine").item()) == 127
    assert math.floor(256 * mask_ratio(torch.tensor(r, dtype=torch.float64), "cosine").item()) == 128


def test_bad_names_and_missing_num_tokens():
    with pytest.raises(ValueError, match="unknown mask schedule"):
        mask_ratio(0.5, "bogus")
    with pytest.raises(ValueError, match="unknown mask schedule"):
        mask_ratio(0.5, "pow-1")
    with pytest.raises(ValueError, match="num_tokens"):
        mask_ratio(0.5, "log")


def test_per_sample_num_tokens_broadcast():
    n = torch.tensor([16, 64, 256])
    got = mask_ratio(torch.tensor(0.5), "exp", n)
    assert torch.allclose(got, torch.stack([mask_ratio(0.5, "exp", int(k)) for k in n]))
