"""Scheduled iterative parallel decoding (MaskGIT paper section 3.2; official `decode`).

`decode` takes a `tokens -> logits` callable, never the network, and counts the tokens to re-mask
from each sample's own initial number of unknown tokens, so the same loop serves generation
(everything unknown) and every editing task (a region unknown). `guided_logits_fn` turns a
conditional model into such a callable with classifier-free guidance in one batched forward pass.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .schedules import canonical_schedule, mask_ratio

LogitsFn = Callable[..., torch.Tensor]  # (tokens) -> (B, N, K); with `unknown_rows_only`: (tokens, rows) -> (M, K)
GeneratorArg = torch.Generator | Sequence[torch.Generator] | None


def _uniform(shape: tuple[int, ...], generator: GeneratorArg, device: torch.device) -> torch.Tensor:
    """U(0, 1) noise on `device`; a list of generators gives row b from generator b."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.rand(shape, generator=generator, device=device)
    if len(generator) != shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]}")
    # Only the random draws are per sample; all computation stays batched.
    return torch.stack([torch.rand(shape[1:], generator=g, device=device) for g in generator])


def gumbel_noise(shape: tuple[int, ...], generator: GeneratorArg, device: torch.device,
            where: torch.Tensor | None = None) -> torch.Tensor:
    """Gumbel(0, 1) noise of `shape`; with `where` (bool over the leading dims) only those rows, (M, *rest).

    The uniform draw is always the full shape, so a generator gives the same values at a row either way.
    """
    u = _uniform(shape, generator, device)
    if where is not None:
        u = u[where]  # a copy: the in-place steps below never touch the full draw
    tiny = torch.finfo(u.dtype).tiny
    # -log(-log u), in place; the clamps keep it finite: u = 0 or 1 must not give log(0).
    return u.clamp_min_(tiny).log_().neg_().clamp_min_(tiny).log_().neg_()


def _sample_rows(rows: torch.Tensor, current: torch.Tensor, unknown: torch.Tensor,
                 generator: GeneratorArg) -> tuple[torch.Tensor, torch.Tensor]:
    """Gumbel-max samples and log-probabilities from (M, K) `rows`, the logits at the M unknown positions.

    Known positions keep their token and get confidence +inf (never re-masked).
    Returns:
        (sampled (B, N) long, log_conf (B, N) float32).
    """
    shape = (*current.shape, rows.shape[-1])
    tokens = gumbel_noise(shape, generator, rows.device, where=unknown).add_(rows).argmax(-1)  # (M,)
    log_prob = rows.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    log_conf = torch.full(current.shape, float("inf"), device=rows.device).masked_scatter(unknown, log_prob)
    return current.masked_scatter(unknown, tokens), log_conf


