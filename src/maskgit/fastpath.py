"""The fast sampling path: which compute dtype is fastest on a device, autocast, and optional torch.compile.

Reduced precision only pays where the hardware has it: on CPUs without native bf16 (AVX2-only, or AVX-512
without AVX512_BF16 / AMX) bf16 matmuls run ~60x slower than float32, so `auto` never picks it there;
on CUDA `auto` picks bf16 where the GPU supports it. The same rule resolves `mixed_precision: "auto"` in
the training configs. In reduced precision, sampling runs on `inference_copy`: the network's weights cast once to
the compute dtype (LayerNorm parameters and statistics stay float32), q/k/v in one matmul, and the attention
kernel measured fastest for the device and shapes. The float32 path is the network itself, unchanged.
"""

from __future__ import annotations

import copy
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
            # native bf16 only (compute capability 8.0+): V100 and T4 "support" it by emulation, slower than fp16
            return pick_dtype("cuda", cuda_bf16=torch.cuda.is_bf16_supported(including_emulation=False))
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


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Ask glibc malloc to keep freed blocks of up to 64 MB in the heap instead of returning them to the system.

    A forward pass allocates and frees activations of tens of MB (attention scores: 17 MB at ImageNet 256,
    batch 8); by default glibc maps each afresh, so every step pays page faults on them: 13% of a bf16 forward
    on a 2-core AVX-512 CPU. Process-wide and done once, on the first CPU sampling call; resident memory then
    stays at its high-water mark. `MASKGIT_KEEP_FREED_MEMORY=0` turns it off. Returns whether it was applied.
    """
    import ctypes
    import os
    import sys

    if os.environ.get("MASKGIT_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 64 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):  # not glibc (musl, macOS ...)
        return False


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


@functools.lru_cache(maxsize=None)
def attention_kernel(device_type: str, dtype: torch.dtype, seq_len: int, heads: int, head_dim: int,
                     batch: int = 8) -> str:
    """The faster of `transformer.ATTENTION_KERNELS` for these shapes, by a one-off measurement (cached).

    On CPUs the fused flash kernel loses to two plain bf16 matmuls at short sequences and small head dims
    (257 x 48 at ImageNet 256: 18 ms vs 10 ms per layer at batch 8 on an AVX-512 BF16 CPU); in float32 and on
    accelerators the fused kernel is kept without measuring.
    """
    from .transformer import attention

    if device_type != "cpu" or dtype == torch.float32:
        return "sdpa"
    g = torch.Generator().manual_seed(0)  # the global RNG is the user's: leave it alone
    q, k, v = (torch.randn(batch, heads, seq_len, head_dim, generator=g).to(dtype) for _ in range(3))

    def seconds(kernel: str) -> float:
        attention(q, k, v, kernel)  # warm-up
        times = []
        for _ in range(3):
            start = time.perf_counter()
            attention(q, k, v, kernel)
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.inference_mode():
        return min(("sdpa", "matmul"), key=seconds)


class PackedLinear(torch.nn.Module):
    """A bf16 Linear whose weight oneDNN has re-laid out once for the CPU, optionally with the tanh-GELU fused in.

    The same op inductor's weight freezing uses (`mkldnn._linear_pointwise`); 10-35% faster than `F.linear` at
    the ImageNet transformer's shapes on an AVX-512 BF16 CPU, and with the GELU fused the MLP's first matmul
    goes from ~210 to ~340 GFLOP/s.
    """

    def __init__(self, linear: torch.nn.Linear, rows_hint: int, gelu: bool = False):
        super().__init__()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), rows_hint)
        self.bias = linear.bias.detach()
        self.post = ("gelu", [], "tanh") if gelu else ("none", [], "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, *self.post)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _pack_linears(network: torch.nn.Module, rows_hint: int) -> None:
    """Swap every Linear of a bf16 CPU `network` for a PackedLinear, the GELU after it fused where it has one."""
    from .transformer import MlmLayer, Mlp

    for module in list(network.modules()):
        if isinstance(module, (Mlp, MlmLayer)):
            name = "intermediate_output" if isinstance(module, Mlp) else "mlm_dense"
            setattr(module, name, PackedLinear(getattr(module, name), rows_hint, gelu=True))
            module.activation = _identity
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(module, name, PackedLinear(child, rows_hint))


@functools.lru_cache(maxsize=None)
def packed_linear_works() -> bool:
    """Whether this PyTorch build runs oneDNN's packed bf16 linear, with the same result as F.linear."""
    try:
        with torch.random.fork_rng(devices=[]):  # the global RNG is the user's: leave it alone
            linear = torch.nn.Linear(64, 48).to(torch.bfloat16)
            x = torch.randn(5, 64).to(torch.bfloat16)
        with torch.no_grad():
            fused = PackedLinear(linear, 8, gelu=True)(x)
            return torch.allclose(fused.float(), torch.nn.functional.gelu(linear(x), approximate="tanh").float(),
                                  atol=0.05, rtol=0.05)
    except (RuntimeError, AttributeError):
        return False


class _Cache(dict):
    """Per-network cache of inference copies and compiled modules; a deep copy of the network starts empty
    (oneDNN-packed weights cannot be copied, and a copy has its own weights anyway)."""

    def __deepcopy__(self, memo):
        return type(self)()


