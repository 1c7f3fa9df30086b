"""A small CNN classifier for 28x28 grayscale images, the judge of class-conditional samples.

Trained on real Fashion-MNIST only. It scores (a) agreement: how often it assigns a generated image
the class that was requested, and (b) its 128-d penultimate features, used for a Frechet distance
between generated and real images (an FID analogue for this dataset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..atomic import write_json_atomic
from ..bundled import PRETRAINED_DIR
from ..config import from_dict, to_dict


@dataclass(frozen=True)
class ClassifierConfig:
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    width: int = 16
    feature_dim: int = 128
    dropout: float = 0.3


class Classifier(nn.Module):
    """Conv(w) x2 -> pool -> Conv(2w) x2 -> pool -> dense(feature_dim) -> dense(num_classes)."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        w = config.width

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.body = nn.Sequential(block(config.in_channels, w), block(w, 2 * w), nn.Flatten())
        flat = 2 * w * (config.image_size // 4) ** 2
        self.features_head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(flat, config.feature_dim), nn.ReLU())
        self.logits_head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, feature_dim)."""
        return self.features_head(self.body(images * 2 - 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_head(self.features(images))


def save_classifier(model: Classifier, directory: str | Path, metrics: dict | None = None) -> None:
    from ..weights import save_weights

    directory = Path(directory)
    save_weights(model, directory / "classifier.safetensors")
    write_json_atomic(directory / "classifier.json", {"config": to_dict(model.config), "metrics": metrics or {}})


def resolve_classifier(name_or_path: str | Path) -> Path:
    """A classifier directory: `name_or_path` itself when it holds classifier.json, else the bundled judge of
    that name (e.g. fashion-mnist-classifier)."""
    path = Path(name_or_path)
    if (path / "classifier.json").is_file():
        return path
    if (PRETRAINED_DIR / str(name_or_path) / "classifier.json").is_file():
        return PRETRAINED_DIR / str(name_or_path)
    raise FileNotFoundError(f"no classifier at {name_or_path!r}; train one with `maskgit train-classifier --out DIR`")


def load_classifier(directory: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """Load a `save_classifier` directory (classifier.json + classifier.safetensors) in eval mode.

    Raises:
        FileNotFoundError: no classifier.json; ValueError: it is unreadable, lacks "config" or does not fit.
    """
    import json

    from ..weights import load_weights

    path = Path(directory) / "classifier.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; train a classifier with `maskgit train-classifier --out DIR`")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); retrain or restore it") from err
    if not isinstance(meta, dict) or "config" not in meta:
        raise ValueError(f"{path} lacks the key 'config' (the ClassifierConfig); it was not written by "
                         f"`maskgit train-classifier`: retrain or restore it")
    try:
        config = from_dict(ClassifierConfig, meta["config"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    model = Classifier(config)
    directory = path.parent
    load_weights(model, directory / "classifier.safetensors")
    return model.to(device).eval()


@torch.no_grad()
def classify(model: Classifier, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (B, feature_dim), class logits (B, num_classes)) of images (B, C, H, W) in [0, 1], in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    feats, logits = [], []
    for chunk in images.split(batch_size):
        f = model.features(chunk.to(device))
        feats.append(f.cpu())
        logits.append(model.logits_head(f).cpu())
    return torch.cat(feats), torch.cat(logits)


def predict(model: Classifier, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (predicted labels (B,), features (B, feature_dim)) in eval mode."""
    feats, logits = classify(model, images, batch_size)
    return logits.argmax(-1), feats


def train_classifier(train_images: torch.Tensor, train_labels: torch.Tensor, *, config: ClassifierConfig | None = None,
                     epochs: int = 8, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                     progress: bool = True) -> Classifier:
    """Adam + one-cycle LR, random horizontal flips and 2-pixel shifts. Images (N, C, H, W) in [0, 1]."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(train_images) < batch_size:
        raise ValueError(f"{len(train_images)} training images are fewer than one batch of {batch_size}; "
                         f"use a smaller batch_size or more images")
    torch.manual_seed(seed)
    model = Classifier(config or ClassifierConfig())
    steps = epochs * (len(train_images) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    bar = tqdm(total=steps, desc="classifier", disable=not progress)
    for _ in range(epochs):
        perm = torch.randperm(len(train_images), generator=g)
        for i in range(len(train_images) // batch_size):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            x, y = _augment(train_images[idx], g), train_labels[idx]
            loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
    return torch.roll(F.pad(x, (2, 2, 2, 2)), shifts=(dy, dx), dims=(-2, -1))[..., 2:-2, 2:-2]