def _sample_unknown(logits: torch.Tensor, current: torch.Tensor, unknown: torch.Tensor,
                    generator: GeneratorArg, rows_only: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gumbel-max samples and their log-probabilities at the unknown positions of (B, N, K) `logits`.

    Known positions keep their token and get confidence +inf (never re-masked). On the CPU, where these
    elementwise passes over B * N * K values cost ~7% of a step, only the unknown rows are computed; on
    accelerators every row is (static shapes, no host synchronisation). Both give the same values;
    `rows_only` overrides the choice.
    Returns:
        (sampled (B, N) long, log_conf (B, N) float32).
    """
    if logits.device.type == "cpu" if rows_only is None else rows_only:
        return _sample_rows(logits[unknown], current, unknown, generator)
    tokens = gumbel_noise(logits.shape, generator, logits.device).add_(logits).argmax(-1)
    sampled = torch.where(unknown, tokens, current)
    log_conf = logits.log_softmax(-1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1)
    return sampled, log_conf.masked_fill(~unknown, float("inf"))


def _check_args(tokens: torch.Tensor, steps: int, start_iter: int, temperature: float, choice_temperature: float):
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be a (B, N) long tensor, got {tuple(tokens.shape)} {tokens.dtype}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0 <= start_iter < steps:
        raise ValueError(f"start_iter must be in [0, steps) = [0, {steps}), got {start_iter}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    if not math.isfinite(choice_temperature) or choice_temperature < 0:
        raise ValueError(f"choice_temperature must be a finite number >= 0, got {choice_temperature}")


@torch.no_grad()
def decode(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    *,
    mask_id: int,
    steps: int = 8,
    schedule: str = "cosine",
    choice_temperature: float = 4.5,
    temperature: float = 1.0,
    start_iter: int = 0,
    generator: GeneratorArg = None,
    return_history: bool = False,
    unknown_rows_only: bool = False,
):
    """Fill the `mask_id` positions of `tokens` by iterative parallel decoding (SPEC section 4).

    Args:
        logits_fn: maps (B, N) tokens to (B, N, K) logits over the codebook.
        tokens: (B, N) long, codebook ids in [0, K) where known and `mask_id` where unknown.
        steps: T, the total number of iterations of the schedule.
        schedule: mask schedule gamma (see `maskgit.schedules`).
        choice_temperature: scale of the Gumbel noise added to log-confidences, annealed by (1 - r).
        temperature: divides the logits before sampling (1.0 = official).
        start_iter: skip the first iterations (official editing: 12 steps from iteration 2).
        generator: a `torch.Generator` on the tokens' device, or one per sample (row b of every
            random draw then comes from generator b, so a batch equals its samples decoded alone).
        return_history: also return the (B, steps - start_iter, N) tokens after each step.
        unknown_rows_only: call `logits_fn(tokens, rows)` with `rows` = the (B, N) bool unknown positions and
            expect (M, K) logits at those M positions only (row-major), so the network skips its output head
            where nothing is sampled. Same samples as the full call; shapes change every step, so use it where
            that is cheap (CPU, no torch.compile).
    Returns:
        (B, N) long tokens with every position decided; with `return_history`, a tuple
        (tokens, history) where history holds `mask_id` at positions still unknown after each step.
    """
    _check_args(tokens, steps, start_iter, temperature, choice_temperature)
    canonical_schedule(schedule)  # fail before any model call on a bad name
    batch, num_tokens = tokens.shape
    device = tokens.device
    unknown_at_start = (tokens == mask_id).sum(-1)  # U0, per sample: (B,)
    current = tokens.clone()
    history = []
    # r = (t+1)/T for every step, copied to the device once: the loop itself never waits for the host.
    progress = torch.tensor([(t + 1) / steps for t in range(steps)], dtype=torch.float32, device=device)
    for t in range(start_iter, steps):
        unknown = current == mask_id  # (B, N)
        logits = (logits_fn(current, unknown) if unknown_rows_only else logits_fn(current)).float()
        if temperature != 1.0:
            logits = logits / temperature
        expected = (int(unknown.sum()),) if unknown_rows_only else (batch, num_tokens)
        if logits.shape[:-1] != expected:
            raise ValueError(f"logits_fn returned {tuple(logits.shape)}, expected {(*expected, 'K')}")
        # categorical sample and its log-probability, (B, N) each
        sampled, log_conf = (_sample_rows(logits, current, unknown, generator) if unknown_rows_only
                             else _sample_unknown(logits, current, unknown, generator))
        if t == steps - 1:
            current = sampled  # after the last step everything is decided
        else:
            # Official cumulative rule, in float32: n = floor(U0 * gamma(r)), clamped to [1, unknown - 1].
            r = (t + 1) / steps
            # log/exp take each sample's initial unknown count as N, as the official schedule call does.
            ratio = mask_ratio(progress[t], schedule, unknown_at_start)
            n = torch.floor(unknown_at_start.float() * ratio).long()
            n = torch.maximum(torch.ones_like(n), torch.minimum(unknown.sum(-1) - 1, n))
            noisy = log_conf + choice_temperature * (1.0 - r) * gumbel_noise((batch, num_tokens), generator, device)
            ranks = noisy.argsort(dim=-1).argsort(dim=-1)  # 0 = least confident
            remask = (ranks < n.unsqueeze(-1)) & unknown
            current = sampled.masked_fill(remask, mask_id)
        if return_history:
            history.append(current)
    if return_history:
        return current, torch.stack(history, dim=1)
    return current


def guidance_scale_at(guidance_scale: float, guidance_schedule: str, progress: torch.Tensor) -> torch.Tensor:
    """Guidance scale at decoding progress (fraction of tokens decided, per sample).

    `constant` keeps the scale; `linear` ramps it from 0 (nothing decided) to the full scale.
    """
    if guidance_schedule == "constant":
        return torch.full_like(progress, guidance_scale)
    if guidance_schedule == "linear":
        return guidance_scale * progress
    raise ValueError(f"unknown guidance_schedule {guidance_schedule!r}; choose 'constant' or 'linear'")


def guided_logits_fn(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    labels: torch.Tensor,
    *,
    mask_id: int,
    null_label: int | None,
    guidance_scale: float = 0.0,
    guidance_schedule: str = "constant",
) -> LogitsFn:
    """Bind `labels` to a conditional model, with classifier-free guidance when the scale is not 0.

    Args:
        model_fn: (tokens (B, N), labels (B,)) -> logits (B, N, K); it takes `rows=` (B, N) bool for
            (M, K) logits at those positions only when the callable is used with `rows` (see `decode`).
        labels: (B,) class indices.
        mask_id: the mask token id (to measure progress for the `linear` guidance schedule).
        null_label: the label meaning 'no class'; required when guidance_scale != 0.
        guidance_scale: w in logits = cond + w * (cond - uncond); 0 = plain conditional logits.
    Returns:
        A `(tokens, rows=None) -> logits` callable; with guidance it runs one forward pass on a 2B batch.
    """
    guidance_scale_at(guidance_scale, guidance_schedule, torch.zeros(1))  # validate the schedule name
    if not math.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale}")
    if guidance_scale == 0:
        def conditional(tokens: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
            return model_fn(tokens, labels) if rows is None else model_fn(tokens, labels, rows=rows)
        return conditional
    if null_label is None:
        raise ValueError("guidance needs a model trained with a null class (TransformerConfig.null_class=True)")

    def logits_fn(tokens: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        both_labels = torch.cat([labels, torch.full_like(labels, null_label)])
        both = model_fn(torch.cat([tokens, tokens]), both_labels) if rows is None else \
            model_fn(torch.cat([tokens, tokens]), both_labels, rows=torch.cat([rows, rows]))
        cond, uncond = both.float().chunk(2)  # row-major selection: the first half of the rows is the first batch
        progress = (tokens != mask_id).float().mean(-1)  # (B,)
        scale = guidance_scale_at(guidance_scale, guidance_schedule, progress)
        scale = scale[:, None, None] if rows is None else scale.repeat_interleave(rows.sum(-1))[:, None]
        return cond + scale * (cond - uncond)

    return logits_fn
