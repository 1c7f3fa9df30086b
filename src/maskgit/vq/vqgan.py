"""VQGAN tokenizer (Esser et al. 2021) in the layout of the official MaskGIT tokenizer (SPEC 5b).

Encoder: conv -> levels of residual blocks (GroupNorm, SiLU, 3x3 conv) with downsampling between
levels -> bottom blocks (optional self-attention) -> GroupNorm, SiLU, 1x1 conv to the code dimension.
The decoder mirrors it with nearest upsampling + 3x3 conv. The public interface takes and returns
images in [0, 1]; `encode` gives code ids and `decode_ids` turns ids back into pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TokenizerConfig
from .quantizer import QuantizerOutput, VectorQuantizer

# Official parameter path -> ours (kernels HWIO -> OIHW, GroupNorm scale -> weight):
#   {encoder,decoder}/ResBlock_i/{GroupNorm_0,Conv_0,GroupNorm_1,Conv_1,Conv_2} -> *.res_blocks.i.{norm_0,conv_0,
#   norm_1,conv_1,shortcut}; encoder/Conv_0 -> encoder.conv_in; encoder/{GroupNorm_0,Conv_1} -> encoder.{norm_out,
#   conv_out}; decoder/Conv_0 -> decoder.conv_in; decoder/Conv_j (1 <= j < levels) -> decoder.upsamples.{j-1}.conv;
#   decoder/Conv_<levels> -> decoder.conv_out; quantizer/codebook -> quantizer.codebook.


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)  # flax's default epsilon, as in the official model


class ResBlock(nn.Module):
    """GroupNorm, SiLU, conv 3x3, twice, plus a (1x1 conv) shortcut when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, official_shortcut: bool = False):
        super().__init__()
        self.norm_0 = group_norm(in_channels, groups)
        self.conv_0 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm_1 = group_norm(out_channels, groups)
        self.conv_1 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.official_shortcut = official_shortcut
        self.shortcut = None
        if in_channels != out_channels:
            # Official quirk: the 1x1 shortcut is applied to the convolved features, not the input.
            self.shortcut = nn.Conv2d(out_channels if official_shortcut else in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_0(F.silu(self.norm_0(x)))
        h = self.conv_1(F.silu(self.norm_1(h)))
        if self.shortcut is None:
            return x + h
        return h + self.shortcut(h if self.official_shortcut else x)


class AttentionBlock(nn.Module):
    """Single-head self-attention over all positions of a feature map, with a residual connection."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)  # (B, hw, C) each
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Halve the resolution: strided 4x4 conv, or parameter-free 2x2 average pooling (official)."""

    def __init__(self, channels: int, mode: str):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 4, stride=2, padding=1) if mode == "conv" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) if self.conv is not None else F.avg_pool2d(x, 2)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _bottom(blocks: list[nn.Module], attention: nn.Module | None) -> list[nn.Module]:
    """Bottom residual blocks with the attention block after the first one."""
    return blocks[:1] + [attention] + blocks[1:] if attention is not None else blocks


