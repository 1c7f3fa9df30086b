"""End-to-end evaluation commands: train the judge classifier, and score a model's samples.

Both write JSON results (and the evaluate command a sample grid) so every number in the docs
and the model card comes from a rerunnable command.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..atomic import write_json_atomic
from .classifier import (
    ClassifierConfig,
    load_classifier,
    predict,
    resolve_classifier,
    save_classifier,
    train_classifier,
)
from .frechet import few_images_warnings
from .generation import generate_per_class, real_baseline, score_images
from .image_sets import dataset_tensors


def model_data(data: str, pipe, split: str, *, data_root: str | None = None, resize: bool = False):
    """A split of `data` at the model's image size and channels, after checking that the model fits the data
    (see `maskgit.data_fit.check_fit`; notes are printed)."""
    from ..data_fit import check_fit, describe_data

    tc = pipe.tokenizer.config
    advice = ("pass the dataset the model was trained on (with --resize if its images have other sizes, as for "
              "training)")
    for note in check_fit(describe_data(data), tc.in_channels, tc.image_size, resize=resize, what="the model",
                          advice=advice):
        print(f"note: {note}")
    return dataset_tensors(data, split, data_root, image_size=tc.image_size, channels=tc.in_channels)


def load_judge(classifier: str | Path, pipe, data: str, model: str | None = None):
    """The judge classifier, checked against the model's images and the number of classes it scores."""
    judge = load_classifier(resolve_classifier(classifier))
    jc, tc = judge.config, pipe.tokenizer.config
    if (jc.in_channels, jc.image_size) != (tc.in_channels, tc.image_size):
        with_model = f" --model {model}" if model is not None else ""
        raise ValueError(f"the judge {classifier!r} takes {jc.in_channels}x{jc.image_size}x{jc.image_size} images "
                         f"but the model makes {tc.in_channels}x{tc.image_size}x{tc.image_size}; train a judge on "
                         f"this data with `maskgit train-classifier --data {data}{with_model} --out DIR` (add "
                         f"--resize if the data has other sizes) and pass --classifier DIR")
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
                seed: int = 0, overwrite: bool = False, model: str | None = None, resize: bool = False,
                progress: bool = True) -> dict:
    """Train the judge classifier on the train + val split and report its test accuracy.

    Its image size and channels are those of `model` (a trained model's name or directory) when given, else the
    data's (most common size); data of other sizes needs `resize`.
    """
    from ..data_fit import check_fit, describe_data
    from ..outputs import check_output_dir, check_writable

    if epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {epochs}")
    out = check_output_dir(out, replacing="classifier")  # a judge may be retrained in place, nothing else
    check_writable([out / "classifier.safetensors", out / "classifier.json"], overwrite, replacing="classifier")
    start = time.time()
    info = describe_data(data)
    if model is not None:
        from ..pipeline import MaskGIT

        tc = MaskGIT.from_pretrained(model).tokenizer.config
        channels, size, what = tc.in_channels, tc.image_size, f"the model {model}"
    else:
        channels, size, what = info.channels, info.image_size, "the judge"
    for note in check_fit(info, channels, size, resize=resize, what=what):
        print(f"note: {note}")
    train_x, train_y = dataset_tensors(data, "trainval", data_root, image_size=size, channels=channels)
    test_x, test_y = dataset_tensors(data, "test", data_root, image_size=size, channels=channels)
    config = ClassifierConfig(in_channels=channels, image_size=size, num_classes=len(info.classes))
    model_net = train_classifier(train_x, train_y, config=config, epochs=epochs,
                                 batch_size=min(batch_size, len(train_x)), seed=seed, progress=progress)
    preds, _ = predict(model_net, test_x)
    command = (f"maskgit train-classifier --data {data}{f' --model {model}' if model else ''}"
               f"{' --resize' if resize else ''} --epochs {epochs} --seed {seed} --out {out}")
    metrics = {"test_accuracy": float((preds == test_y).float().mean()), "epochs": epochs, "seed": seed,
               "data": data, "train_seconds": round(time.time() - start, 1), "command": command}
    save_classifier(model_net, out, metrics)
    return metrics


def evaluate_model(model: str, classifier: str, out: str | Path, *, data: str = "fashion-mnist",
                   data_root: str | None = None, num_per_class: int = 100, seed: int = 0, device: str = "cpu",
                   overwrite: bool = False, resize: bool = False, progress: bool = True, **sampling) -> dict:
    """Generate `num_per_class` images per class and score them against the real test split of `data` (which the
    model must fit: images of other sizes need `resize`)."""
    from ..images import save_grid
    from ..outputs import result_paths
    from ..pipeline import MaskGIT

    out, grid_path = result_paths(out, overwrite, inputs=[model])
    if num_per_class < 1:
        raise ValueError(f"--num-per-class must be >= 1, got {num_per_class}")
    start = time.time()
    pipe = MaskGIT.from_pretrained(model, device=device)
    judge = load_judge(classifier, pipe, data, model)
    train_x, _ = model_data(data, pipe, "trainval", data_root=data_root, resize=resize)
    test_x, test_y = model_data(data, pipe, "test", data_root=data_root, resize=resize)
    check_data(test_x, test_y, pipe, data)
    baseline = real_baseline(judge, train_x, test_x, test_y, seed=seed)
    images, labels = generate_per_class(pipe, num_per_class, seed=seed, progress=progress, **sampling)
    result = score_images(judge, images, labels, baseline.pop("test_features"))
    result.update(baseline)
    result.update({"model": str(model), "classifier": str(classifier), "data": data, "data_root": data_root,
                   "resize": resize, "num_per_class": num_per_class, "seed": seed, "device": str(device),
                   "sampling": pipe.sampling_settings(**sampling), "seconds": round(time.time() - start, 1),
                   "warnings": few_images_warnings({"generated": len(images), "real test": len(test_x)})})
    save_grid(images.view(pipe.transformer.config.num_classes, num_per_class, *images.shape[1:])[:, :10].flatten(0, 1),
              grid_path, nrow=10)
    write_json_atomic(out, result)
    return result
