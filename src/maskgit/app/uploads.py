"""The browser editor's inputs: uploaded image files and brush strokes, checked against the demo's limits.

Uploads must be image files (PNG, JPEG, WebP, BMP, GIF) under a byte and a pixel budget and of the
model's size (or resized on request, as `maskgit inpaint --resize` does). Strokes are painted on
the image shown `scale` times larger; a native pixel is masked when any stroke touches its block.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..editing_io import load_inputs
from ..images import ImageTooLargeError, open_image

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the demo server."""

    max_upload_bytes: int = 4 * 2**20  # also passed to Gradio, which refuses larger uploads before we see them
    max_pixels: int = 2**22  # width x height of an uploaded image (4 megapixels)
    max_images: int = 16  # images per generation
    max_steps: int = 64  # decoding iterations
    max_pad_factor: int = 2  # outpainting: at most this many image sizes per side
    max_width_factor: int = 8  # extrapolation: at most this many image widths
    display_size: int = 280  # images are shown upscaled (nearest) to about this many pixels
    max_queue: int = 16  # requests waiting behind the running one


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C) -> float (1, C, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


def to_array(image: torch.Tensor) -> np.ndarray:
    """float (C, H, W) in [0, 1] -> uint8 (H, W, C), rounded as `maskgit.images.save_image` writes PNGs."""
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def display(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 (H, W, C) -> RGB uint8 (H * scale, W * scale, 3), each pixel a scale x scale block."""
    image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def load_upload(path: str | Path | None, channels: int, size: int, resize: bool, limits: Limits) -> np.ndarray:
    """An uploaded file -> uint8 (size, size, channels); ValueError saying what is wrong and what to do."""
    if path is None:
        raise ValueError("no image was uploaded")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"the upload {path.name} is gone; upload it again")
    nbytes = path.stat().st_size
    if nbytes > limits.max_upload_bytes:
        raise ValueError(f"the file is {_size(nbytes)}; the limit is {_size(limits.max_upload_bytes)}")
    try:
        with open_image(path, limits.max_pixels) as image:  # refuses a huge image from its header
            kind, (w, h) = image.format, image.size
    except ImageTooLargeError as err:
        raise ValueError(f"the image {err.pixels}; the limit is {limits.max_pixels:,} pixels") from None
    except (OSError, SyntaxError, ValueError):
        raise ValueError(f"{path.name} is not an image file; upload a {', '.join(IMAGE_FORMATS)} image") from None
    if kind not in IMAGE_FORMATS:
        raise ValueError(f"{path.name} is a {kind} file; upload a {', '.join(IMAGE_FORMATS)} image")
    if (w, h) != (size, size) and not resize:
        raise ValueError(f"the image is {w}x{h} pixels but the model works on {size}x{size}; upload a "
                         f"{size}x{size} image or tick 'resize to {size}x{size}'")
    image = load_inputs([path], channels, size, resize)[0]  # the CLI's loading and resizing
    return to_array(image)


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.0f} KiB"


def mask_from_layers(editor: dict | None, shape: tuple[int, int], scale: int) -> np.ndarray:
    """The editor's stroke layers (RGBA, shown `scale` times larger) -> (H, W) bool at native size."""
    layers = [] if not editor else [x for x in (editor.get("layers") or []) if x is not None]
    h, w = shape
    painted = np.zeros((h * scale, w * scale), dtype=bool)
    for layer in layers:
        layer = np.asarray(layer)
        if layer.shape[:2] != painted.shape:
            raise ValueError(f"the brush layer is {layer.shape[1]}x{layer.shape[0]} but the image is shown at "
                             f"{w * scale}x{h * scale}; load the image again and repaint")
        painted |= layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[2] == 4 else layer.reshape(*painted.shape,
                                                                                                    -1).any(-1)
    return painted.reshape(h, scale, w, scale).any(axis=(1, 3))


def strokes_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(H, W) bool -> the bounding box (x0, y0, x1, y1) of its True pixels, x1/y1 exclusive."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        raise ValueError("nothing is drawn: draw over the region to edit with the brush, or type the box")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
