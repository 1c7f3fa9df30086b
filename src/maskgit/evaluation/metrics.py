"""`maskgit metrics`: Frechet distance, IS, improved precision / recall and CAS of a sample dump.

The dump is scored against a reference (images, a dump, or mu/sigma statistics) on one feature
extractor (`features.py`). Real image sets are reduced to features once and cached as a statistics
`.npz` keyed by their content hash and the extractor's weight hash; an optional real baseline set of
the same size scored the same way gives the values real data reaches. As the ADM evaluator does, a set
whose `.npz` holds `mu` / `sigma` (the ADM ImageNet reference batches hold images too) gets its Frechet
distance from them, and precision / recall and IS from its images. Results record every setting that
affects a number and which statistics were used, with a warning for sets under 1,000 images, and a PNG
sample sheet goes beside them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .features import FeatureExtractor, load_extractor
from .frechet import feature_statistics, few_images_warnings, frechet_distance
from .image_sets import ImageSet, content_hash, load_image_set, save_stats
from .inception_score import inception_score
from .precision_recall import precision_recall


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "maskgit" / "reference-stats"


def _check_stats_extractor(image_set: ImageSet, extractor: FeatureExtractor) -> None:
    made_by = image_set.meta.get("features", {}).get("weights_sha256")
    if made_by is not None and made_by != extractor.weights_sha256:
        raise ValueError(f"{image_set.source} was computed with other feature weights ({made_by[:12]}...) than "
                         f"--features {extractor.spec} ({extractor.weights_sha256[:12]}...); recompute it")
    dim = image_set.stats["mu"].shape[0]
    expected = {"inception": 2048}.get(extractor.spec)
    if expected and dim != expected:
        raise ValueError(f"{image_set.source} holds {dim}-d statistics but {extractor.spec} features are {expected}-d")


def set_statistics(path: str | Path, extractor: FeatureExtractor, *, cache_dir: Path | None = None,
                   batch_size: int = 250, progress: bool = True) -> tuple[ImageSet, dict]:
    """A real image set and its statistics {mu, sigma[, features, probs]} (+ "cache": path), cached."""
    image_set = load_image_set(path)
    if image_set.images is None:  # statistics file: the ADM reference batches, or our cache
        _check_stats_extractor(image_set, extractor)
        return image_set, {**image_set.stats, "cache": None, "frechet_from": FROM_FILE}
    extractor.check(image_set.images, str(path))
    cache = None
    if cache_dir is not None:
        key = f"{content_hash(path)[:20]}-{extractor.weights_sha256[:12]}"
        cache = Path(cache_dir) / f"{key}.npz"
        if cache.is_file():
            cached = load_image_set(cache)
            return image_set, frechet_statistics(image_set, {**cached.stats, "cache": str(cache)}, extractor)
    features, probs = extractor(image_set.images, batch_size, desc=f"features {Path(path).name}", progress=progress)
    mu, sigma = feature_statistics(features)
    if cache is not None:
        meta = {"source": str(path), "num_images": len(features), "features": extractor.describe()}
        save_stats(cache, mu, sigma, meta, features=features, probs=probs)
    stats = {"mu": mu, "sigma": sigma, "features": features, "probs": probs,
             "cache": None if cache is None else str(cache)}
    return image_set, frechet_statistics(image_set, stats, extractor)


FROM_FILE, FROM_IMAGES = "mu/sigma of the file", "features of the images"


def frechet_statistics(image_set: ImageSet, stats: dict, extractor: FeatureExtractor) -> dict:
    """`stats` of a set's images, with the mu / sigma its Frechet distance uses: its file's own when it has them
    (the ADM evaluator's rule) and they are of the features' dimension, else its images' ("frechet_from" says)."""
    if "mu" not in image_set.stats:
        return {**stats, "frechet_from": FROM_IMAGES}
    dim, file_dim = stats["features"].shape[1], len(image_set.stats["mu"])
    if file_dim != dim:
        return {**stats, "frechet_from": FROM_IMAGES,
                "note": f"{image_set.source} holds {file_dim}-d mu/sigma but the {extractor.spec} features are "
                        f"{dim}-d, so its Frechet distance uses the features of its images"}
    return {**stats, "mu": image_set.stats["mu"], "sigma": image_set.stats["sigma"], "frechet_from": FROM_FILE}


def feature_reference(features: np.ndarray) -> dict:
    """A real set's features as `score_features` takes them: {features, mu, sigma} (mu, sigma None for fewer than
    two vectors, which have no covariance)."""
    mu, sigma = feature_statistics(features) if len(features) >= 2 else (None, None)
    return {"features": features, "mu": mu, "sigma": sigma}


def score_features(features: np.ndarray, probs: np.ndarray, labels: np.ndarray | None, reference: dict, *,
                   k: int = 3, splits: int | None = 10, seed: int = 0, agreement: bool = False,
                   statistics: dict | None = None) -> dict:
    """The scores of `maskgit metrics` and `maskgit evaluate`: Frechet distance, precision / recall (if the
    reference has features), IS (splits shuffled with `seed`; None: not computed) and class agreement.

    The Frechet distance uses `statistics` (mu, sigma) when given, else those of `features`. A score that too few
    vectors cannot give is None: the Frechet distance below two on either side, precision / recall at k or fewer.
    """
    own = statistics or feature_reference(features)
    mu, sigma, ref_mu = own["mu"], own["sigma"], reference.get("mu")
    if mu is not None and ref_mu is not None and len(mu) != len(ref_mu):
        raise ValueError(f"the reference statistics are {len(ref_mu)}-d but the set's are {len(mu)}-d; "
                         f"pass a reference made with the same --features")
    out = {"num_images": len(features), "frechet_distance": None if mu is None or ref_mu is None else
           frechet_distance(mu, sigma, ref_mu, reference["sigma"])}
    if "features" not in reference:
        out.update(precision=None, recall=None, k=k, note="the reference holds statistics only (no features), "
                                                          "so precision / recall cannot be computed")
    elif min(len(features), len(reference["features"])) <= k:  # k nearest neighbours need more than k vectors
        out.update(precision=None, recall=None, k=k, note=f"precision / recall need more than k = {k} images in "
                                                          f"each set")
    else:
        out.update(precision_recall(reference["features"], features, k))
    if splits is not None:
        out["inception_score"] = inception_score(probs, splits, seed) if len(probs) >= splits else None
    if agreement and labels is not None:
        out["class_agreement"] = float((probs.argmax(1) == labels).mean())
    return out


def _frechet_source(stats: dict) -> dict:
    """Which statistics a set's Frechet distance used, and why when its file's own were not used."""
    return {key: stats[key] for key in ("frechet_from", "note") if key in stats}


def _describe_set(path: str | Path, image_set: ImageSet, stats: dict, splits: int, seed: int) -> dict:
    kind = " and ".join(k for k, has in (("images", image_set.images is not None), ("statistics", image_set.stats))
                        if has)
    info = {"path": str(path), "sha256": content_hash(path), "num_images": len(image_set) or None, "kind": kind,
            **_frechet_source(stats), "cache": stats.get("cache")}
    if "probs" in stats:
        probs = stats["probs"]
        info["inception_score"] = inception_score(probs, splits, seed) if len(probs) >= splits else None
    return info


def _dump_settings(path: Path) -> dict | None:
    import json

    settings = path.with_suffix(".json")
    if path.suffix != ".npz" or not settings.is_file():
        return None
    try:
        found = json.loads(settings.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return {key: value for key, value in found.items() if key != "model_config"} if isinstance(found, dict) else None


def compute_metrics(dump: str | Path, ref: str | Path, *, features: str = "inception",
                    inception_weights: str | Path | None = None, baseline: str | Path | None = None,
                    cas: bool = False, cas_epochs: int = 10, k: int = 3, splits: int = 10,
                    cache_dir: str | Path | None = None, batch_size: int = 250, device: str = "cpu",
                    seed: int = 0, progress: bool = True) -> tuple[dict, ImageSet]:
    """Score the images of `dump` against `ref` (and `baseline` against `ref`); returns (results, dump set).

    Args:
        dump: a sample dump `.npz` (or any image set); ref: images, a dump or a mu/sigma `.npz`.
        features: `inception` (needs `inception_weights`) or `classifier:NAME_OR_DIR`.
        baseline: a real image set (e.g. training images, as many as the dump) scored the same way.
        cas: also train classifiers on the dump and on `baseline` and test them on `ref` (needs labels).
        cache_dir: where real-set statistics are cached (None: no cache).
    """
    start = time.time()
    extractor = load_extractor(features, inception_weights=inception_weights, device=device)
    generated = load_image_set(dump)
    if generated.images is None:
        raise ValueError(f"{dump} holds statistics, not images; pass the sample dump .npz or an image folder")
    extractor.check(generated.images, str(dump))
    if cas and (generated.labels is None or baseline is None):
        raise ValueError("--cas needs a labelled dump (arr_1) and --baseline, a labelled real training set")
    cache_dir = None if cache_dir is None else Path(cache_dir)
    ref_set, ref_stats = set_statistics(ref, extractor, cache_dir=cache_dir, batch_size=batch_size, progress=progress)
    gen_feats, gen_probs = extractor(generated.images, batch_size, desc="features dump", progress=progress)
    gen_stats = frechet_statistics(generated, {"features": gen_feats}, extractor)
    agreement = features.startswith("classifier:")
    options = {"k": k, "splits": splits, "seed": seed, "agreement": agreement}
    result = {"features": extractor.describe(), "k": k, "is_splits": splits, "seed": seed, "batch_size": batch_size,
              "device": str(device),
              "dump": {"path": str(dump), "sha256": content_hash(dump), "settings": _dump_settings(Path(dump)),
                       **_frechet_source(gen_stats)},
              "reference": _describe_set(ref, ref_set, ref_stats, splits, seed),
              "generated": score_features(gen_feats, gen_probs, generated.labels, ref_stats, **options,
                                          statistics=gen_stats if gen_stats["frechet_from"] == FROM_FILE else None)}
    counts = {"generated": len(gen_feats), "reference": len(ref_set) or None}  # None: statistics of unknown size
    base_set = None
    if baseline is not None:
        base_set, base_stats = set_statistics(baseline, extractor, cache_dir=cache_dir, batch_size=batch_size,
                                              progress=progress)
        if "features" not in base_stats:
            raise ValueError(f"--baseline {baseline} holds statistics only; pass real images")
        result["baseline"] = {**_describe_set(baseline, base_set, base_stats, splits, seed),
                              **score_features(base_stats["features"], base_stats["probs"], base_set.labels,
                                               ref_stats, **options, statistics=base_stats)}
        counts["baseline"] = len(base_set)
    result["warnings"] = few_images_warnings(counts)
    if cas:
        result["cas"] = _cas(generated, ref_set, base_set, cas_epochs, seed, progress)
    result["seconds"] = round(time.time() - start, 1)
    return result, generated


def _cas(generated: ImageSet, ref_set: ImageSet, base_set: ImageSet, epochs: int, seed: int,
         progress: bool = True) -> dict:
    from .cas import classification_accuracy_score

    for name, s in (("--ref", ref_set), ("--baseline", base_set)):
        if s.images is None or s.labels is None:
            raise ValueError(f"--cas needs {name} {s.source} to hold labelled images (arr_0 and arr_1)")
    return classification_accuracy_score(generated.images, generated.labels, ref_set.images, ref_set.labels,
                                         base_set.images, base_set.labels, epochs=epochs, seed=seed,
                                         progress=progress)


def sample_sheet(image_set: ImageSet, path: str | Path, per_class: int = 10) -> Path:
    """A PNG of the first `per_class` images of every class (one row each), or of the first 100 images."""
    from ..images import save_grid
    from .image_sets import to_float_nchw

    if image_set.labels is None:
        picked = np.arange(min(100, len(image_set.images)))
    else:
        picked = np.concatenate([np.flatnonzero(image_set.labels == c)[:per_class]
                                 for c in np.unique(image_set.labels)])
    return save_grid(to_float_nchw(image_set.images[picked]), path, nrow=per_class)


def evaluate_dump(dump: str | Path, ref: str | Path, out: str | Path, *, overwrite: bool = False,
                  no_cache: bool = False, cache_dir: str | Path | None = None, **options) -> dict:
    """`compute_metrics`, then write `out` (JSON) and the sample sheet `out` .png beside it."""
    from ..atomic import write_json_atomic
    from ..outputs import result_paths

    out, png = result_paths(out, overwrite)
    for name, path in (("DUMP", dump), ("--ref", ref), ("--baseline", options.get("baseline"))):
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{name} {path} not found")
    cache = None if no_cache else Path(cache_dir) if cache_dir else default_cache_dir()
    result, generated = compute_metrics(dump, ref, cache_dir=cache, **options)
    result["sample_sheet"] = sample_sheet(generated, png).name
    write_json_atomic(out, result)
    return result
