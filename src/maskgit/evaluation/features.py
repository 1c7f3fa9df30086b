"""Feature extractors for the distribution metrics, named by a spec string.

`inception`: Inception-v3 pool3 features + 1008-way logits (the standard FID / IS network, `inception.py`);
`classifier:NAME_OR_DIR`: the project's judge classifier (128-d penultimate features + its class logits),
which makes the same Frechet distance, precision / recall and IS work offline on small datasets. Each
extractor maps uint8 (M, H, W, C) images to (features, class probabilities) and describes itself (name,
weight file and its SHA-256) so results say exactly which network produced them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FeatureExtractor:
    """uint8 (B, C, H, W) -> (features (B, D), logits (B, K)), plus what the results must record."""

    spec: str
    network: str
    weights: str
    weights_sha256: str
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    input_shape: tuple[int, int, int] | None = None  # (C, H, W) the network needs; None = any size

    def describe(self) -> dict:
        return {"spec": self.spec, "network": self.network, "weights": self.weights,
                "weights_sha256": self.weights_sha256}

    def check(self, images: np.ndarray, source: str) -> None:
        if self.input_shape is None:
            return
        c, h, w = self.input_shape
        if images.shape[1:] != (h, w, c):
            raise ValueError(f"{source} has {images.shape[1]}x{images.shape[2]}x{images.shape[3]} (HxWxC) images "
                             f"but the {self.spec} features need {h}x{w}x{c}; use features made for these images")

    def __call__(self, images: np.ndarray, batch_size: int = 250, desc: str = "features",
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(M, H, W, C) uint8 -> (features (M, D) float32, probabilities (M, K) float64)."""
        feats, probs = [], []
        for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).permute(0, 3, 1, 2)
            f, logits = self.forward(batch)
            feats.append(f.float().numpy())
            probs.append(logits.double().softmax(-1).numpy())
        return np.concatenate(feats), np.concatenate(probs)


def _classifier_extractor(name_or_dir: str, device: str) -> FeatureExtractor:
    from .classifier import load_classifier, resolve_classifier

    directory = resolve_classifier(name_or_dir)
    model = load_classifier(directory, device)

    @torch.inference_mode()
    def forward(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = model.features(images.to(device).float() / 255.0)
        return f.cpu(), model.logits_head(f).cpu()

    cfg = model.config
    weights = directory / "classifier.safetensors"
    return FeatureExtractor(f"classifier:{name_or_dir}", f"maskgit judge classifier ({cfg.feature_dim}-d features)",
                            str(weights), file_sha256(weights), forward,
                            (cfg.in_channels, cfg.image_size, cfg.image_size))


def _inception_extractor(weights: str | Path | None, device: str) -> FeatureExtractor:
    from .inception import inception_outputs, load_inception

    model = load_inception(weights, device)
    return FeatureExtractor("inception", "Inception-v3 pool3 (torch-fidelity port of the TF 2015-12-05 graph)",
                            str(weights), file_sha256(weights), lambda images: inception_outputs(model, images))


def load_extractor(spec: str, *, inception_weights: str | Path | None = None,
                   device: str = "cpu") -> FeatureExtractor:
    """`inception` (needs `inception_weights`) or `classifier:NAME_OR_DIR`."""
    if spec == "inception":
        return _inception_extractor(inception_weights, device)
    if spec.startswith("classifier:") and len(spec) > len("classifier:"):
        return _classifier_extractor(spec.split(":", 1)[1], device)
    raise ValueError(f"unknown --features {spec!r}; use inception (with --inception-weights PATH) or "
                     f"classifier:NAME_OR_DIR, e.g. classifier:fashion-mnist-classifier")
