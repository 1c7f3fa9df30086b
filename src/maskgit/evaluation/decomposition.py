"""Where the distance of generated images to real ones comes from: the tokenizer, or the transformer.

A MaskGIT model can at best produce the distribution of its tokenizer's reconstructions of real images: the
tokenizer's decoder makes every pixel. So the Frechet distance (FD) of samples to real test images splits into
  * the tokenizer floor: reconstructions of *unseen-by-the-scorer* real images (a train subset with the
    samples' class counts) against the real test set, beside real train images against the test set (the
    floor of the scorer itself at that sample count), and
  * the transformer's part: samples against those reconstructions.
Every set is scored with the judge classifier's features, overall and per class, with the same number of
images per class, because FD's bias depends on the count. The reconstructions of the test set itself (paired
with it, so closer than any unpaired set) are reported too, as `maskgit eval-tokenizer` would see them.
"""

from __future__ import annotations

import numpy as np
import torch

from .classifier import Classifier, predict
from .frechet import frechet_or_none
from .generation import generate_per_class
from .precision_recall import knn_radii, precision_recall

SETS = ("real_train", "recon_train", "recon_test", "samples")


@torch.no_grad()
def reconstruct(tokenizer, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Encode and decode `images` (M, C, H, W) in [0, 1] with the tokenizer; the result is clamped to [0, 1]."""
    device = next(tokenizer.parameters()).device
    out = [tokenizer.decode_ids(tokenizer.encode(chunk.to(device))).clamp(0, 1).cpu()
           for chunk in images.split(batch_size)]
    return torch.cat(out)


def per_class_subset(labels: torch.Tensor, num_per_class: int, num_classes: int, seed: int) -> torch.Tensor:
    """Indices of `num_per_class` random items of every class (sorted by class)."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()
        if len(idx) < num_per_class:
            raise ValueError(f"class {c} has {len(idx)} real images, fewer than --num-per-class {num_per_class}")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:num_per_class]])
    return torch.cat(picks)


def score_set(judge: Classifier, images: torch.Tensor, labels: torch.Tensor, real_feats: torch.Tensor,
              real_labels: torch.Tensor, real_radii: np.ndarray, recon_feats: torch.Tensor | None = None,
              k: int = 3) -> tuple[dict, torch.Tensor]:
    """Agreement with `labels`, FD / precision / recall against the real set, overall and per class; and the
    set's judge features."""
    preds, feats = predict(judge, images)
    row = {"num_images": len(images), "agreement": float((preds == labels).float().mean()),
           "frechet_to_real": frechet_or_none(feats.numpy(), real_feats.numpy()),
           **{key: value for key, value in precision_recall(real_feats.numpy(), feats.numpy(), k,
                                                            real_radii=real_radii).items() if key != "k"}}
    if recon_feats is not None:
        row["frechet_to_recon_train"] = frechet_or_none(feats.numpy(), recon_feats.numpy())
    row["per_class"] = {}
    for c in labels.unique().tolist():
        mine, real = labels == c, real_labels == c
        row["per_class"][c] = {"agreement": float((preds[mine] == c).float().mean()),
                               "frechet_to_real": frechet_or_none(feats[mine].numpy(), real_feats[real].numpy())}
    return row, feats


def decompose(pipe, judge: Classifier, train: tuple[torch.Tensor, torch.Tensor],
              real: tuple[torch.Tensor, torch.Tensor], *, num_per_class: int = 100, seed: int = 0, k: int = 3,
              with_samples: bool = True, **sampling) -> tuple[dict, torch.Tensor | None]:
    """Score real train images, their reconstructions, the real set's own reconstructions and samples.

    Args:
        train: real images and labels the scorer compares with (not the `real` set), e.g. the train split.
        real: the real set every other set is compared with (the test split, or the val split for choices).
        with_samples: False scores the tokenizer alone (no samples set; e.g. a tokenizer the transformer was not
            trained on).
        sampling: `pipe.generate` settings of the samples.
    Returns:
        ({"sets": {name: row}} for `SETS`, each row with agreement, frechet_to_real, precision, recall, the
        per-class agreement and FD, and for samples and real train images also the FD to the train
        reconstructions (the transformer's part); the samples (M, C, H, W)).
    """
    num_classes = pipe.transformer.config.num_classes
    real_x, real_y = real
    _, real_feats = predict(judge, real_x)
    radii = knn_radii(real_feats.numpy(), k)
    pick = per_class_subset(train[1], num_per_class, num_classes, seed)
    train_x, train_y = train[0][pick], train[1][pick]
    sets = {}
    recon_train = reconstruct(pipe.tokenizer, train_x)
    sets["recon_train"], recon_feats = score_set(judge, recon_train, train_y, real_feats, real_y, radii, k=k)
    sets["real_train"], _ = score_set(judge, train_x, train_y, real_feats, real_y, radii, recon_feats, k=k)
    sets["recon_test"], _ = score_set(judge, reconstruct(pipe.tokenizer, real_x), real_y, real_feats, real_y, radii,
                                      k=k)
    samples = None
    if with_samples:
        samples, labels = generate_per_class(pipe, num_per_class, seed=seed, **sampling)
        sets["samples"], _ = score_set(judge, samples, labels, real_feats, real_y, radii, recon_feats, k=k)
    return {"sets": {name: sets[name] for name in SETS if name in sets}, "num_per_class": num_per_class,
            "seed": seed, "k": k, "num_real": len(real_x),
            "sampling": pipe.sampling_settings(**sampling) if with_samples else None}, samples
