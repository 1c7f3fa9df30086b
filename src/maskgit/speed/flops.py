"""Analytic cost of sampling one image: model FLOPs and weight / KV-cache memory traffic per sampler.

Counts the matmuls of the official BERT layout (SPEC 5): per layer and token 2 * (4 d^2 + 2 d f) FLOPs for
the projections and MLP, 4 * d FLOPs per attended (query, key) pair (QK^T and AV), and the MLM head
2 * (d^2 + d K) per position it runs at. Layer norms, GELU and softmax are left out (a few percent).
MaskGIT runs the head at every image token, or (`head_at_unknown`, the CPU path of `decode`) only at the
tokens still unknown at each step of the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import TransformerConfig
from ..schedules import mask_ratio

SAMPLER_NAMES = ("maskgit", "ar-cached", "ar-naive")


@dataclass(frozen=True)
class Cost:
    """Per image: model FLOPs, network calls, and bytes of weights and KV cache read (batch 1)."""

    flops: float
    network_calls: int
    weight_bytes: float  # weights read once per network call; a batch shares them
    cache_bytes: float  # keys/values read by the KV-cached sampler


def _token_flops(cfg: TransformerConfig) -> float:
    d, f = cfg.hidden_size, cfg.intermediate_size
    return cfg.num_layers * 2 * (4 * d * d + 2 * d * f)


def _head_flops(cfg: TransformerConfig) -> float:
    return 2 * (cfg.hidden_size**2 + cfg.hidden_size * cfg.codebook_size)


def parameter_count(cfg: TransformerConfig) -> int:
    d, f, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 4 * d  # attention, MLP, two LayerNorms
    return v * d + cfg.seq_len * d + 2 * d + cfg.num_layers * layer + d * d + 3 * d + v


def unknown_per_step(num_tokens: int, steps: int, schedule: str = "cosine") -> list[int]:
    """Tokens still unknown at the start of each of the `steps` steps when generating all `num_tokens` (SPEC 4)."""
    counts, unknown = [], num_tokens
    for t in range(steps):
        counts.append(unknown)
        n = int(torch.floor(num_tokens * mask_ratio((t + 1) / steps, schedule, num_tokens)))
        unknown = max(1, min(unknown - 1, n))
    return counts


def sampler_cost(cfg: TransformerConfig, sampler: str, steps: int = 8, bytes_per_value: int = 4, *,
                 head_at_unknown: bool = False, schedule: str = "cosine") -> Cost:
    """Cost of one image with `sampler` in SAMPLER_NAMES (`steps` for maskgit); attention counted causally for AR."""
    n, length, d, layers = cfg.num_tokens, cfg.seq_len, cfg.hidden_size, cfg.num_layers
    weights = parameter_count(cfg) * bytes_per_value
    if sampler == "maskgit":  # T full passes over the (1 + N)-token sequence, head on the N (or unknown) tokens
        head_rows = sum(unknown_per_step(n, steps, schedule)) if head_at_unknown else steps * n
        flops = steps * (length * _token_flops(cfg) + layers * 4 * length * length * d) + head_rows * _head_flops(cfg)
        return Cost(flops, steps, steps * weights, 0.0)
    if sampler == "ar-naive":  # step i reruns the prefix of l = i + 1 inputs; query j attends to j + 1 keys
        flops = sum(l * _token_flops(cfg) + layers * 2 * l * (l + 1) * d + _head_flops(cfg) for l in range(1, n + 1))  # noqa: E741
        return Cost(flops, n, n * weights, 0.0)
    if sampler == "ar-cached":  # one token per step, attending to the l cached keys/values
        flops = sum(_token_flops(cfg) + layers * 4 * l * d + _head_flops(cfg) for l in range(1, n + 1))  # noqa: E741
        cache = sum(layers * 2 * l * d * bytes_per_value for l in range(1, n + 1))  # noqa: E741
        return Cost(flops, n, n * weights, cache)
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLER_NAMES}")
