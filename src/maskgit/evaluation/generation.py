"""Score class-conditional samples with the judge classifier (Fashion-MNIST scale).

Agreement: the fraction of generated images the classifier assigns the requested class.
Diversity and fidelity: the Frechet distance between classifier features of generated and real
test images, reported beside the real-train vs real-test distance (the floor), and improved precision
(fidelity) / recall (coverage) with k = 3 nearest neighbours on the same features. The scores are
`metrics.score_features`, the same as `maskgit metrics --features classifier:...` computes.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .classifier import Classifier, classify, predict
from .frechet import frechet_or_none
from .metrics import feature_reference, score_features


@torch.no_grad()
def generate_per_class(pipe, num_per_class: int, *, batch_size: int = 250, seed: int = 0, progress: bool = True,
                       **sampling) -> tuple[torch.Tensor, torch.Tensor]:
    """`num_per_class` samples of every class: (images (M, C, H, W), requested labels (M,))."""
    num_classes = pipe.transformer.config.num_classes
    labels = torch.arange(num_classes).repeat_interleave(num_per_class)
    generator = torch.Generator(pipe.device).manual_seed(seed)
    images = [pipe.generate(chunk, generator=generator, **sampling).cpu()
              for chunk in tqdm(labels.split(batch_size), desc="generate", disable=not progress)]
    return torch.cat(images), labels


def score_images(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                 real_features: torch.Tensor, k: int = 3) -> dict:
    """Agreement with `labels` (overall and per class), Frechet distance and precision / recall against
    `real_features` of the judge's features of `images` (a score too few images cannot give is None)."""
    feats, logits = classify(classifier, images)
    probs, labels = logits.double().softmax(-1).numpy(), labels.numpy()  # as `maskgit metrics` extracts them
    scores = score_features(feats.numpy(), probs, labels, feature_reference(real_features.numpy()), k=k,
                            splits=None, agreement=True)
    preds = probs.argmax(1)
    return {
        "agreement": scores["class_agreement"],
        "agreement_per_class": {int(c): float((preds[labels == c] == c).mean()) for c in np.unique(labels)},
        "frechet_to_real_test": scores["frechet_distance"],
        "precision": scores["precision"], "recall": scores["recall"], "precision_recall_k": k,
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
