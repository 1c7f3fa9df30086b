"""Inception-v3 pool3 features and logits, computed as the standard FID / IS evaluators compute them.

We use torch-fidelity's port of the TF 2015-12-05 Inception graph (the network of the original FID and
IS code and of the ADM evaluator): uint8 input, TF1-compatible bilinear resize to 299x299, 2048-d pool3
features for FID and precision/recall, and the 1008-way 'logits_unbiased' for IS. The weights are a
local file the user passes (nothing is downloaded); grayscale images are repeated to three channels.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import sys
import types
from pathlib import Path

import torch

INCEPTION_WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                         "weights-inception-2015-12-05-6726825d.pth")
INCEPTION_FEATURES = ("2048", "logits_unbiased")


def inception_class():
    """torch-fidelity's `FeatureExtractorInceptionV3`, imported without its package `__init__`.

    The package `__init__` imports torchvision (for dataset helpers we do not use); loading only the
    Inception module keeps the metric working where torchvision is absent or built for another torch.
    """
    name = "torch_fidelity.feature_extractor_inceptionv3"
    if name not in sys.modules:
        spec = importlib.util.find_spec("torch_fidelity")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("Inception features need torch-fidelity: pip install torch-fidelity (or "
                              "pip install 'maskgit[eval]')")
        if "torch_fidelity" not in sys.modules:
            package = types.ModuleType("torch_fidelity")
            package.__path__ = list(spec.submodule_search_locations)
            sys.modules["torch_fidelity"] = package
    return importlib.import_module(name).FeatureExtractorInceptionV3


def load_inception(path: str | Path | None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The Inception-v3 feature extractor with the weights in `path` (a PyTorch state dict), in eval mode.

    Raises:
        FileNotFoundError: `path` is None or missing (the message says where the standard file is published);
        ValueError: the file is not a state dict of this architecture.
    """
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(
            f"Inception-v3 weights {'are needed' if path is None else f'{path} not found'}: pass "
            f"--inception-weights PATH to the FID Inception weights (TF 2015-12-05 graph converted for PyTorch), "
            f"published by torch-fidelity at {INCEPTION_WEIGHTS_URL}; nothing is downloaded automatically")
    data = Path(path).read_bytes()
    try:  # tensors only: never unpickle arbitrary objects
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle/zip errors of many kinds
        raise ValueError(f"{path} is not a PyTorch weights file of tensors ({type(err).__name__}: {err}); pass the "
                         f"Inception weights from {INCEPTION_WEIGHTS_URL}") from None
    cls = inception_class()
    try:
        model = cls("inception-v3-compat", list(INCEPTION_FEATURES), feature_extractor_weights_path=io.BytesIO(data))
    except (RuntimeError, KeyError, AttributeError) as err:
        raise ValueError(f"{path} does not fit torch-fidelity's Inception-v3 ({str(err)[:300]}); pass the weights "
                         f"from {INCEPTION_WEIGHTS_URL}") from None
    return model.to(device).eval()


@torch.inference_mode()
def inception_outputs(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) uint8 images (C = 1 or 3) -> (pool3 features (B, 2048), unbiased logits (B, 1008))."""
    if images.dtype != torch.uint8:
        raise ValueError(f"Inception features take uint8 images, got {images.dtype}")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    device = next(model.parameters()).device
    features, logits = model(images.to(device))
    return features.float().cpu(), logits.float().cpu()
