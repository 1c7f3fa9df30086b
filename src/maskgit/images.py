"""PNG input/output shared by training, evaluation, sampling and the examples.

Images are float tensors (C, H, W) or (B, C, H, W) in [0, 1]; grids are tiled row by row.
Files are written through a temporary name and a rename, so a crash never leaves half a PNG.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import write_bytes_atomic


def to_pil(image: torch.Tensor) -> Image.Image:
    """(C, H, W) float in [0, 1] with C = 1 or 3 -> a PIL image ('L' or 'RGB')."""
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (1 or 3, H, W), got {tuple(image.shape)}")
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    array = array.permute(1, 2, 0).numpy()
    gray = array.shape[-1] == 1
    return Image.fromarray(array[..., 0] if gray else array, mode="L" if gray else "RGB")


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write one (C, H, W) image in [0, 1] as PNG."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="PNG")
    path = Path(path)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """(B, C, H, W) -> (C, H', W') tiles, `nrow` images per row (default: about square)."""
    if images.dim() != 4:
        raise ValueError(f"expected a batch of shape (B, C, H, W), got {tuple(images.shape)}")
    b, c, h, w = images.shape
    ncol = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / ncol)
    grid = images.new_full((c, rows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for i, image in enumerate(images):
        y, x = divmod(i, ncol)
        top, left = padding + y * (h + padding), padding + x * (w + padding)
        grid[:, top:top + h, left:left + w] = image
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, padding: int = 2,
              pad_value: float = 1.0) -> Path:
    """Tile (B, C, H, W) images in [0, 1] into one PNG, `nrow` images per row."""
    return save_image(make_grid(images.detach().float().clamp(0, 1).cpu(), nrow, padding, pad_value), path)


def load_image(path: str | os.PathLike, channels: int = 3) -> torch.Tensor:
    """Read any image file PIL understands -> (channels, H, W) float in [0, 1] (channels 1 or 3)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"image {path} does not exist (or is not a file)")
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as err:  # PIL: unidentified, truncated or malformed files
        raise ValueError(f"{path} is not a readable image file ({err}); re-export it as PNG or JPEG") from None
    tensor = torch.from_numpy(array.copy()).float() / 255.0
    return tensor[None] if channels == 1 else tensor.permute(2, 0, 1).contiguous()
