"""Scheduled iterative parallel decoding (MaskGIT paper section 3.2; official `decode`).

`decode` takes a `tokens -> logits` callable, never the network, and counts the tokens to re-mask
from each sample's own initial number of unknown tokens, so the same loop serves generation
(everything unknown) and every editing task (a region unknown). `guided_logits_fn` turns a
conditional model into such a callable with classifier-free guidance in one batched forward pass.
Three samplers share the loop (SPEC section 4b): `confidence`, the official one, re-masks the least confident
sampled tokens; `halton` decides positions in the order of a 2-D Halton sequence over the token grid (Besnier
et al., ICLR 2025) and samples only those; `grouped` (ReCAP's grouped decoding, arXiv 2505.19089) runs a
confidence step every `group` steps and lets the steps between decide the next positions of that step's
confidence order, sampling only there, so that their (cached) passes need logits at those few positions only.
Guidance and softmax temperature can follow schedules over the steps.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .schedules import canonical_schedule, mask_ratio

SAMPLERS = ("confidence", "halton", "grouped")
GUIDANCE_SCHEDULES = ("constant", "linear", "power-cosine")
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


def radical_inverse(index: int, base: int) -> float:
    """The radical inverse of `index` in `base`: its digits mirrored behind the point (1 -> 1/2, 2 -> 1/4 in base 2)."""
    value, scale = 0.0, 1.0 / base
    while index:
        index, digit = divmod(index, base)
        value += digit * scale
        scale /= base
    return value


def halton_order(side: int) -> torch.Tensor:
    """(side * side,) raster positions of a side x side grid in 2-D Halton order (bases 2 and 3, from index 1).

    Point i is (radical_inverse(i, 2), radical_inverse(i, 3)) scaled by the side and floored to (row, column);
    each cell is kept at its first occurrence until every cell is listed (SPEC section 4b).
    """
    order, seen, index = [], set(), 1
    while len(order) < side * side:
        row, col = int(radical_inverse(index, 2) * side), int(radical_inverse(index, 3) * side)
        if (row, col) not in seen:
            seen.add((row, col))
            order.append(row * side + col)
        index += 1
    return torch.tensor(order, dtype=torch.long)


def temperature_at(step: int, steps: int, temperature: float, temperature_end: float | None) -> float:
    """Softmax temperature at `step` of `steps`: constant, or linear from `temperature` to `temperature_end`."""
    if temperature_end is None or steps == 1:
        return temperature
    return temperature + (temperature_end - temperature) * step / (steps - 1)


def _check_args(tokens: torch.Tensor, steps: int, start_iter: int, temperature: float, choice_temperature: float,
                temperature_end: float | None = None, sampler: str = "confidence"):
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"tokens must be a (B, N) long tensor, got {tuple(tokens.shape)} {tokens.dtype}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0 <= start_iter < steps:
        raise ValueError(f"start_iter must be in [0, steps) = [0, {steps}), got {start_iter}")
    for name, value in (("temperature", temperature), ("temperature_end", temperature_end)):
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value}")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {list(SAMPLERS)}")
    side = math.isqrt(tokens.shape[-1]) if tokens.dim() == 2 else 0
    if sampler == "halton" and side * side != tokens.shape[-1]:
        raise ValueError(f"the halton sampler needs a square token grid, got {tokens.shape[-1]} tokens")
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
    temperature_end: float | None = None,
    sampler: str = "confidence",
    group: int = 1,
    start_iter: int = 0,
    generator: GeneratorArg = None,
    return_history: bool = False,
    unknown_rows_only: bool = False,
):
    """Fill the `mask_id` positions of `tokens` by iterative parallel decoding (SPEC sections 4 and 4b).

    Args:
        logits_fn: maps (B, N) tokens to (B, N, K) logits over the codebook.
        tokens: (B, N) long, codebook ids in [0, K) where known and `mask_id` where unknown.
        steps: T, the total number of iterations of the schedule.
        schedule: mask schedule gamma (see `maskgit.schedules`); it sets how many tokens each step decides.
        choice_temperature: scale of the Gumbel noise added to log-confidences, annealed by (1 - r)
            (`confidence` sampler only).
        temperature: divides the logits before sampling (1.0 = official); with `temperature_end`, the
            temperature at the first step, running linearly to `temperature_end` at the last.
        sampler: `confidence` (official: sample everywhere, keep the most confident), `halton` (decide the
            next positions of a randomly rolled 2-D Halton order over the grid; sample only there) or `grouped`
            (a confidence step every `group` steps; the steps between decide, with fresh logits, the positions
            that step ranked next, as many as the schedule says; `group` 1 is `confidence` exactly).
        group: `grouped` only: steps per group, one confidence step and `group` - 1 planned ones (the pipeline
            uses `cheap_passes` + 1, so that each group is one full forward pass and its cheap passes).
        start_iter: skip the first iterations (official editing: 12 steps from iteration 2).
        generator: a `torch.Generator` on the tokens' device, or one per sample (row b of every
            random draw then comes from generator b, so a batch equals its samples decoded alone).
        return_history: also return the (B, steps - start_iter, N) tokens after each step.
        unknown_rows_only: call `logits_fn(tokens, rows)` with `rows` = the (B, N) bool positions whose logits
            are needed (the unknown ones; `halton` and planned `grouped` steps: those decided at this step) and
            expect (M, K) logits at those M positions only (row-major), so the network skips its output head
            elsewhere. Same samples as the full call; shapes change every step, so use it where that is cheap
            (CPU, no torch.compile).
    Returns:
        (B, N) long tokens with every position decided; with `return_history`, a tuple
        (tokens, history) where history holds `mask_id` at positions still unknown after each step.
    """
    _check_args(tokens, steps, start_iter, temperature, choice_temperature, temperature_end, sampler)
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ValueError(f"group must be an integer >= 1, got {group!r}")
    canonical_schedule(schedule)  # fail before any model call on a bad name
    device = tokens.device
    unknown_at_start = (tokens == mask_id).sum(-1)  # U0, per sample: (B,)
    # r = (t+1)/T for every step, copied to the device once: the loop itself never waits for the host.
    progress = torch.tensor([(t + 1) / steps for t in range(steps)], dtype=torch.float32, device=device)
    order = _halton_ordinals(tokens == mask_id, generator) if sampler == "halton" else None
    current = tokens.clone()
    history, ranks = [], None  # ranks: grouped, the noisy confidence ranks of its last confidence step
    for t in range(start_iter, steps):
        unknown = current == mask_id  # (B, N)
        tau = temperature_at(t, steps, temperature, temperature_end)
        if sampler == "grouped" and (t - start_iter) % group:
            # a planned step: of the positions the group's confidence step re-masked (its ranks 0 .. n - 1, least
            # confident first), the most confident are decided until the schedule's n_t are left unknown
            last = t == steps - 1
            left = None if last else _masked_after(t, steps, progress[t], schedule, unknown_at_start, unknown)
            now = unknown if last else unknown & (ranks >= left.unsqueeze(-1))
            current = _decide(logits_fn, current, now, tau, t, steps, generator, unknown_rows_only)
        elif order is None:
            current, ranks = _confidence_step(logits_fn, current, unknown, unknown_at_start, t, steps, progress[t],
                                              schedule, choice_temperature, tau, mask_id, generator,
                                              unknown_rows_only)
        else:
            # Halton: the first c_t unknown positions of the rolled order are decided by the end of step t,
            # c_t = max(t + 1, floor(U0 * (1 - gamma(r)))) (the reference's count, over each sample's U0).
            decided = torch.floor(unknown_at_start.float() * (1 - mask_ratio(progress[t], schedule,
                                                                             unknown_at_start))).long()
            decided = torch.minimum(torch.clamp(decided, min=t + 1), unknown_at_start)
            if t == steps - 1:
                decided = unknown_at_start  # gamma is clipped at 1e-6, not 0: the last step decides the rest
            now = unknown & (order < decided.unsqueeze(-1))  # (B, N): the positions decided at this step
            current = _decide(logits_fn, current, now, tau, t, steps, generator, unknown_rows_only)
        if return_history:
            history.append(current)
    if return_history:
        return current, torch.stack(history, dim=1)
    return current


def _call(logits_fn: LogitsFn, current: torch.Tensor, rows: torch.Tensor, rows_only: bool,
          step_progress: float) -> torch.Tensor:
    """Logits from `logits_fn`, float32: (M, K) at `rows` with `rows_only`, else (B, N, K); shapes checked.
    A callable marked `takes_step_progress` (`guided_logits_fn`) also gets the step's r = (t + 1) / T."""
    extra = {"step_progress": step_progress} if getattr(logits_fn, "takes_step_progress", False) else {}
    logits = (logits_fn(current, rows, **extra) if rows_only else logits_fn(current, **extra)).float()
    expected = (int(rows.sum()),) if rows_only else tuple(current.shape)
    if logits.shape[:-1] != expected:
        raise ValueError(f"logits_fn returned {tuple(logits.shape)}, expected {(*expected, 'K')}")
    return logits


