"""Image editing by changing only the initial mask (MaskGIT paper section 4.3, official editing code).

Inpainting, outpainting, extrapolation beyond the native grid and class-conditional box editing
all reduce to one recipe: encode, mark a set of tokens unknown, run the single decoding loop
(`MaskGIT.fill_tokens`), decode, and composite with the original through a blurred pixel mask.
Canvases larger than the model's grid are decoded in native-size windows, each conditioned on
the tokens already decided.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

EDIT_STEPS, EDIT_START_ITER = 12, 2  # official editing recipe: 12 iterations, starting at iteration 2


def check_images(images: torch.Tensor, channels: int, factor: int, device: torch.device | None = None) -> None:
    """Editing inputs: a (B, channels, H, W) float tensor in [0, 1] on the model's device, H and W multiples of
    the tokenizer factor."""
    if not torch.is_tensor(images):
        raise TypeError(f"images must be a torch tensor (B, {channels}, H, W), got {type(images).__name__}; "
                        f"convert with torch.as_tensor(...).float() / 255 for uint8 arrays")
    if images.dim() != 4 or images.shape[1] != channels:
        raise ValueError(f"images must be (B, {channels}, H, W) floats in [0, 1], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floats in [0, 1], got {images.dtype}; divide uint8 images by 255")
    if images.numel() and not (images.min() >= 0 and images.max() <= 1):  # also catches NaN
        raise ValueError(f"images must lie in [0, 1], got values in [{float(images.min()):.3g}, "
                         f"{float(images.max()):.3g}]; rescale them (e.g. (x + 1) / 2 for [-1, 1] images)")
    if device is not None and images.device != device:
        raise ValueError(f"images are on {images.device} but the model is on {device}; move them with .to()")
    if images.shape[-2] % factor or images.shape[-1] % factor:
        raise ValueError(f"image size {tuple(images.shape[-2:])} is not a multiple of the tokenizer's factor "
                         f"{factor}; resize or crop it (e.g. maskgit.images.load_image(..., size=...))")


def pixel_to_token_mask(mask: torch.Tensor, factor: int, dilate: int = 0) -> torch.Tensor:
    """(B, 1, H, W) bool pixel mask -> (B, H/f, W/f) bool: a token is unknown if its patch touches the mask.

    `dilate` grows the token mask by that many whole tokens in every direction.
    """
    tokens = F.max_pool2d(mask.float(), kernel_size=factor, stride=factor)
    if dilate > 0:
        tokens = F.max_pool2d(tokens, kernel_size=2 * dilate + 1, stride=1, padding=dilate)
    return tokens[:, 0] > 0


def blur_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Gaussian blur of a (B, 1, H, W) mask, truncated at `radius` pixels (sigma = radius / 2).

    Pixels farther than `radius` from the mask get exactly 0, so compositing keeps them bit-exact.
    """
    mask = mask.float()
    if radius <= 0:
        return mask
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=mask.device)
    kernel = torch.exp(-0.5 * (x / (radius / 2)) ** 2)
    kernel = kernel / kernel.sum()
    out = F.conv2d(F.pad(mask, (radius, radius, 0, 0)), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius)), kernel.view(1, 1, -1, 1))
    return out.clamp(0.0, 1.0)


