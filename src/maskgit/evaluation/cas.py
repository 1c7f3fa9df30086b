"""Classification Accuracy Score (Ravuri & Vinyals, 2019), as reported in the MaskGIT paper (Table 1).

A classifier is trained on generated images only (labelled with the class they were generated for) and
tested on the real test set; beside it, the same classifier trained with the same recipe on the same
number of real training images gives the score real data reaches. The classifier is the project's small
CNN (`classifier.py`), which suits datasets at Fashion-MNIST scale (the paper uses a ResNet-50 on ImageNet).
"""

from __future__ import annotations

import numpy as np
import torch

from .classifier import ClassifierConfig, train_classifier
from .image_sets import to_float_nchw


@torch.inference_mode()
def topk_accuracy(model, images: np.ndarray, labels: np.ndarray, ks=(1, 5), batch_size: int = 500) -> dict:
    """Top-k accuracies of `model` on uint8 (M, H, W, C) images."""
    model.eval()
    logits = torch.cat([model(to_float_nchw(images[i:i + batch_size])) for i in range(0, len(images), batch_size)])
    ks = [k for k in ks if k <= logits.shape[-1]]
    ranked = logits.topk(max(ks), dim=-1).indices  # (M, max k)
    hits = ranked == torch.as_tensor(labels, dtype=torch.long)[:, None]
    return {f"top{k}": float(hits[:, :k].any(1).float().mean()) for k in ks}


def _train(images: np.ndarray, labels: np.ndarray, num_classes: int, epochs: int, seed: int, progress: bool = True):
    config = ClassifierConfig(in_channels=images.shape[-1], image_size=images.shape[1], num_classes=num_classes)
    return train_classifier(to_float_nchw(images), torch.as_tensor(labels, dtype=torch.long), config=config,
                            epochs=epochs, seed=seed, progress=progress)


def classification_accuracy_score(generated: np.ndarray, generated_labels: np.ndarray, test: np.ndarray,
                                  test_labels: np.ndarray, real: np.ndarray | None = None,
                                  real_labels: np.ndarray | None = None, *, epochs: int = 10, seed: int = 0,
                                  progress: bool = True) -> dict:
    """CAS: top-1 / top-5 on the real `test` set of a classifier trained on `generated` images only.

    Args:
        generated, test, real: uint8 (M, H, W, C) image sets with integer labels.
        real: real training images; the first len(generated) of them train the same classifier for comparison.
    Returns:
        {"generated": {"top1", "top5"}, "real": {...} or None, "num_train", "num_test", "epochs", ...}.
    """
    if generated.shape[1:] != test.shape[1:]:
        raise ValueError(f"generated images {generated.shape[1:]} and real test images {test.shape[1:]} differ in "
                         f"size (HxWxC); CAS needs the test set of the generator's data")
    num_classes = int(max(generated_labels.max(), test_labels.max())) + 1
    result = {"num_train": len(generated), "num_test": len(test), "epochs": epochs, "seed": seed,
              "classifier": "maskgit judge CNN (evaluation/classifier.py), trained from scratch",
              "generated": topk_accuracy(_train(generated, generated_labels, num_classes, epochs, seed, progress),
                                         test, test_labels), "real": None}
    if real is not None:
        if len(real) < len(generated):
            raise ValueError(f"the real training set has {len(real)} images, fewer than the {len(generated)} "
                             f"generated ones; CAS compares classifiers trained on the same number of images")
        model = _train(real[:len(generated)], real_labels[:len(generated)], num_classes, epochs, seed, progress)
        result["real"] = topk_accuracy(model, test, test_labels)
    return result
