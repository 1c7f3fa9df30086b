"""Losses of VQGAN training (Esser et al. 2021; official MaskGIT tokenizer settings, SPEC 5b).

Reconstruction (L1 / L2), an LPIPS-style perceptual loss on VGG16 features (weights only from a local
file), adversarial losses (hinge, non-saturating), the R1 gradient penalty, LeCAM regularisation, the
official entropy loss on code assignments, and the adaptive generator weight of the VQGAN paper.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, l1_weight: float = 0.0,
                        l2_weight: float = 1.0) -> torch.Tensor:
    """Weighted sum of mean absolute and mean squared errors (computed in float32)."""
    diff = recon.float() - target.float()
    return l1_weight * diff.abs().mean() + l2_weight * diff.pow(2).mean()


# ---------------------------------------------------------------------------------------------- perceptual
VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
LPIPS_TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in `features`


class PerceptualLoss(nn.Module):
    """LPIPS-style distance (Zhang et al. 2018): unit-normalised VGG16 features, squared differences,
    spatially averaged and weighted per channel (uniform weights unless LPIPS weights are loaded).

    Constructed with random weights; use `load_perceptual_weights` with a local file before training.
    """

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for item in VGG16_LAYERS:  # same indices as torchvision's vgg16().features
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*layers)
        widths = [64, 128, 256, 512, 512]
        self.lins = nn.ParameterList(nn.Parameter(torch.full((w,), 1.0 / w)) for w in widths)
        # LPIPS input scaling: images in [-1, 1] -> ImageNet-normalised
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "PerceptualLoss":
        return super().train(False)  # frozen feature extractor: always in eval mode

    def _taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images.expand(-1, 3, -1, -1) * 2 - 1 - self.shift) / self.scale
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in LPIPS_TAPS:
                taps.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
                if len(taps) == len(LPIPS_TAPS):
                    break
        return taps

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Images (B, 1 or 3, H, W) in [0, 1] -> scalar mean distance."""
        total = recon.new_zeros(())
        for a, b, w in zip(self._taps(recon), self._taps(target), self.lins):
            total = total + ((a - b).pow(2) * w.view(1, -1, 1, 1)).sum(1).mean()
        return total


def load_perceptual_weights(module: PerceptualLoss, path: str | Path) -> None:
    """Load VGG16 weights from a local file: torchvision's `vgg16` state dict (.pth, loaded with
    weights_only=True, or .safetensors; `features.*` keys), optionally with LPIPS `lin{i}.model.1.weight`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"perceptual loss weights {path} not found (they are never downloaded: "
                                f"save torchvision's vgg16 state_dict there)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    missing = set(module.features.state_dict()) - set(features)
    if missing:
        raise ValueError(f"{path} lacks VGG16 feature weights {sorted(missing)[:4]}... (expected torchvision keys)")
    module.features.load_state_dict({k: features[k] for k in module.features.state_dict()}, strict=True)
    for i, lin in enumerate(module.lins):
        key = f"lin{i}.model.1.weight"
        if key in state:
            lin.data.copy_(state[key].flatten())


# ---------------------------------------------------------------------------------------------- adversarial
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """'hinge': relu(1 - D(x)) + relu(1 + D(G(z))); 'non-saturating': softplus(-D(x)) + softplus(D(G(z)))."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "non-saturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    raise ValueError(f"unknown discriminator loss {kind!r}")


def generator_loss(fake_logits: torch.Tensor, kind: str = "hinge") -> torch.Tensor:
    """'hinge': -D(G(z)); 'non-saturating': softplus(-D(G(z)))."""
    fake_logits = fake_logits.float()
    if kind == "hinge":
        return -fake_logits.mean()
    if kind == "non-saturating":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"unknown generator loss {kind!r}")


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean over the batch of |d D(x) / d x|^2; `real_images` must require grad."""
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_images, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


class LeCamEMA(nn.Module):
    """Moving averages of the discriminator's mean real and fake outputs (LeCAM anchors)."""

    def __init__(self, decay: float = 0.999):
        super().__init__()
        self.decay = decay
        self.register_buffer("real", torch.zeros(()))
        self.register_buffer("fake", torch.zeros(()))

    @torch.no_grad()
    def update(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        self.real.lerp_(real_logits.float().mean(), 1 - self.decay)
        self.fake.lerp_(fake_logits.float().mean(), 1 - self.decay)


def lecam_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, ema: LeCamEMA) -> torch.Tensor:
    """LeCAM regulariser (Tseng et al. 2021): pull D(x) towards the fake anchor and D(G(z)) towards the real one."""
    return (F.relu(real_logits.float() - ema.fake).pow(2).mean()
            + F.relu(ema.real - fake_logits.float()).pow(2).mean())


# ---------------------------------------------------------------------------------------------- codebook
def entropy_loss(affinity: torch.Tensor, temperature: float = 0.01, loss_type: str = "softmax") -> torch.Tensor:
    """Official MaskGIT entropy loss on code assignments: per-sample entropy minus entropy of the mean.

    Low per-sample entropy makes each assignment confident; high entropy of the batch average spreads
    assignments over the codebook. `affinity` is (N, K), e.g. negative squared distances.
    """
    logits = affinity.float().reshape(-1, affinity.shape[-1]) / temperature
    probs = logits.softmax(-1)
    log_probs = (logits + 1e-5).log_softmax(-1)
    if loss_type == "softmax":
        target = probs
    elif loss_type == "argmax":
        onehot = F.one_hot(logits.argmax(-1), logits.shape[-1]).type_as(probs)
        target = probs - (probs - onehot).detach()  # straight-through one-hot
    else:
        raise ValueError(f"entropy loss type must be 'softmax' or 'argmax', got {loss_type!r}")
    avg = target.mean(0)
    avg_entropy = -(avg * torch.log(avg + 1e-5)).sum()
    sample_entropy = -(target * log_probs).sum(-1).mean()
    return sample_entropy - avg_entropy


def adaptive_weight(rec_loss: torch.Tensor, gen_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN's lambda = |grad_L(rec)| / (|grad_L(gan)| + 1e-4) at the decoder's last layer L (detached)."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gen_grad = torch.autograd.grad(gen_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (gen_grad.norm() + 1e-4)).clamp(0, max_weight).detach()
