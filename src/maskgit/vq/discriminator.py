"""Discriminators for VQGAN's adversarial loss.

`PatchGANDiscriminator` (Isola et al. 2017, as in taming-transformers) scores overlapping patches;
`StyleGANDiscriminator` (Karras et al. 2020, the kind the official MaskGIT tokenizer was trained with)
stacks residual downsampling blocks and ends in a dense layer. Both take images in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import DiscriminatorConfig


def _groups(channels: int) -> int:
    return math.gcd(32, channels)


class PatchGANDiscriminator(nn.Module):
    """(B, C, H, W) -> (B, 1, h, w) patch logits; `num_layers` strided 4x4 convs, widths doubling to 8x."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        if cfg.image_size < 3 * 2 ** cfg.num_layers:  # the last two 4x4 convs need a 3x3 map at least
            raise ValueError(f"a PatchGAN with num_layers={cfg.num_layers} needs images of at least "
                             f"{3 * 2 ** cfg.num_layers} pixels; got image_size {cfg.image_size}")
        width = cfg.base_channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, cfg.num_layers + 1):
            prev, width = width, cfg.base_channels * min(2 ** i, 8)
            stride = 2 if i < cfg.num_layers else 1
            layers += [nn.Conv2d(prev, width, 4, stride, 1, bias=False), nn.GroupNorm(_groups(width), width),
                       nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.layers = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images * 2 - 1)


class _ResidualDown(nn.Module):
    """conv 3x3 -> leaky ReLU -> conv 3x3 -> leaky ReLU -> 2x average pool, with a pooled 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_0 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv_1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv_0(x), 0.2)
        h = F.avg_pool2d(F.leaky_relu(self.conv_1(h), 0.2), 2)
        return (h + self.shortcut(F.avg_pool2d(x, 2))) / math.sqrt(2)


class StyleGANDiscriminator(nn.Module):
    """(B, C, H, W) -> (B, 1) logits: conv, `num_layers` residual downsampling blocks, conv, dense, dense."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        size = cfg.image_size // 2 ** cfg.num_layers
        if size < 1 or cfg.image_size % 2 ** cfg.num_layers:
            raise ValueError(f"image_size {cfg.image_size} cannot be halved {cfg.num_layers} times")
        widths = [cfg.base_channels * min(2 ** i, 4) for i in range(cfg.num_layers + 1)]
        self.conv_in = nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)
        self.blocks = nn.Sequential(*(_ResidualDown(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.conv_out = nn.Conv2d(widths[-1], widths[-1], 3, padding=1)
        self.dense = nn.Linear(widths[-1] * size * size, widths[-1])
        self.logits = nn.Linear(widths[-1], 1)
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv_in(images * 2 - 1), 0.2)
        x = F.leaky_relu(self.conv_out(self.blocks(x)), 0.2)
        return self.logits(F.leaky_relu(self.dense(x.flatten(1)), 0.2))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_discriminator(cfg: DiscriminatorConfig) -> nn.Module:
    """The discriminator `cfg.kind` names."""
    return PatchGANDiscriminator(cfg) if cfg.kind == "patchgan" else StyleGANDiscriminator(cfg)
