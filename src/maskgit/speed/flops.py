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

SAMPLER_NAMES = ("maskgit", "halton", "grouped", "ar-cached", "ar-naive")
BENCH_SAMPLER_HELP = ("maskgit-T (the confidence sampler, T steps), halton-T (the Halton sampler, arccos schedule), "
                      "grouped-T (ReCAP's grouped decoding), each with +cK (K cached passes after each full pass, "
                      "e.g. halton-8+c1, grouped-8+c2), ar-cached, ar-naive")


@dataclass(frozen=True)
class ParallelSampler:
    """A bench sampler name such as `maskgit-8` or `halton-12+c1`: decoding sampler, steps and cheap passes."""

    sampler: str  # "confidence", "halton" or "grouped"
    steps: int
    cheap_passes: int = 0

    @property
    def schedule(self) -> str:
        return "arccos" if self.sampler == "halton" else "cosine"  # halton: its reference's schedule


def parse_sampler(name: str) -> ParallelSampler | None:
    """`maskgit-T[+cK]` / `halton-T[+cK]` / `grouped-T[+cK]` -> ParallelSampler; `ar-cached` / `ar-naive` -> None;
    else ValueError."""
    if name in ("ar-cached", "ar-naive"):
        return None
    kind, _, rest = name.partition("-")
    steps, _, cheap = rest.partition("+c")
    if kind in ("maskgit", "halton", "grouped") and steps.isdigit() and int(steps) > 0 and \
            (not cheap or cheap.isdigit()) and ("+" not in rest or cheap):
        return ParallelSampler("confidence" if kind == "maskgit" else kind, int(steps), int(cheap or 0))
    raise ValueError(f"unknown sampler {name!r}; use {BENCH_SAMPLER_HELP}")


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


def decoded_per_step(num_tokens: int, steps: int, sampler: str = "maskgit", schedule: str = "cosine") -> list[int]:
    """Cumulative tokens decided after each step when generating all `num_tokens` (SPEC 4 and 4b)."""
    if sampler == "halton":
        out = []
        for t in range(steps - 1):
            ratio = float(mask_ratio(torch.tensor((t + 1) / steps, dtype=torch.float32), schedule, num_tokens))
            out.append(min(num_tokens, max(t + 1, int(num_tokens * (1 - ratio)))))
        return out + [num_tokens]
    unknown = unknown_per_step(num_tokens, steps, schedule)[1:] + [0]
    return [num_tokens - u for u in unknown]


def pass_rows(num_tokens: int, steps: int, sampler: str = "maskgit", schedule: str = "cosine",
              cheap_passes: int = 0, head_at_unknown: bool = False) -> list[tuple[int, int]]:
    """Per step: (image positions run through the layers, positions the head runs at). A full pass runs all of
    them; a cheap pass (ReCAP) the positions decided since the last full pass plus those whose logits are
    needed: the unknown ones (confidence, and the confidence steps of grouped), or the ones decided at this step
    (halton, and the planned steps of grouped: every (cheap_passes + 1)-th step is a confidence step). As
    `CachedPasses`, a cheap pass that would run more than `FULL_ABOVE` of the positions runs as a full pass (and the
    count restarts)."""
    from ..cached_passes import FULL_ABOVE

    decided = [0] + decoded_per_step(num_tokens, steps, sampler, schedule)  # decided[t]: before step t
    rows, last_full = [], None
    for t in range(steps):
        # logits needed: halton and planned steps, the positions decided now (given as rows to a head at the
        # unknown only; without rows, a cheap pass recomputes every unknown position); else every unknown position
        planned = sampler == "halton" or sampler == "grouped" and t % (cheap_passes + 1) > 0
        needed = (decided[t + 1] - decided[t]) if planned and head_at_unknown else num_tokens - decided[t]
        head = needed if head_at_unknown else num_tokens
        computed = None if last_full is None or t - last_full > cheap_passes else \
            decided[t] - decided[last_full] + needed
        if computed is None or computed > FULL_ABOVE * num_tokens:
            last_full, computed = t, num_tokens
        rows.append((computed, head))
    return rows


def sampler_cost(cfg: TransformerConfig, sampler: str, steps: int = 8, bytes_per_value: int = 4, *,
                 head_at_unknown: bool = False, schedule: str = "cosine", cheap_passes: int = 0) -> Cost:
    """Cost of one image with `sampler` in SAMPLER_NAMES (`steps` and `cheap_passes` for maskgit / halton / grouped);
    attention counted causally for AR. A cheap pass's rows attend to the whole cached sequence."""
    n, length, d, layers = cfg.num_tokens, cfg.seq_len, cfg.hidden_size, cfg.num_layers
    weights = parameter_count(cfg) * bytes_per_value
    if sampler in ("maskgit", "halton", "grouped"):
        flops, prefix = 0.0, length - n  # the class token: rerun by full passes only
        for computed, head in pass_rows(n, steps, sampler, schedule, cheap_passes, head_at_unknown):
            m = computed + (prefix if computed == n else 0)  # (a cheap pass of every position counts as full)
            flops += m * _token_flops(cfg) + layers * 4 * m * length * d + head * _head_flops(cfg)
        return Cost(flops, steps, steps * weights, 0.0)
    if sampler == "ar-naive":  # step i reruns the prefix of l = i + 1 inputs; query j attends to j + 1 keys
        flops = sum(l * _token_flops(cfg) + layers * 2 * l * (l + 1) * d + _head_flops(cfg) for l in range(1, n + 1))  # noqa: E741
        return Cost(flops, n, n * weights, 0.0)
    if sampler == "ar-cached":  # one token per step, attending to the l cached keys/values
        flops = sum(_token_flops(cfg) + layers * 4 * l * d + _head_flops(cfg) for l in range(1, n + 1))  # noqa: E741
        cache = sum(layers * 2 * l * d * bytes_per_value for l in range(1, n + 1))  # noqa: E741
        return Cost(flops, n, n * weights, cache)
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLER_NAMES}")