def _sample(logits: torch.Tensor, current: torch.Tensor, where: torch.Tensor, generator: GeneratorArg,
            rows_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens sampled at `where` from (M, K) rows or (B, N, K) logits; (sampled, log-confidence) as `_sample_rows`."""
    if rows_only:
        return _sample_rows(logits, current, where, generator)
    return _sample_unknown(logits, current, where, generator)


def _decide(logits_fn: LogitsFn, current: torch.Tensor, now: torch.Tensor, tau: float, t: int, steps: int,
            generator: GeneratorArg, rows_only: bool) -> torch.Tensor:
    """Sample the tokens at the (B, N) positions `now` (halton and planned grouped steps: no confidence)."""
    if not now.any():  # with fewer unknown tokens than steps (editing), a step may decide none
        return current
    logits = _call(logits_fn, current, now, rows_only, (t + 1) / steps)
    return _sample(logits / tau if tau != 1.0 else logits, current, now, generator, rows_only)[0]


def _masked_after(t: int, steps: int, r_t: torch.Tensor, schedule: str, unknown_at_start: torch.Tensor,
                  unknown: torch.Tensor) -> torch.Tensor:
    """(B,) tokens left unknown after step t < T - 1: the official cumulative rule n = floor(U0 * gamma(r)) in
    float32, clamped to [1, unknown - 1] (log/exp take each sample's U0 as N, as the official schedule call does)."""
    n = torch.floor(unknown_at_start.float() * mask_ratio(r_t, schedule, unknown_at_start)).long()
    return torch.maximum(torch.ones_like(n), torch.minimum(unknown.sum(-1) - 1, n))


def _confidence_step(logits_fn: LogitsFn, current: torch.Tensor, unknown: torch.Tensor, unknown_at_start: torch.Tensor,
                     t: int, steps: int, r_t: torch.Tensor, schedule: str, choice_temperature: float, tau: float,
                     mask_id: int, generator: GeneratorArg, rows_only: bool
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step of the official sampler: sample every unknown token, re-mask the n least confident (noisy).
    Returns the tokens and the (B, N) ranks of the noisy confidences (0 = least confident; None at the last step)."""
    logits = _call(logits_fn, current, unknown, rows_only, (t + 1) / steps)
    if tau != 1.0:
        logits = logits / tau
    sampled, log_conf = _sample(logits, current, unknown, generator, rows_only)  # (B, N) each
    if t == steps - 1:
        return sampled, None  # after the last step everything is decided
    n = _masked_after(t, steps, r_t, schedule, unknown_at_start, unknown)
    r = (t + 1) / steps
    noisy = log_conf + choice_temperature * (1.0 - r) * gumbel_noise(tuple(current.shape), generator, current.device)
    ranks = noisy.argsort(dim=-1).argsort(dim=-1)  # 0 = least confident
    remask = (ranks < n.unsqueeze(-1)) & unknown
    return sampled.masked_fill(remask, mask_id), ranks


def _halton_ordinals(unknown: torch.Tensor, generator: GeneratorArg) -> torch.Tensor:
    """(B, N) rank of each unknown position in its sample's Halton order, rolled by a random offset; the known
    positions rank after all unknown ones (they are skipped)."""
    batch, num_tokens = unknown.shape
    base_rank = halton_order(math.isqrt(num_tokens)).argsort().to(unknown.device)  # (N,) index of each position
    shift = (_uniform((batch, 1), generator, unknown.device) * num_tokens).long()  # (B, 1), one draw per sample
    rank = (base_rank.unsqueeze(0) + shift) % num_tokens  # torch.roll by `shift`: index j moves to j + shift
    key = rank + num_tokens * (~unknown).long()
    return key.argsort(dim=-1).argsort(dim=-1)


def guidance_scale_at(guidance_scale: float, guidance_schedule: str, progress: torch.Tensor,
                      guidance_exponent: float = 2.75) -> torch.Tensor:
    """Guidance scale at decoding progress p in [0, 1] (SPEC 4b; `guided_logits_fn` says which progress).

    `constant` keeps the scale w; `linear` ramps it as w * p; `power-cosine` (MDT, TiTok, MaskBit) as
    w * (1 - cos(pi * p^exponent)) / 2, from 0 to w, staying low for longer as the exponent grows.
    """
    if guidance_schedule == "constant":
        return torch.full_like(progress, guidance_scale)
    if guidance_schedule == "linear":
        return guidance_scale * progress
    if guidance_schedule == "power-cosine":
        return guidance_scale * (1 - torch.cos(math.pi * progress.clamp(0, 1) ** guidance_exponent)) / 2
    raise ValueError(f"unknown guidance_schedule {guidance_schedule!r}; choose one of {list(GUIDANCE_SCHEDULES)}")


def guided_logits_fn(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    labels: torch.Tensor,
    *,
    mask_id: int,
    null_label: int | None,
    guidance_scale: float = 0.0,
    guidance_schedule: str = "constant",
    guidance_exponent: float = 2.75,
    guidance_start: float = 0.0,
) -> LogitsFn:
    """Bind `labels` to a conditional model, with classifier-free guidance when the scale is not 0.

    Args:
        model_fn: (tokens (B, N), labels (B,)) -> logits (B, N, K); it takes `rows=` (B, N) bool for
            (M, K) logits at those positions only when the callable is used with `rows` (see `decode`).
        labels: (B,) class indices.
        mask_id: the mask token id (to measure progress for the `linear` guidance schedule).
        null_label: the label meaning 'no class'; required when guidance_scale != 0.
        guidance_scale: w in logits = cond + w * (cond - uncond); 0 = plain conditional logits.
        guidance_schedule: how w grows over decoding (see `guidance_scale_at`).
        guidance_exponent: p of the power-cosine schedule.
        guidance_start: a guidance interval (Kynkaanniemi et al. 2024): steps with r = (t + 1) / T <= this run the
            conditional pass alone (w = 0, half the FLOPs); later steps are guided as the schedule says.
    Returns:
        A `(tokens, rows=None) -> logits` callable; with guidance it runs one forward pass on a 2B batch.
    """
    guidance_scale_at(guidance_scale, guidance_schedule, torch.zeros(1))  # validate the schedule name
    if not math.isfinite(guidance_exponent) or guidance_exponent <= 0:
        raise ValueError(f"guidance_exponent must be a finite number > 0, got {guidance_exponent}")
    if not 0 <= guidance_start < 1:
        raise ValueError(f"guidance_start must be in [0, 1), got {guidance_start}")
    if not math.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale must be a finite number, got {guidance_scale}")
    def conditional(tokens: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        return model_fn(tokens, labels) if rows is None else model_fn(tokens, labels, rows=rows)

    if guidance_scale == 0:
        return conditional
    if null_label is None:
        raise ValueError("guidance needs a model trained with a null class (TransformerConfig.null_class=True)")

    def logits_fn(tokens: torch.Tensor, rows: torch.Tensor | None = None, step_progress: float | None = None):
        if step_progress is not None and step_progress <= guidance_start:
            return conditional(tokens, rows).float()  # outside the guidance interval: w = 0, no unconditional pass
        # power-cosine follows the step, r = (t + 1) / T (as MDT, TiTok and MaskBit); linear the fraction of
        # tokens decided (this library's earlier rule, which the bundled model's defaults were chosen with)
        if guidance_schedule == "power-cosine" and step_progress is not None:
            progress = torch.full((len(tokens),), step_progress, device=tokens.device)
        else:
            progress = (tokens != mask_id).float().mean(-1)  # (B,)
        scale = guidance_scale_at(guidance_scale, guidance_schedule, progress, guidance_exponent)
        if tokens.device.type == "cpu" and not scale.any():
            # w = 0 for every sample (the linear schedule's first step when generating): cond + 0 * (cond - uncond)
            # is cond exactly, so the unconditional pass is skipped (on accelerators this check would wait for
            # the device; they keep the 2B pass)
            return conditional(tokens, rows).float()
        both_labels = torch.cat([labels, torch.full_like(labels, null_label)])
        both = model_fn(torch.cat([tokens, tokens]), both_labels) if rows is None else \
            model_fn(torch.cat([tokens, tokens]), both_labels, rows=torch.cat([rows, rows]))
        cond, uncond = both.float().chunk(2)  # row-major selection: the first half of the rows is the first batch
        scale = scale[:, None, None] if rows is None else scale.repeat_interleave(rows.sum(-1))[:, None]
        return cond + scale * (cond - uncond)

    logits_fn.takes_step_progress = True  # `decode` passes step_progress=(t + 1) / T
    return logits_fn
