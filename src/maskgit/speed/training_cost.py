"""What a training recipe costs: model FLOPs per step and per epoch, and GPU-hours at a stated utilisation.

Transformer: the matmul FLOPs of `speed.flops` for one forward pass over the whole sequence (every position
through the layers and the MLM head, as training computes them), times 3 for forward + backward (the backward
pass costs about twice the forward; Kaplan et al. 2020). Tokenizer: encoder, decoder, discriminator and VGG16 are
counted by `torch.utils.flop_counter` on the meta device (no memory, no weights); the generator step is 3x the
VQGAN forward, plus the discriminator's and the perceptual network's forward and backward through the
reconstruction, the discriminator step 3x its forward on real and fake images. Norms, activations and the
quantizer's distances are left out (a few percent). GPU-hours = FLOPs / (peak x MFU).
"""

from __future__ import annotations

import math
from functools import lru_cache

from ..config import TokenizerConfig, TokenizerTrainingConfig, TransformerConfig, TransformerTrainingConfig
from .flops import _head_flops, _token_flops

# Dense bf16 tensor-core peaks from the vendors' data sheets (TFLOP/s, no sparsity)
PEAK_TFLOPS = {"A100": 312.0, "H100-SXM": 989.0, "TPUv4": 275.0}
DEFAULT_GPU = "A100"
DEFAULT_MFU = 0.4  # model-FLOPs utilisation a tuned bf16 run of a ~300M-parameter model reaches; an assumption


def transformer_sample_flops(cfg: TransformerConfig) -> float:
    """Forward + backward FLOPs of one training sequence (class token + grid_size^2 tokens)."""
    length, d = cfg.seq_len, cfg.hidden_size
    forward = length * _token_flops(cfg) + cfg.num_layers * 4 * length * length * d + cfg.num_tokens * _head_flops(cfg)
    return 3.0 * forward


@lru_cache(maxsize=16)
def _network_flops(kind: str, config, image_size: int) -> float:
    """Forward FLOPs of one image through `kind` ("encoder", "decoder", "discriminator", "vgg16")."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..vq import VQGAN
    from ..vq.discriminator import build_discriminator
    from ..vq.losses import PerceptualLoss

    with torch.device("meta"):
        if kind in ("encoder", "decoder"):
            model = VQGAN(config)
            grid = image_size // config.downsample_factor
            net = model.encoder if kind == "encoder" else model.decoder
            x = torch.zeros(1, config.in_channels if kind == "encoder" else config.embed_dim,
                            *((image_size,) * 2 if kind == "encoder" else (grid, grid)))
            args = (x,)
        elif kind == "discriminator":
            net, args = build_discriminator(config), (torch.zeros(1, config.in_channels, image_size, image_size),)
        else:
            x = torch.zeros(1, 3, image_size, image_size)
            net, args = PerceptualLoss(), (x, x)
        with FlopCounterMode(display=False) as counter:
            net(*args)
    flops = counter.get_total_flops()
    return flops / 2 if kind == "vgg16" else flops  # the perceptual loss runs VGG on both images: count one


def tokenizer_image_flops(cfg: TokenizerTrainingConfig) -> float:
    """Training FLOPs per image of a tokenizer step (generator and discriminator updates)."""
    t: TokenizerConfig = cfg.tokenizer
    vqgan = _network_flops("encoder", t, t.image_size) + _network_flops("decoder", t, t.image_size)
    total = 3 * vqgan  # encoder + decoder, forward and backward
    if cfg.perceptual_weight > 0:  # VGG on the reconstruction and the image; backward through the reconstruction
        total += 4 * _network_flops("vgg16", None, t.image_size)
    if cfg.adversarial_weight > 0:
        disc = _network_flops("discriminator", cfg.discriminator, cfg.discriminator.image_size)
        total += 3 * disc  # generator loss: through the discriminator to the reconstruction
        total += 6 * disc  # discriminator step: real and fake, forward and backward
    return total


def encode_cost(tokenizer: TokenizerConfig, num_images: int, views: int = 1, *, gpu: str = DEFAULT_GPU,
                mfu: float = DEFAULT_MFU) -> dict:
    """The one-off cost of a token cache: the encoder's forward FLOPs for every cached view, and GPU-hours."""
    total = num_images * views * _network_flops("encoder", tokenizer, tokenizer.image_size)
    return {"image_flops": total / max(1, num_images * views), "total_flops": total, "gpu": gpu, "mfu": mfu,
            "gpu_hours": total / (PEAK_TFLOPS[gpu] * 1e12 * mfu) / 3600}


def step_flops(cfg: TokenizerTrainingConfig | TransformerTrainingConfig) -> float:
    """Model FLOPs of one optimiser step (all processes, all micro-batches)."""
    per_step = cfg.batch_size * cfg.grad_accum_steps
    if isinstance(cfg, TransformerTrainingConfig):
        return per_step * transformer_sample_flops(cfg.transformer)
    return per_step * tokenizer_image_flops(cfg)


def recipe_cost(cfg: TokenizerTrainingConfig | TransformerTrainingConfig, num_images: int, *,
                gpu: str = DEFAULT_GPU, mfu: float = DEFAULT_MFU) -> dict:
    """FLOPs per step / epoch / run (cfg.max_steps) and GPU-hours of the run on `gpu` at `mfu`.

    Args:
        num_images: training sequences per epoch (images x cached views for the transformer).
    """
    if gpu not in PEAK_TFLOPS:
        raise ValueError(f"unknown accelerator {gpu!r}; choose one of {sorted(PEAK_TFLOPS)}")
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    per_step = cfg.batch_size * cfg.grad_accum_steps
    flops = step_flops(cfg)
    steps_per_epoch = math.ceil(num_images / per_step)
    total = flops * cfg.max_steps
    hours = total / (PEAK_TFLOPS[gpu] * 1e12 * mfu) / 3600
    return {"step_flops": flops, "image_flops": flops / per_step, "steps_per_epoch": steps_per_epoch,
            "epoch_flops": flops * steps_per_epoch, "max_steps": cfg.max_steps,
            "epochs": cfg.max_steps * per_step / max(1, num_images), "total_flops": total, "gpu": gpu,
            "peak_tflops": PEAK_TFLOPS[gpu], "mfu": mfu, "gpu_hours": hours}


def cost_text(cfg: TokenizerTrainingConfig | TransformerTrainingConfig, num_images: int, *,
              gpu: str = DEFAULT_GPU, mfu: float = DEFAULT_MFU) -> str:
    """The run's cost in one line, for the training plan."""
    c = recipe_cost(cfg, num_images, gpu=gpu, mfu=mfu)
    return (f"cost: {c['step_flops']:.3g} model FLOPs per step ({c['image_flops']:.3g} per image), "
            f"{c['epoch_flops']:.3g} per epoch of {num_images:,}; {c['max_steps']:,} steps = "
            f"{c['total_flops']:.3g} FLOPs = {c['gpu_hours']:,.1f} {gpu} GPU-hours at {mfu:.0%} MFU "
            f"({c['peak_tflops']:g} TFLOP/s bf16 peak)")
