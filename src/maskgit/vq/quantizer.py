"""Vector quantizer of the VQGAN tokenizer (van den Oord et al. 2017; Esser et al. 2021; official MaskGIT).

Nearest-code lookup by squared Euclidean distance (optionally between l2-normalised vectors, as in
ViT-VQGAN), straight-through gradients, codebook + commitment losses or EMA codebook updates, and what
keeps a codebook alive: k-means / sampled initialisation from encoder outputs and dead-code restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class QuantizerOutput:
    """Everything one quantizer forward produces; losses are scalars, `latents` is detached."""

    quantized: torch.Tensor  # (B, D, h, w), straight-through: forward = codes, backward = identity
    ids: torch.Tensor  # (B, h, w) long
    loss: torch.Tensor  # codebook loss + commitment_weight * commitment loss
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    affinity: torch.Tensor  # (B*h*w, K) negative squared distances (for the entropy loss)
    latents: torch.Tensor  # (B*h*w, D) encoder outputs as compared with the codes (for restarts)
    usage: torch.Tensor  # fraction of codes used in this batch
    perplexity: torch.Tensor  # exp(entropy of the batch's code histogram)


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def code_histogram(ids: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """(any shape) ids -> (K,) float counts."""
    return torch.bincount(ids.reshape(-1), minlength=codebook_size).float()


def perplexity_of(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a code histogram: K for uniform use, 1 when a single code is used."""
    probs = counts / counts.sum().clamp_min(1e-12)
    return torch.exp(-(probs * torch.log(probs.clamp_min(1e-12))).sum())


class VectorQuantizer(nn.Module):
    """Replaces each D-dim vector of a (B, D, h, w) map by its nearest of K codes."""

    def __init__(self, codebook_size: int, dim: int, *, commitment_weight: float = 0.25,
                 l2_normalize: bool = False, ema_decay: float = 0.0):
        super().__init__()
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.codebook_size, self.dim = codebook_size, dim
        self.commitment_weight = commitment_weight
        self.l2_normalize = l2_normalize
        self.ema_decay = ema_decay
        # Named `codebook` like the official parameter `quantizer/codebook` (K, D).
        self.codebook = nn.Parameter(torch.empty(codebook_size, dim).uniform_(-1 / codebook_size, 1 / codebook_size))
        if ema_decay > 0:
            self.codebook.requires_grad_(False)  # updated by moving averages, not by the optimizer
            self.register_buffer("ema_cluster_size", torch.ones(codebook_size))
            self.register_buffer("ema_embed_sum", self.codebook.detach().clone())

    def codes(self) -> torch.Tensor:
        """(K, D) codes as used for lookup (normalised when l2_normalize)."""
        return F.normalize(self.codebook, dim=-1) if self.l2_normalize else self.codebook

    def _prepare(self, flat: torch.Tensor) -> torch.Tensor:
        return F.normalize(flat, dim=-1) if self.l2_normalize else flat

    def distances(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, D) prepared vectors -> (N, K) squared Euclidean distances."""
        codes = self.codes()
        return flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.t() + codes.pow(2).sum(1)[None]

    def nearest_ids(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) encoder output -> (B, h, w) ids of the nearest codes (float32 distances)."""
        b, d, h, w = z.shape
        with torch.autocast(z.device.type, enabled=False):
            flat = self._prepare(z.float().permute(0, 2, 3, 1).reshape(-1, d))
            return self.distances(flat).argmin(1).view(b, h, w)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, h, w) ids -> (B, D, h, w) code vectors."""
        if ids.min() < 0 or ids.max() >= self.codebook_size:
            raise ValueError(f"code ids must be in [0, {self.codebook_size}), got [{int(ids.min())}, {int(ids.max())}]")
        return F.embedding(ids, self.codes()).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """z: (B, D, h, w) encoder output."""
        b, d, h, w = z.shape
        with torch.autocast(z.device.type, enabled=False):  # distances and losses in float32
            flat = self._prepare(z.float().permute(0, 2, 3, 1).reshape(-1, d))
            dist_ = self.distances(flat)
            ids = dist_.argmin(1)
            if self.training and self.ema_decay > 0:
                self._ema_update(flat.detach(), ids)
            quantized = F.embedding(ids, self.codes())
            commitment = F.mse_loss(flat, quantized.detach())
            codebook = quantized.new_zeros(()) if self.ema_decay > 0 else F.mse_loss(quantized, flat.detach())
            quantized = flat + (quantized - flat).detach()  # straight-through estimator
            counts = code_histogram(ids, self.codebook_size)
        return QuantizerOutput(
            quantized=quantized.view(b, h, w, d).permute(0, 3, 1, 2).contiguous().to(z.dtype),
            ids=ids.view(b, h, w), loss=codebook + self.commitment_weight * commitment,
            codebook_loss=codebook, commitment_loss=commitment, affinity=-dist_, latents=flat.detach(),
            usage=(counts > 0).float().mean(), perplexity=perplexity_of(counts),
        )

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, ids: torch.Tensor) -> None:
        onehot = F.one_hot(ids, self.codebook_size).type(flat.dtype)  # (N, K)
        counts = _all_reduce(onehot.sum(0))
        sums = _all_reduce(onehot.t() @ flat)
        self.ema_cluster_size.lerp_(counts, 1 - self.ema_decay)
        self.ema_embed_sum.lerp_(sums, 1 - self.ema_decay)
        # Laplace smoothing keeps rarely used codes from dividing by zero.
        n = self.ema_cluster_size.sum()
        size = (self.ema_cluster_size + 1e-5) / (n + self.codebook_size * 1e-5) * n
        self.codebook.copy_(self.ema_embed_sum / size[:, None])

    @torch.no_grad()
    def set_codes(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        """Overwrite codes `index` with `vectors` (and reset their EMA statistics)."""
        vectors = self._prepare(vectors.float()).to(self.codebook.dtype)
        self.codebook[index] = vectors
        if self.ema_decay > 0:
            self.ema_cluster_size[index] = 1.0
            self.ema_embed_sum[index] = vectors

    @torch.no_grad()
    def init_codebook(self, vectors: torch.Tensor, method: str = "kmeans", iters: int = 10,
                      generator: torch.Generator | None = None) -> None:
        """Initialise every code from (N, D) encoder outputs: 'sample' picks K random vectors,
        'kmeans' seeds with k-means++ and runs Lloyd iterations (spherical when l2_normalize)."""
        if method not in ("kmeans", "sample"):
            raise ValueError(f"codebook init must be 'kmeans' or 'sample', got {method!r}")
        vectors = self._prepare(vectors.float())
        if method == "kmeans":
            centers = kmeans_plus_plus(vectors, self.codebook_size, generator)
            centers = kmeans(vectors, centers, iters, normalize=self.l2_normalize, generator=generator)
        else:
            centers = sample_vectors(vectors, self.codebook_size, generator)
        self.set_codes(torch.arange(self.codebook_size, device=centers.device), centers)
        if self.ema_decay > 0:
            self.ema_cluster_size.fill_(1.0)
            self.ema_embed_sum.copy_(self.codebook)

    @torch.no_grad()
    def restart_codes(self, dead: torch.Tensor, vectors: torch.Tensor, generator: torch.Generator | None = None,
                      noise: float = 0.01) -> int:
        """Move the codes where `dead` (K,) is True onto random (N, D) encoder outputs; returns how many."""
        index = dead.nonzero().flatten()
        if index.numel() == 0:
            return 0
        picked = sample_vectors(self._prepare(vectors.float()), index.numel(), generator)
        jitter = torch.randn(picked.shape, generator=generator, device=picked.device) if generator is not None \
            else torch.randn_like(picked)
        self.set_codes(index, picked + noise * picked.std() * jitter)
        return index.numel()


def sample_vectors(vectors: torch.Tensor, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`num` rows of (N, D) `vectors`, without replacement when N >= num."""
    n = vectors.shape[0]
    if n >= num:
        index = torch.randperm(n, generator=generator, device=generator.device if generator else "cpu")[:num]
    else:
        index = torch.randint(n, (num,), generator=generator, device=generator.device if generator else "cpu")
    return vectors[index.to(vectors.device)]


