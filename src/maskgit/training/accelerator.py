"""The Accelerator both training loops run under: CUDA when present, else gloo CPU processes.

`accelerate launch --multi_gpu --num_processes N` on a machine without CUDA starts N gloo CPU processes
(`cpu=True`). The process group waits up to `COLLECTIVE_TIMEOUT` in a collective before failing: far above
gloo's default of 30 minutes, because a long run on a shared machine gets paused (SIGSTOP / SIGCONT) while
other work has the CPU, and a rank caught waiting would otherwise fail on resume and take the run down.
"""

from __future__ import annotations

from datetime import timedelta

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs

from ..fastpath import resolve_mixed_precision

COLLECTIVE_TIMEOUT = timedelta(hours=24)


def training_accelerator(mixed_precision: str) -> Accelerator:
    """An Accelerator for the config's `mixed_precision` ("auto" resolved for this device)."""
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    return Accelerator(mixed_precision=resolve_mixed_precision(mixed_precision, device_type),
                       cpu=device_type == "cpu", kwargs_handlers=[InitProcessGroupKwargs(timeout=COLLECTIVE_TIMEOUT)])
