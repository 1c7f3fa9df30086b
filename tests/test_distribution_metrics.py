"""FD, improved precision/recall and IS against independent computations; the ADM .npz formats;
the Inception path end to end with a randomly initialised network of the standard architecture."""
import io
import json

import numpy as np
import pytest
import torch

from maskgit.evaluation.frechet import feature_statistics, frechet_distance, frechet_distance_between
from maskgit.evaluation.image_sets import (
    load_image_set,
    save_batch,
    save_stats,
    to_float_nchw,
    to_uint8_nhwc,
)
from maskgit.evaluation.inception_score import inception_score
from maskgit.evaluation.precision_recall import knn_radii, precision_recall


def scipy_frechet(a, b):
    """An independent float64 FD: scipy's matrix square root of S1 S2."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("dim,shift", [(4, 0.0), (16, 0.5), (64, 2.0)])
def test_frechet_matches_scipy_on_random_gaussians(dim, shift):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(3000, dim))
    b = rng.normal(size=(2500, dim)) @ (np.eye(dim) + 0.3 * rng.normal(size=(dim, dim))) + shift
    assert frechet_distance_between(a, b) == pytest.approx(scipy_frechet(a, b), rel=1e-7)
    assert frechet_distance_between(a, a) == pytest.approx(0.0, abs=1e-8)


def test_knn_radii_exclude_the_point_itself():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(x, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(x, k=3).tolist() == [7.0, 6.0, 4.0, 7.0]


def test_precision_recall_same_distribution_and_far_apart():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    same = precision_recall(real, fake, k=3)
    assert same["precision"] > 0.85 and same["recall"] > 0.85  # k = 3 balls in 8-d miss a few points
    far = precision_recall(real, fake + 100.0, k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0


def test_precision_recall_separate_the_two_failure_modes():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(2000, 2))
    collapsed = rng.normal(size=(2000, 2)) * 0.1  # inside the real manifold, covers little of it
    p_r = precision_recall(real, collapsed, k=3)
    assert p_r["precision"] > 0.95 and p_r["recall"] < 0.3


def test_inception_score_bounds():
    c = 7
    assert inception_score(np.full((70, c), 1 / c))["mean"] == pytest.approx(1.0)
    constant = np.zeros((70, c))
    constant[:, 2] = 1
    assert inception_score(constant)["mean"] == pytest.approx(1.0)
    onehot = np.eye(c)[np.arange(700) % c]  # every class used equally, in every split (700 / 10 = 70 = 10 * 7)
    score = inception_score(onehot[np.argsort(np.arange(700) % 10, kind="stable")], splits=1)
    assert score["mean"] == pytest.approx(c)
    assert inception_score(onehot, splits=10)["mean"] == pytest.approx(c, rel=0.05)  # shuffled splits


def test_uint8_round_trip_and_adm_batch_format(tmp_path):
    images = torch.rand(5, 3, 6, 4)
    array = to_uint8_nhwc(images)
    assert array.dtype == np.uint8 and array.shape == (5, 6, 4, 3)
    assert np.array_equal(to_uint8_nhwc(to_float_nchw(array)), array)
    labels = np.array([0, 3, 1, 1, 2])
    save_batch(tmp_path / "b.npz", array, labels)
    raw = np.load(tmp_path / "b.npz")  # exactly what the ADM evaluator reads
    assert sorted(raw.files) == ["arr_0", "arr_1"] and raw["arr_0"].dtype == np.uint8
    loaded = load_image_set(tmp_path / "b.npz")
    assert np.array_equal(loaded.images, array) and np.array_equal(loaded.labels, labels)


def test_adm_reference_statistics_read_and_written(tmp_path):
    rng = np.random.default_rng(0)
    mu, sigma = feature_statistics(rng.normal(size=(100, 5)))
    np.savez(tmp_path / "adm.npz", mu=mu, sigma=sigma, mu_s=mu, sigma_s=sigma)  # as ADM's reference batches
    ref = load_image_set(tmp_path / "adm.npz")
    assert ref.images is None and np.array_equal(ref.stats["mu"], mu) and ref.meta == {}
    save_stats(tmp_path / "ours.npz", mu, sigma, {"num_images": 100}, features=np.zeros((3, 5), np.float32))
    ours = load_image_set(tmp_path / "ours.npz")
    assert ours.meta == {"num_images": 100} and ours.stats["features"].shape == (3, 5) and len(ours) == 100
    assert frechet_distance(ours.stats["mu"], ours.stats["sigma"], mu, sigma) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("content,message", [(b"not a zip", "not a readable .npz"), (None, "neither images")])
def test_bad_npz_files_are_refused(tmp_path, content, message):
    path = tmp_path / "x.npz"
    if content is None:
        np.savez(path, other=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_image_set(path)


def test_image_folder_is_read(tmp_path):
    from maskgit.images import save_image

    images = torch.rand(3, 1, 5, 5)
    for i, image in enumerate(images):
        save_image(image, tmp_path / "sub" / f"{i}.png")
    loaded = load_image_set(tmp_path)
    assert loaded.images.shape == (3, 5, 5, 1) and np.array_equal(loaded.images, to_uint8_nhwc(images))


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    """torch-fidelity's Inception-v3 architecture with random weights, saved as the user's weight file."""
    from maskgit.evaluation.inception import inception_class

    cls = inception_class()
    empty = io.BytesIO()
    torch.save({}, empty)
    original = cls.load_state_dict
    cls.load_state_dict = lambda self, state, strict=True: None  # keep the random initialisation
    try:
        torch.manual_seed(0)
        model = cls("random", ["2048"], feature_extractor_weights_path=io.BytesIO(empty.getvalue()))
    finally:
        cls.load_state_dict = original
    path = tmp_path_factory.mktemp("inception") / "inception-random.pth"
    torch.save(model.state_dict(), path)
    return path


def test_inception_extractor_reads_the_weight_file(random_inception):
    from maskgit.evaluation.features import file_sha256, load_extractor

    extractor = load_extractor("inception", inception_weights=random_inception)
    assert extractor.describe()["weights_sha256"] == file_sha256(random_inception)
    gray = np.random.default_rng(0).integers(0, 256, size=(2, 8, 8, 1), dtype=np.uint8)
    feats, probs = extractor(gray, progress=False)
    assert feats.shape == (2, 2048) and probs.shape == (2, 1008) and np.allclose(probs.sum(1), 1)
    rgb_feats, _ = extractor(np.repeat(gray, 3, axis=-1), progress=False)
    assert np.array_equal(feats, rgb_feats)  # grayscale is repeated to three channels


@pytest.mark.slow  # 2048-d covariances and 8 Inception passes: about a minute on 2 shared cores
def test_inception_path_end_to_end(random_inception, tmp_path, capsys):
    from maskgit.cli import main

    rng = np.random.default_rng(0)
    save_batch(tmp_path / "dump.npz", rng.integers(0, 256, size=(4, 8, 8, 1), dtype=np.uint8))  # gray -> RGB
    save_batch(tmp_path / "ref.npz", rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8))
    assert main(["metrics", str(tmp_path / "dump.npz"), "--ref", str(tmp_path / "ref.npz"), "--features", "inception",
                 "--inception-weights", str(random_inception), "--cache-dir", str(tmp_path / "cache"),
                 "--is-splits", "2", "--out", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    g = result["generated"]
    assert result["features"]["spec"] == "inception" and len(result["features"]["weights_sha256"]) == 64
    assert np.isfinite(g["frechet_distance"]) and 0 <= g["precision"] <= 1 and 0 <= g["recall"] <= 1
    assert g["inception_score"]["mean"] >= 1 - 1e-9 and (tmp_path / "r.png").is_file()
    cache = load_image_set(result["reference"]["cache"])
    assert cache.stats["mu"].shape == (2048,) and cache.stats["probs"].shape == (4, 1008)
    assert cache.meta["features"]["weights_sha256"] == result["features"]["weights_sha256"]


def test_inception_weights_missing_or_wrong(tmp_path):
    from maskgit.evaluation.inception import INCEPTION_WEIGHTS_URL, load_inception

    with pytest.raises(FileNotFoundError, match="--inception-weights") as err:
        load_inception(None)
    assert INCEPTION_WEIGHTS_URL in str(err.value)
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="does not fit"):
        load_inception(tmp_path / "w.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a PyTorch weights file"):
        load_inception(tmp_path / "junk.pth")


def test_score_features_is_the_one_scoring_path_and_gives_none_for_too_few_vectors():
    from maskgit.evaluation.metrics import feature_reference, score_features

    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(200, 4)), rng.normal(size=(50, 4)) + 0.5
    probs = np.eye(3)[rng.integers(0, 3, 50)]
    s = score_features(fake, probs, probs.argmax(1), feature_reference(real), splits=None, agreement=True)
    assert s["frechet_distance"] == pytest.approx(frechet_distance_between(fake, real), rel=1e-12)
    assert s["precision"] == precision_recall(real, fake, 3)["precision"] and s["class_agreement"] == 1.0
    assert "inception_score" not in s  # splits=None: not computed
    few = score_features(fake[:3], probs[:3], None, feature_reference(real), k=3)  # k nearest need more than k
    assert few["precision"] is None and few["recall"] is None and few["frechet_distance"] is not None
    one = score_features(fake[:1], probs[:1], None, feature_reference(real[:1]))  # no covariance
    assert one["frechet_distance"] is None and feature_reference(real[:1])["mu"] is None
