"""Mask schedules gamma(r): the fraction of tokens still masked at progress r in [0, 1].

One pure function serves both training (r ~ U[0, 1)) and decoding (r = (t + 1) / T), following
the MaskGIT paper's ablation (section 3.3) and the official JAX `schedule` function: the same
formulas, the same names, and the same clip of the result into [1e-6, 1].
"""

from __future__ import annotations

import math

import torch

# Paper names -> official names. Official names map to themselves.
_ALIASES = {
    "linear": "uniform",
    "uniform": "uniform",
    "cosine": "cosine",
    "square": "pow2",
    "cubic": "pow3",
    "sqrt": "pow0.5",
    "square-root": "pow0.5",
    "square_root": "pow0.5",
    "exponential": "exp",
    "exp": "exp",
    "logarithmic": "log",
    "log": "log",
    "arccos": "arccos",
}

SCHEDULES = ("linear", "cosine", "square", "cubic", "exponential", "square-root", "logarithmic", "arccos")
"""The paper's schedule names (plus arccos); any `powX`, e.g. `pow1.5`, is accepted too."""


def canonical_schedule(schedule: str) -> str:
    """Return the official name of `schedule` (`uniform`, `powX`, `cosine`, `log`, `exp`, `arccos`)."""
    name = schedule.strip().lower()
    if name in _ALIASES:
        return _ALIASES[name]
    if name.startswith("pow"):
        try:
            exponent = float(name[3:])
        except ValueError:
            exponent = -1.0
        if exponent > 0:
            return name
    raise ValueError(
        f"unknown mask schedule {schedule!r}; choose one of {list(SCHEDULES)} "
        f"or their official names (uniform, cosine, log, exp, powX such as pow2)"
    )


def mask_ratio(r: float | torch.Tensor, schedule: str = "cosine",
               num_tokens: int | torch.Tensor | None = None) -> torch.Tensor:
    """gamma(r) for the given schedule, clipped into [1e-6, 1] as in the official code.

    Args:
        r: progress in [0, 1]; a float or a tensor (vectorised, dtype kept; floats become float32
            so decoding reproduces the official float32 arithmetic).
        schedule: a paper name (`linear`, `cosine`, `square`, ...) or an official one (`uniform`, `pow2`, ...).
        num_tokens: N, needed by the official `log` and `exp` forms only; a tensor broadcasts against
            `r` (decoding passes each sample's initial unknown count, as the official code does).
    Returns:
        A tensor of the same shape as `r`.
    """
    name = canonical_schedule(schedule)
    r = torch.as_tensor(r, dtype=torch.float32) if not torch.is_tensor(r) else r
    if not r.is_floating_point():
        r = r.float()
    if name in ("log", "exp"):
        if num_tokens is None:
            raise ValueError(f"the {name!r} schedule needs num_tokens (the number of tokens N)")
        # N <= 1 would divide by log2(1) = 0; such samples have nothing left to schedule anyway.
        log2_n = torch.log2(torch.as_tensor(num_tokens, dtype=r.dtype, device=r.device).clamp_min(2))
    if name == "uniform":
        ratio = 1.0 - r
    elif name.startswith("pow"):
        ratio = 1.0 - r ** float(name[3:])
    elif name == "cosine":
        ratio = torch.cos(math.pi / 2.0 * r)
    elif name == "log":
        ratio = -torch.log2(r) / log2_n
    elif name == "exp":
        ratio = 1.0 - torch.exp2(-log2_n * (1.0 - r))
    else:  # arccos
        ratio = torch.arccos(r.clamp(-1.0, 1.0)) * (2.0 / math.pi)
    return ratio.clamp(1e-6, 1.0)