def kmeans_plus_plus(vectors: torch.Tensor, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new center drawn with probability ~ D(x)^2."""
    device = generator.device if generator is not None else vectors.device
    first = torch.randint(len(vectors), (1,), generator=generator, device=device).to(vectors.device)
    centers = [vectors[first]]
    nearest = (vectors - centers[0]).pow(2).sum(1)
    for _ in range(num - 1):
        weights = nearest if nearest.sum() > 0 else torch.ones_like(nearest)
        pick = torch.multinomial(weights.to(device), 1, generator=generator).to(vectors.device)
        centers.append(vectors[pick])
        nearest = torch.minimum(nearest, (vectors - centers[-1]).pow(2).sum(1))
    return torch.cat(centers)


def kmeans(vectors: torch.Tensor, centers: torch.Tensor, iters: int, *, normalize: bool = False,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's algorithm from `centers`; an empty cluster is re-seeded with a random vector."""
    for _ in range(iters):
        ids = torch.cdist(vectors, centers).argmin(1)
        counts = torch.bincount(ids, minlength=len(centers)).float()
        sums = torch.zeros_like(centers).index_add_(0, ids, vectors)
        new = sums / counts.clamp_min(1)[:, None]
        empty = counts == 0
        if empty.any():
            new[empty] = sample_vectors(vectors, int(empty.sum()), generator)
        centers = F.normalize(new, dim=-1) if normalize else new
    return centers


class CodeUsage(nn.Module):
    """Moving average of how often each code is picked; finds dead codes and reports usage/perplexity.

    A separate module (not inside the quantizer) so tokenizer weights stay identical to the
    official parameter tree; training checkpoints it beside the model.
    """

    def __init__(self, codebook_size: int, decay: float = 0.99):
        super().__init__()
        self.decay = decay
        self.register_buffer("counts", torch.zeros(codebook_size))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, ids: torch.Tensor) -> None:
        counts = _all_reduce(code_histogram(ids, self.counts.numel()).to(self.counts.device))
        if self.updates == 0:
            self.counts.copy_(counts)
        else:
            self.counts.lerp_(counts, 1 - self.decay)
        self.updates += 1

    def dead_codes(self, threshold: float) -> torch.Tensor:
        """(K,) bool: codes picked fewer than `threshold` times per batch on average."""
        return self.counts < threshold

    def usage(self) -> float:
        return float((self.counts >= 0.5).float().mean())

    def perplexity(self) -> float:
        return float(perplexity_of(self.counts))
