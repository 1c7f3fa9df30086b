"""The fast sampling path: which compute dtype is fastest on a device, autocast, and optional torch.compile.

Reduced precision only pays where the hardware has it: on CPUs without native bf16 (AVX2-only, or AVX-512
without AVX512_BF16 / AMX) bf16 matmuls run ~60x slower than float32, so `auto` never picks it there;
on CUDA `auto` picks bf16 where the GPU supports it. The same rule resolves `mixed_precision: "auto"` in
the training configs. Weights stay float32; reduced precision runs under `torch.autocast`.
"""

from __future__ import annotations

import functools
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = ("auto", *DTYPES)


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux /proc/cpuinfo); empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16(capability: str, flags: frozenset[str]) -> bool:
    """True where PyTorch's CPU kernels can use native bf16 matmuls: AVX-512 kernels plus AVX512_BF16 or AMX."""
    return capability.upper().startswith("AVX512") and bool({"avx512_bf16", "amx_bf16"} & flags)


def pick_dtype(device_type: str, *, capability: str = "", flags: frozenset[str] = frozenset(),
               cuda_bf16: bool = False, bf16_faster: Callable[[], bool] = lambda: True) -> torch.dtype:
    """The fastest safe compute dtype: bf16 on CUDA with bf16 support and on CPUs with native bf16
    (confirmed by `bf16_faster`, a one-off micro-benchmark), float32 everywhere else."""
    if device_type == "cuda":
        return torch.bfloat16 if cuda_bf16 else torch.float32
    if device_type == "cpu" and cpu_has_native_bf16(capability, flags) and bf16_faster():
        return torch.bfloat16
    return torch.float32


def matmul_flops_per_s(dtype: torch.dtype, device: torch.device | str = "cpu", size: int = 512,
                       repeats: int = 5) -> float:
    """Measured FLOP/s of a (size x size) @ (size x size) matmul in `dtype` on `device` (median of repeats)."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    times = []
    for _ in range(repeats + 1):  # the first run is a warm-up
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - start)
    times = sorted(times[1:])
    return 2 * size**3 / times[len(times) // 2]


@functools.lru_cache(maxsize=None)
def _cpu_bf16_faster() -> bool:
    return matmul_flops_per_s(torch.bfloat16) > matmul_flops_per_s(torch.float32)


@functools.lru_cache(maxsize=None)
def _auto_dtype(device_type: str, index: int | None) -> torch.dtype:
    if device_type == "cuda":
        with torch.cuda.device(index or 0):
            return pick_dtype("cuda", cuda_bf16=torch.cuda.is_bf16_supported())
    return pick_dtype(device_type, capability=torch.backends.cpu.get_cpu_capability(), flags=cpu_flags(),
                      bf16_faster=_cpu_bf16_faster)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device | str) -> torch.dtype:
    """`auto` (or None) -> the fastest dtype for `device` (cached per device); a name or dtype -> that dtype."""
    if dtype is None or dtype == "auto":
        device = torch.device(device)
        return _auto_dtype(device.type, device.index)
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype must be one of {list(DTYPE_CHOICES)}, got {dtype}")
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPE_CHOICES)}, got {dtype!r}")
    return DTYPES[dtype]


def resolve_mixed_precision(value: str, device: torch.device | str) -> str:
    """A training config's mixed_precision for Accelerate: `auto` -> "bf16" where bf16 is fast, else "no".

    An explicit "bf16" on a CPU without native bf16 is kept (the config asks for it) with a warning.
    """
    device = torch.device(device)
    if value == "auto":
        return "bf16" if resolve_dtype("auto", device) == torch.bfloat16 else "no"
    if value == "bf16" and device.type == "cpu" and resolve_dtype("auto", device) != torch.bfloat16:
        warnings.warn(f"mixed_precision 'bf16' on a CPU without native bf16 ({torch.backends.cpu.get_cpu_capability()})"
                      f" runs matmuls far slower than float32; set mixed_precision to 'auto' or 'no'", stacklevel=2)
    return value


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on `device` (before reading a clock)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def autocast(device: torch.device | str, dtype: torch.dtype):
    """torch.autocast for reduced precision; a no-op context for float32."""
    device = torch.device(device)
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def fast_forward(model: torch.nn.Module, dtype: torch.dtype, *, compile: bool = False) -> Callable:
    """`model`'s forward under autocast to `dtype`, optionally through torch.compile.

    On CUDA the compiled step uses mode "reduce-overhead", which captures the static-shape decoding step
    in a CUDA graph. The compiled module is cached on `model`, so repeated calls compile once.
    """
    device = next(model.parameters()).device
    network = model
    if compile:
        mode = "reduce-overhead" if device.type == "cuda" else "default"
        cache = model.__dict__.setdefault("_maskgit_compiled", {})
        if mode not in cache:
            cache[mode] = torch.compile(model, mode=mode, dynamic=False)
        network = cache[mode]

    def forward(*args, **kwargs):
        with autocast(device, dtype):
            return network(*args, **kwargs)

    return forward


def head_at_unknown_only(device: torch.device | str, *, compile: bool = False) -> bool:
    """Whether decoding asks the network for logits at the unknown positions only (`decode(unknown_rows_only=)`).

    On the CPU the output head and the sampling then skip the decided positions (about a third of the head's
    work over a cosine schedule); accelerators and torch.compile keep static shapes (no host synchronisation,
    no recompiles) and compute every position.
    """
    return torch.device(device).type == "cpu" and not compile