def composite(original: torch.Tensor, generated: torch.Tensor, mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Blend `generated` into `original` through the blurred mask (True/1 = generated).

    Masked pixels are fully generated (no ghost of the original shows through); the blend ramps
    down outside the mask and reaches exactly 0 at `radius` pixels.
    """
    soft = torch.maximum(mask.float(), blur_mask(mask, radius))
    return torch.where(soft > 0, original * (1 - soft) + generated * soft, original)


def window_origins(size: int, window: int, overlap: int) -> list[int]:
    """Start offsets of windows of `window` tokens covering `size` tokens with at least `overlap` shared."""
    if size < window:
        raise ValueError(f"canvas of {size} tokens is smaller than the model's {window}-token window")
    stride = max(1, window - overlap)
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def fill_canvas(pipe, tokens: torch.Tensor, labels: torch.Tensor | None, *, overlap: int | None = None,
                order: str = "auto", **sampling) -> torch.Tensor:
    """Decode every `mask_id` of a (B, Ht, Wt) token canvas of any size >= the model's grid.

    Windows of the native grid slide over the canvas; each is decoded with the tokens already
    decided as known context. `order="auto"` always takes next the window with the most decided
    tokens (so decoding grows outward from the known region); `"raster"` goes row by row.
    """
    if order not in ("auto", "raster"):
        raise ValueError(f"order must be 'auto' or 'raster', got {order!r}")
    g = pipe.transformer.config.grid_size
    mask_id = pipe.transformer.config.mask_id
    overlap = g // 2 if overlap is None else overlap
    if not isinstance(overlap, int) or not 0 <= overlap < g:
        raise ValueError(f"overlap must be an integer number of tokens in [0, {g}) (the window is {g} tokens), "
                         f"got {overlap!r}")
    canvas = tokens.clone()
    windows = [(y, x) for y in window_origins(canvas.shape[1], g, overlap)
               for x in window_origins(canvas.shape[2], g, overlap)]
    while windows:
        if order == "auto":  # most decided tokens first (ties: raster order)
            windows.sort(key=lambda yx: -int((canvas[:, yx[0]:yx[0] + g, yx[1]:yx[1] + g] != mask_id).sum()))
        y, x = windows.pop(0)
        view = canvas[:, y:y + g, x:x + g]
        if (view == mask_id).any():
            filled = pipe.fill_tokens(view.reshape(len(view), -1), labels, **sampling)
            canvas[:, y:y + g, x:x + g] = filled.view_as(view)
    return canvas


def _labels_or_null(pipe, labels, batch: int):
    """Editing without a class uses the null class when the model has one."""
    cfg = pipe.transformer.config
    if labels is None and cfg.num_classes > 0:
        if cfg.null_label is None:
            raise ValueError("this class-conditional model has no null class: pass labels for editing")
        return torch.full((batch,), cfg.null_label, dtype=torch.long, device=pipe.device)
    return pipe.resolve_labels(labels, batch)


@torch.no_grad()
def edit_region(pipe, images: torch.Tensor, pixel_mask: torch.Tensor, labels=None, *, dilate: int = 0,
                blur_radius: int | None = None, **sampling) -> torch.Tensor:
    """The shared recipe: encode, mark the tokens touching `pixel_mask` unknown, decode, composite.

    Args:
        images: (B, C, H, W) in [0, 1]; H, W multiples of the tokenizer factor, at least the native size.
        pixel_mask: (B or 1, 1, H, W) bool, True where content is regenerated.
        blur_radius: compositing radius in pixels (default: one token, as in the official code).
        **sampling: steps, schedule, temperature, choice_temperature, guidance_scale, generator, overlap,
            order, start_iter ...
    """
    tcfg = pipe.tokenizer.config
    f = tcfg.downsample_factor
    check_images(images, tcfg.in_channels, f, pipe.device)
    if not torch.is_tensor(pixel_mask):
        raise TypeError(f"mask must be a bool tensor (B, 1, H, W), got {type(pixel_mask).__name__}")
    if pixel_mask.dim() != 4 or pixel_mask.shape[1] != 1 or pixel_mask.shape[-2:] != images.shape[-2:] \
            or pixel_mask.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"mask must be (B, 1, H, W) = ({images.shape[0]}, 1, {images.shape[2]}, {images.shape[3]}) "
                         f"bool, True where content is regenerated; got {tuple(pixel_mask.shape)}")
    images = images.to(next(pipe.tokenizer.parameters()).dtype)  # float64 / half inputs run in the model's dtype
    pixel_mask = pixel_mask.to(images.device).bool().expand(images.shape[0], -1, -1, -1)
    if not pixel_mask.any():
        warnings.warn("the mask selects no pixel: the images are returned unchanged (True = regenerate)",
                      stacklevel=3)
    labels = _labels_or_null(pipe, labels, images.shape[0])
    unknown = pixel_to_token_mask(pixel_mask, f, dilate)
    tokens = pipe.tokenizer.encode(images).masked_fill(unknown, pipe.transformer.config.mask_id)
    filled = fill_canvas(pipe, tokens, labels, **sampling)
    generated = pipe.tokenizer.decode_ids(filled)
    radius = f if blur_radius is None else blur_radius
    return composite(images, generated, pixel_mask, radius)


def box_mask(images: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """(B, 1, H, W) bool mask of the pixel box (x0, y0, x1, y1), x1/y1 exclusive; validated."""
    if len(box) != 4 or any(int(v) != v for v in box):
        raise ValueError(f"box must be four integer pixel coordinates (x0, y0, x1, y1), got {box}")
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = images.shape[-2:]
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"box {box} must satisfy 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h} "
                         f"(pixels, x1/y1 exclusive)")
    mask = torch.zeros(images.shape[0], 1, h, w, dtype=torch.bool, device=images.device)
    mask[..., y0:y1, x0:x1] = True
    return mask


MAX_CANVAS_SCALE = 64  # an outpainted canvas holds at most this many times the input's pixels


def pad_canvas(images: torch.Tensor, pad: tuple[int, int, int, int], factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grow (B, C, H, W) by pad = (left, top, right, bottom) pixels, each a multiple of `factor`.

    Returns the grown canvas (new area filled with 0.5) and its (B, 1, H', W') mask of the new area.
    """
    if not isinstance(pad, (tuple, list)) or len(pad) != 4 or any(int(p) != p or p < 0 or int(p) % factor
                                                                  for p in pad):
        raise ValueError(f"pad must be 4 non-negative integer multiples of the tokenizer factor {factor} "
                         f"(left, top, right, bottom), got {pad}")
    left, top, right, bottom = (int(p) for p in pad)
    h, w = images.shape[-2:]
    if (h + top + bottom) * (w + left + right) > MAX_CANVAS_SCALE * h * w:
        raise ValueError(f"pad {tuple(pad)} grows the {w}x{h} images more than {MAX_CANVAS_SCALE}-fold in area; "
                         f"outpaint in several smaller steps")
    canvas = F.pad(images, (left, right, top, bottom), value=0.5)
    mask = torch.ones(images.shape[0], 1, *canvas.shape[-2:], dtype=torch.bool, device=images.device)
    mask[..., top:top + images.shape[-2], left:left + images.shape[-1]] = False
    return canvas, mask