class Encoder(nn.Module):
    """(B, C, H, W) pixels -> (B, D, H/f, W/f) latents."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.channel_mult]
        g, n = cfg.norm_groups, cfg.num_res_blocks
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.base_channels, 3, padding=1, bias=False)
        blocks, prev = [], cfg.base_channels
        for width in widths + [widths[-1]]:  # one entry per level, then the bottom blocks
            for _ in range(n):
                blocks.append(ResBlock(prev, width, g, cfg.official_shortcut))
                prev = width
        self.res_blocks = nn.ModuleList(blocks)  # flat, in the official ResBlock_i order
        self.downsamples = nn.ModuleList(Downsample(w, cfg.downsample) for w in widths[:-1])
        self.attention = AttentionBlock(widths[-1], g) if cfg.mid_attention else None
        self.norm_out = group_norm(widths[-1], g)
        self.conv_out = nn.Conv2d(widths[-1], cfg.embed_dim, 1)
        self.levels, self.per_level = len(widths), n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        blocks = list(self.res_blocks)
        for level in range(self.levels):
            for block in blocks[level * self.per_level:(level + 1) * self.per_level]:
                x = block(x)
            if level < self.levels - 1:
                x = self.downsamples[level](x)
        for block in _bottom(blocks[self.levels * self.per_level:], self.attention):
            x = block(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class Decoder(nn.Module):
    """(B, D, h, w) code vectors -> (B, C, h*f, w*f) pixels (in the model's range, unclamped)."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.channel_mult]
        g, n = cfg.norm_groups, cfg.num_res_blocks
        self.conv_in = nn.Conv2d(cfg.embed_dim, widths[-1], 3, padding=1)
        blocks, prev = [], widths[-1]
        for width in [widths[-1]] + widths[::-1]:  # the bottom blocks, then the levels top-down
            for _ in range(n):
                blocks.append(ResBlock(prev, width, g, cfg.official_shortcut))
                prev = width
        self.res_blocks = nn.ModuleList(blocks)
        self.attention = AttentionBlock(widths[-1], g) if cfg.mid_attention else None
        self.upsamples = nn.ModuleList(Upsample(w) for w in widths[:0:-1])
        self.norm_out = group_norm(widths[0], g)
        self.conv_out = nn.Conv2d(widths[0], cfg.in_channels, 3, padding=1)
        self.levels, self.per_level = len(widths), n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        blocks = list(self.res_blocks)
        for block in _bottom(blocks[:self.per_level], self.attention):
            x = block(x)
        for i in range(self.levels):
            start = (i + 1) * self.per_level
            for block in blocks[start:start + self.per_level]:
                x = block(x)
            if i < self.levels - 1:
                x = self.upsamples[i](x)
        return self.conv_out(F.silu(self.norm_out(x)))


class VQGAN(nn.Module):
    """Encoder, vector quantizer and decoder; images in [0, 1] on the public interface."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = VectorQuantizer(config.codebook_size, config.embed_dim,
                                         commitment_weight=config.commitment_weight,
                                         l2_normalize=config.l2_normalize, ema_decay=config.ema_decay)
        self.decoder = Decoder(config)

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's output kernel (for the adaptive GAN weight of the VQGAN paper)."""
        return self.decoder.conv_out.weight

    def check_images(self, images: torch.Tensor) -> None:
        cfg, f = self.config, self.config.downsample_factor
        if images.dim() != 4 or images.shape[1] != cfg.in_channels:
            raise ValueError(f"expected images of shape (B, {cfg.in_channels}, H, W), got {tuple(images.shape)}")
        if images.shape[-2] % f or images.shape[-1] % f:
            raise ValueError(f"image height and width must be multiples of {f} (the downsampling factor), "
                             f"got {images.shape[-2]}x{images.shape[-1]}")

    def _to_model(self, images: torch.Tensor) -> torch.Tensor:
        return images * 2 - 1 if self.config.signed_pixels else images

    def _from_model(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1) / 2 if self.config.signed_pixels else x

    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, D, h, w) continuous encoder outputs (before quantization)."""
        self.check_images(images)
        return self.encoder(self._to_model(images))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, h, w) long code ids."""
        with torch.no_grad():
            return self.quantizer.nearest_ids(self.encode_latents(images))

    def decode_codes(self, quantized: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) code vectors -> (B, C, H, W) images in [0, 1] range, not clamped."""
        return self._from_model(self.decoder(quantized))

    def decode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, h, w) code ids -> (B, C, H, W) images clamped to [0, 1]."""
        if ids.dim() != 3:
            raise ValueError(f"expected ids of shape (B, h, w), got {tuple(ids.shape)}")
        return self.decode_codes(self.quantizer.lookup(ids)).clamp(0, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        """Training forward: (reconstruction in [0, 1] range, unclamped; quantizer output)."""
        q = self.quantizer(self.encode_latents(images))
        return self.decode_codes(q.quantized), q


def save_tokenizer(model: VQGAN, directory: str | Path, *, dtype: torch.dtype | None = None) -> Path:
    """Write tokenizer.safetensors + tokenizer.json (the TokenizerConfig), each atomically.

    `dtype=torch.float16` halves the file; `load_tokenizer` casts the weights back to float32.
    """
    import copy

    from ..atomic import write_json_atomic
    from ..config import to_dict
    from ..weights import save_weights

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(model if dtype is None else copy.deepcopy(model).to(dtype), directory / "tokenizer.safetensors")
    write_json_atomic(directory / "tokenizer.json", to_dict(model.config))
    return directory


def load_tokenizer(directory: str | Path, device: str | torch.device = "cpu") -> VQGAN:
    """Load a tokenizer written by `save_tokenizer` (strict), in eval mode."""
    import json

    from ..config import from_dict
    from ..weights import empty_module, load_weights

    directory = Path(directory)
    config_path = directory / "tokenizer.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: expected a directory written by save_tokenizer "
                                f"(tokenizer.safetensors + tokenizer.json)")
    config = from_dict(TokenizerConfig, json.loads(config_path.read_text()))
    model = empty_module(lambda: VQGAN(config))  # every weight is loaded next
    load_weights(model, directory / "tokenizer.safetensors")
    return model.to(device).eval()