def _weights_key(model: torch.nn.Module) -> tuple:
    """Changes whenever a parameter is replaced, moved or updated in place (optimizer steps, load_state_dict)."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


@torch.no_grad()
def inference_copy(model: torch.nn.Module, dtype: torch.dtype, *, pack_linears: bool = True) -> torch.nn.Module:
    """The network to sample with in `dtype`: `model` itself for float32, else `build_inference_copy(model, dtype)`,
    cached on `model` and rebuilt when its weights change (parameters replaced, moved, or updated in place through
    autograd-visible ops such as optimizer steps and `load_state_dict`; writes through `param.data` are not seen)."""
    if dtype == torch.float32:
        return model
    cache = model.__dict__.setdefault("_maskgit_inference", _Cache())
    key, slot = _weights_key(model), (dtype, pack_linears)
    if slot in cache and cache[slot][0] == key:
        return cache[slot][1]
    cache.pop(slot, None)  # free the stale copy before making the new one
    cache[slot] = (key, build_inference_copy(model, dtype, pack_linears=pack_linears))
    return cache[slot][1]


@torch.no_grad()
def build_inference_copy(model: torch.nn.Module, dtype: torch.dtype, *, fuse_qkv: bool = True,
                         pack_linears: bool = True, kernel: str | None = None) -> torch.nn.Module:
    """A copy of a `MaskGITTransformer` made for reduced-precision inference (each part can be left out, for the
    kernel ablation in benchmarks/kernels.py).

    Every weight is cast once to `dtype` except, on the CPU, the LayerNorms' (float32; their statistics are computed
    in float32 on every device, and they return `dtype`); `fuse_qkv` puts each attention's q/k/v into one (3D, D)
    matmul; `pack_linears`, on a CPU in bf16, swaps the Linears for oneDNN-packed ones with the GELU fused into the
    matmul before it (`PackedLinear`); `kernel` is the attention kernel (None: the one `attention_kernel` measures
    fastest).
    """
    from .transformer import Attention

    fast = copy.deepcopy(model).eval()  # its caches start empty (`_Cache`)
    cpu = next(model.parameters()).device.type == "cpu"
    for module in fast.modules():
        if isinstance(module, torch.nn.LayerNorm) and cpu:
            continue  # the CPU kernel takes float32 weights with a bf16 input; CUDA's wants one dtype (and
            # accumulates the statistics in float32 either way)
        for name, param in module.named_parameters(recurse=False):
            setattr(module, name, torch.nn.Parameter(param.to(dtype), requires_grad=False))
    cfg, device = model.config, next(model.parameters()).device
    if kernel is None:
        kernel = attention_kernel(device.type, dtype, cfg.seq_len, cfg.num_heads, cfg.hidden_size // cfg.num_heads)
    for module in fast.modules():
        if isinstance(module, Attention):
            module.kernel = kernel
            if fuse_qkv:
                fused = torch.nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, device=device, dtype=dtype)
                projections = (module.query, module.key, module.value)
                fused.weight.copy_(torch.cat([p.weight for p in projections]))
                fused.bias.copy_(torch.cat([p.bias for p in projections]))
                module.fused_qkv = fused
                module.query = module.key = module.value = None  # the fused copy replaces them
    if pack_linears and device.type == "cpu" and dtype == torch.bfloat16 and packed_linear_works():
        _pack_linears(fast, rows_hint=8 * cfg.seq_len)
    return fast


def fast_forward(model: torch.nn.Module, dtype: torch.dtype, *, compile: bool = False) -> Callable:
    """`model`'s forward in `dtype` (on its `inference_copy`), optionally through torch.compile.

    On CUDA the compiled step uses mode "reduce-overhead", which captures the static-shape decoding step
    in a CUDA graph; on CPU inductor freezes the weights (constant-folded, pre-packed for oneDNN). The compiled
    module is cached on the network, so repeated calls compile once.
    """
    device = next(model.parameters()).device
    # inductor's weight freezing packs the weights itself: compile the unpacked copy
    network = inference_copy(model, dtype, pack_linears=not (compile and device.type == "cpu"))
    if device.type == "cpu":
        keep_freed_memory()
    if compile:
        mode = "reduce-overhead" if device.type == "cuda" else "default"
        cache = network.__dict__.setdefault("_maskgit_compiled", _Cache())
        if mode not in cache:
            options = {"freezing": True} if device.type == "cpu" and network is not model else None
            cache[mode] = torch.compile(network, dynamic=False, **({"options": options} if options else
                                                                    {"mode": mode}))
        network = cache[mode]
    return network

def head_at_unknown_only(device: torch.device | str, *, compile: bool = False, cheap_passes: int = 0) -> bool:
    """Whether decoding asks the network for logits at the unknown positions only (`decode(unknown_rows_only=)`).

    On the CPU the output head and the sampling then skip the decided positions (about a third of the head's
    work over a cosine schedule); accelerators and torch.compile keep static shapes (no host synchronisation,
    no recompiles) and compute every position, except with cheap passes, whose shapes change every step anyway
    and which recompute only the rows asked for.
    """
    return bool(cheap_passes) or torch.device(device).type == "cpu" and not compile
