import numpy as np
import pytest
import torch

from maskgit.evaluation.frechet import frechet_distance, frechet_distance_between


def test_identical_sets_give_zero_and_shift_gives_squared_norm():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 8))
    assert frechet_distance_between(x, x) == pytest.approx(0.0, abs=1e-6)
    shift = np.arange(8) * 0.1
    assert frechet_distance_between(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_diagonal_closed_form():
    # For diagonal covariances: sum (mu1 - mu2)^2 + sum (s1 - s2)^2 with s the standard deviations.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    got = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum(), rel=1e-9)


def test_classifier_shapes():
    from maskgit.evaluation.classifier import Classifier, ClassifierConfig, predict

    model = Classifier(ClassifierConfig())
    preds, feats = predict(model, torch.rand(7, 1, 28, 28), batch_size=3)
    assert preds.shape == (7,) and feats.shape == (7, 128) and preds.max() < 10


def test_matches_scipy_sqrtm_reference():
    from scipy import linalg

    from maskgit.evaluation.frechet import feature_statistics

    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16))
    b = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) + 1
    (m1, s1), (m2, s2) = feature_statistics(a), feature_statistics(b)
    ref = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-8)
