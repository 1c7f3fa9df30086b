"""PNG input/output shared by training, evaluation, sampling and the examples.

Images are float tensors (C, H, W) or (B, C, H, W) in [0, 1]; grids are tiled row by row.
Files are written through a temporary name and a rename, so a crash never leaves half a PNG. Every user image is
opened through `open_image`, which refuses one over `MAX_IMAGE_PIXELS` from its header, before decoding; every
resize to the model's square size is `resize` (shorter side scaled, centre crop).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

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


MAX_IMAGE_PIXELS = 2**25  # width x height (33.5 megapixels, e.g. 5792x5792); decoding more takes GBs of memory


class ImageTooLargeError(ValueError):
    """An image file with more pixels than the limit, refused from its header; `pixels` says how many it has."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int] | None, limit: int):
        self.path, self.limit = path, limit
        self.pixels = (f"is {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else
                       f"has more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels")  # Pillow's bomb limit
        super().__init__(f"{path} {self.pixels}, over the limit of {limit:,} pixels; downscale it first")


@contextmanager
def open_image(path: str | os.PathLike, max_pixels: int | None = None, *,
               data: bytes | None = None) -> Iterator[Image.Image]:
    """Open an image file lazily (Pillow reads the header only), refusing it before any pixel is decoded when it
    has more than `max_pixels` (default `MAX_IMAGE_PIXELS`) pixels. With `data` (the file's bytes, e.g. from a tar
    shard) those are read, and `path` only names the image in errors.

    Raises:
        ImageTooLargeError: too many pixels; the one-line message names the file and the limit. Unreadable files
            raise what `PIL.Image.open` raises.
    """
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():  # Pillow's own bomb warning: the size is checked below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path if data is None else io.BytesIO(data))
    except Image.DecompressionBombError:  # raised by Image.open itself past twice Pillow's limit
        raise ImageTooLargeError(path, None, limit) from None
    with image:
        if image.width * image.height > limit:
            raise ImageTooLargeError(path, image.size, limit)
        yield image


def resize(images: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size, size): scale the shorter side to `size`, centre-crop.

    The one resize of training data, editing inputs and their masks (`mode="nearest"`), so that a non-square
    image gives the same pixels everywhere.
    """
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    if mode == "nearest":
        images = F.interpolate(images, size=new, mode="nearest")
    else:
        images = F.interpolate(images, size=new, mode=mode, align_corners=False, antialias=scale < 1)
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return images[..., top:top + size, left:left + size].clamp(0, 1)


ALPHA_BACKGROUND = "black"  # transparent pixels are composited on this (value 0), as the model never sees alpha
_REFUSED_MODES = {"CMYK": "a CMYK (print) image", "LAB": "a CIELAB image", "HSV": "an HSV image",
                  "RGBX": "an RGBX image", "RGBa": "a premultiplied-alpha image", "La": "a premultiplied-alpha image"}


def load_image(path: str | os.PathLike, channels: int = 3, notes: list[str] | None = None, *,
               data: bytes | None = None) -> torch.Tensor:
    """Read an image file without changing its content -> (channels, H, W) float in [0, 1].

    With `data` (the file's bytes, e.g. from a tar shard) those are decoded and `path` only names the image.

    8- and 16-bit grayscale, RGB, palette and 1-bit images are read exactly (16-bit colour PNGs at the 8 bits
    Pillow decodes them to, within 1/255); alpha (RGBA, LA, transparent palettes) is composited on black, with a
    line appended to `notes`. Grey images become RGB by repeating the channel.

    Raises:
        FileNotFoundError: no such file. ImageTooLargeError: over `MAX_IMAGE_PIXELS` (see `open_image`).
        ValueError: not a readable image, or not readable exactly: colour
            pixels asked for as one channel, several frames, CMYK and other colour spaces, 32-bit integers,
            float values outside [0, 1]; the message says why and what to do.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if data is None and not Path(path).is_file():
        raise FileNotFoundError(f"image {path} does not exist (or is not a file)")
    try:
        with open_image(path, data=data) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                raise ValueError(f"{path} holds {frames} frames (an animation or a stack); save the frame you mean "
                                 f"as a PNG")
            rawmode = image.tile[0][3] if image.tile and len(image.tile[0]) > 3 else ""
            array, alpha = _pixels(ImageOps.exif_transpose(image), path)  # the orientation the file asks for
    except (OSError, SyntaxError) as err:  # PIL: unidentified, truncated or malformed files
        raise ValueError(f"{path} is not a readable image file ({err}); re-export it as PNG or JPEG") from None
    if notes is not None and isinstance(rawmode, str) and rawmode.startswith(("RGB;16", "RGBA;16", "LA;16")):
        notes.append(f"{path}: 16-bit colour PNG read at 8 bits per channel (Pillow's decoding)")
    if alpha is not None and (alpha < 1).any():
        array = array * alpha[..., None]  # composite on black (0): out = a * colour + (1 - a) * 0
        if notes is not None:
            notes.append(f"{path}: transparent pixels composited on a {ALPHA_BACKGROUND} background")
    if array.shape[-1] == 3 and channels == 1:
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise ValueError(f"{path} has colour pixels but grayscale (1-channel) images are wanted; convert it to "
                             f"grayscale yourself if you mean to, or use an RGB model / preset")
        array = array[..., :1]
    if array.shape[-1] == 1 and channels == 3:
        array = np.repeat(array, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))  # no float64 copy


def _pixels(image: Image.Image, path) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 1 or 3) float64 values in [0, 1] and the (H, W) alpha in [0, 1] (None without alpha)."""
    mode = image.mode
    if mode in _REFUSED_MODES:
        raise ValueError(f"{path} is {_REFUSED_MODES[mode]}, which cannot be read as RGB exactly; convert it to RGB "
                         f"(or grayscale) PNG first")
    if mode == "P":
        mode, image = ("RGBA", image.convert("RGBA")) if "transparency" in image.info else ("RGB", image.convert("RGB"))
    elif mode == "PA":
        mode, image = "RGBA", image.convert("RGBA")
    elif mode in ("1", "YCbCr"):  # bilevel -> 0/255 and JPEG's YCbCr -> RGB are the formats' own decodings
        mode, image = ("L", image.convert("L")) if mode == "1" else ("RGB", image.convert("RGB"))
    values = np.asarray(image)
    if mode in ("L", "LA", "RGB", "RGBA"):
        values = values.astype(np.float64) / 255.0
    elif mode.startswith("I;16") or (mode == "I" and image.format == "PNG"):  # 16-bit grayscale PNG
        values = values.astype(np.float64) / 65535.0
    elif mode == "F" and values.size and 0 <= values.min() and values.max() <= 1:
        values = values.astype(np.float64)
    elif mode in ("I", "F"):
        raise ValueError(f"{path} holds {'32-bit integer' if mode == 'I' else 'floating-point'} pixels whose range "
                         f"is not known to be [0, 1]; save it as an 8- or 16-bit PNG")
    else:
        raise ValueError(f"{path} has the image mode {mode!r}, which cannot be read exactly; convert it to an RGB or "
                         f"grayscale PNG first")
    values = values.reshape(*values.shape[:2], -1)
    if mode in ("LA", "RGBA"):
        return values[..., :-1], values[..., -1]
    return values, None
