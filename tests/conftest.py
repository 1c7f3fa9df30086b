"""Shared test helpers."""
import numpy as np
import pytest
from PIL import Image


def _rgb_folder(root, sizes=((8, 8), (12, 12)), per_class=10, classes=("red", "blue")):
    """One subfolder per class of RGB PNGs (red or blue on noise); every third image has the last size."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[0] if i % 3 else sizes[-1]
            pixels = rng.integers(0, 60, (h, w, 3))
            pixels[..., 0 if c == 0 else 2] += 180
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def rgb_folder():
    return _rgb_folder
