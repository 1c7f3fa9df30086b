"""End-to-end evaluation commands: train the judge classifier, and score a model's samples.

Both write JSON results (and the evaluate command a sample grid) so every number in the README
and the model card comes from a rerunnable command.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..atomic import write_json_atomic
from .classifier import ClassifierConfig, load_classifier, predict, save_classifier, train_classifier
from .generation import generate_per_class, real_baseline, score_images

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def dataset_tensors(data: str, split: str, data_root: str | None = None, image_size: int | None = None):
    """A whole dataset split as (images (M, C, H, W) float in [0, 1], labels (M,) long)."""
    from torch.utils.data import DataLoader

    from ..data import build_dataset

    dataset = build_dataset(data, split=split, root=data_root, image_size=image_size)
    images, labels = zip(*DataLoader(dataset, batch_size=1000))
    return torch.cat(images), torch.cat([torch.as_tensor(x) for x in labels]).long()


def resolve_classifier(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if (path / "classifier.json").is_file():
        return path
    if (PRETRAINED_DIR / str(name_or_path) / "classifier.json").is_file():
        return PRETRAINED_DIR / str(name_or_path)
    raise FileNotFoundError(f"no classifier at {name_or_path!r}; train one with `maskgit train-classifier --out DIR`")


def load_judge(classifier: str | Path, pipe, data: str):
    """The judge classifier, checked against the model's images and the number of classes it scores."""
    judge = load_classifier(resolve_classifier(classifier))
    jc, tc = judge.config, pipe.tokenizer.config
    if (jc.in_channels, jc.image_size) != (tc.in_channels, tc.image_size):
        raise ValueError(f"the judge {classifier!r} takes {jc.in_channels}x{jc.image_size}x{jc.image_size} images "
                         f"but the model makes {tc.in_channels}x{tc.image_size}x{tc.image_size}; train a judge on "
                         f"this data with `maskgit train-classifier --data {data} --out DIR` and pass --classifier DIR")
    if jc.num_classes != pipe.transformer.config.num_classes:
        raise ValueError(f"the judge {classifier!r} scores {jc.num_classes} classes but the model has "
                         f"{pipe.transformer.config.num_classes}; train a judge on the model's data")
    return judge


def check_data(images: torch.Tensor, labels: torch.Tensor, pipe, data: str) -> None:
    """Real images to compare with must be what the model makes, with classes the model knows."""
    tc = pipe.tokenizer.config
    want = (tc.in_channels, tc.image_size, tc.image_size)
    if tuple(images.shape[1:]) != want:
        raise ValueError(f"--data {data} has {'x'.join(map(str, images.shape[1:]))} images but the model makes "
                         f"{'x'.join(map(str, want))}; pass the dataset the model was trained on")
    if len(labels) and int(labels.max()) >= pipe.transformer.config.num_classes:
        raise ValueError(f"--data {data} has class {int(labels.max())} but the model knows "
                         f"{pipe.transformer.config.num_classes} classes; pass the dataset the model was trained on")


def train_judge(data: str, out: str | Path, *, data_root: str | None = None, epochs: int = 8, batch_size: int = 128,
                seed: int = 0, overwrite: bool = False) -> dict:
    """Train the judge classifier on the train split and report its test accuracy."""
    from ..outputs import check_output_dir, check_writable

    if epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {epochs}")
    out = check_output_dir(out)
    check_writable([out / "classifier.safetensors", out / "classifier.json"], overwrite)
    start = time.time()
    train_x, train_y = dataset_tensors(data, "trainval", data_root)
    test_x, test_y = dataset_tensors(data, "test", data_root)
    config = ClassifierConfig(in_channels=train_x.shape[1], image_size=train_x.shape[-1],
                              num_classes=int(train_y.max()) + 1)
    model = train_classifier(train_x, train_y, config=config, epochs=epochs, batch_size=batch_size, seed=seed)
    preds, _ = predict(model, test_x)
    metrics = {"test_accuracy": float((preds == test_y).float().mean()), "epochs": epochs, "seed": seed,
               "data": data, "train_seconds": round(time.time() - start, 1),
               "command": f"maskgit train-classifier --data {data} --epochs {epochs} --seed {seed} --out {out}"}
    save_classifier(model, out, metrics)
    return metrics


def evaluate_model(model: str, classifier: str, out: str | Path, *, data: str = "fashion-mnist",
                   data_root: str | None = None, num_per_class: int = 100, seed: int = 0, device: str = "cpu",
                   overwrite: bool = False, **sampling) -> dict:
    """Generate `num_per_class` images per class and score them against the real test split."""
    from ..images import save_grid
    from ..outputs import result_paths
    from ..pipeline import MaskGIT

    out, grid_path = result_paths(out, overwrite, inputs=[model])
    if num_per_class < 1:
        raise ValueError(f"--num-per-class must be >= 1, got {num_per_class}")
    start = time.time()
    pipe = MaskGIT.from_pretrained(model, device=device)
    judge = load_judge(classifier, pipe, data)
    train_x, _ = dataset_tensors(data, "trainval", data_root)
    test_x, test_y = dataset_tensors(data, "test", data_root)
    check_data(test_x, test_y, pipe, data)
    baseline = real_baseline(judge, train_x, test_x, test_y, seed=seed)
    images, labels = generate_per_class(pipe, num_per_class, seed=seed, **sampling)
    result = score_images(judge, images, labels, baseline.pop("test_features"))
    result.update(baseline)
    result.update({"model": str(model), "seed": seed, "sampling": {**vars(pipe.sampling), **sampling},
                   "seconds": round(time.time() - start, 1)})
    save_grid(images.view(pipe.transformer.config.num_classes, num_per_class, *images.shape[1:])[:, :10].flatten(0, 1),
              grid_path, nrow=10)
    write_json_atomic(out, result)
    return result
