"""Score class-conditional samples with the judge classifier (Fashion-MNIST scale).

Agreement: the fraction of generated images the classifier assigns the requested class.
Diversity and fidelity: the Frechet distance between classifier features of generated and real
test images, reported beside the real-train vs real-test distance (the floor), and improved precision
(fidelity) / recall (coverage) with k = 3 nearest neighbours on the same features.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .classifier import Classifier, predict
from .frechet import frechet_or_none
from .precision_recall import precision_recall


@torch.no_grad()
def generate_per_class(pipe, num_per_class: int, *, batch_size: int = 250, seed: int = 0,
                       **sampling) -> tuple[torch.Tensor, torch.Tensor]:
    """`num_per_class` samples of every class: (images (M, C, H, W), requested labels (M,))."""
    num_classes = pipe.transformer.config.num_classes
    labels = torch.arange(num_classes).repeat_interleave(num_per_class)
    generator = torch.Generator(pipe.device).manual_seed(seed)
    images = [pipe.generate(chunk, generator=generator, **sampling).cpu()
              for chunk in tqdm(labels.split(batch_size), desc="generate")]
    return torch.cat(images), labels


def score_images(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                 real_features: torch.Tensor) -> dict:
    """Agreement with `labels`, Frechet distance and precision / recall (k = 3) against `real_features`."""
    preds, feats = predict(classifier, images)
    per_class = {int(c): float((preds[labels == c] == c).float().mean()) for c in labels.unique()}
    k = 3
    enough = len(feats) > k and len(real_features) > k  # k nearest neighbours need more than k points per set
    pr = precision_recall(real_features.numpy(), feats.numpy(), k) if enough else {"precision": None, "recall": None}
    return {
        "agreement": float((preds == labels).float().mean()),
        "agreement_per_class": per_class,
        "frechet_to_real_test": frechet_or_none(feats.numpy(), real_features.numpy()),
        "precision": pr["precision"], "recall": pr["recall"], "precision_recall_k": k,
        "num_images": len(images),
    }


def real_baseline(classifier: Classifier, train_images: torch.Tensor, test_images: torch.Tensor,
                  test_labels: torch.Tensor, num_train: int = 10_000, seed: int = 0) -> dict:
    """The classifier's test accuracy and the real-train vs real-test Frechet distance (the floor)."""
    preds, test_feats = predict(classifier, test_images)
    idx = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))[:num_train]
    _, train_feats = predict(classifier, train_images[idx])
    return {
        "classifier_test_accuracy": float((preds == test_labels).float().mean()),
        "frechet_real_train_vs_test": frechet_or_none(train_feats.numpy(), test_feats.numpy()),
        "test_features": test_feats,
    }
