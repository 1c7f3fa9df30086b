import pytest
import torch

from maskgit.training.ema import EMA


def test_ema_follows_the_reference_formula():
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.9)
    start = ema.shadow.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.shadow.weight, 0.9 * start + 0.1 * model.weight)
    assert not ema.shadow.training and not ema.shadow.weight.requires_grad
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)
