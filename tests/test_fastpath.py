"""The fast sampling path: dtype selection per device (capability mocked), and agreement with the plain path."""
import warnings

import pytest
import torch

from maskgit import MaskGIT, fastpath
from maskgit.decoding import decode
from maskgit.fastpath import cpu_has_native_bf16, pick_dtype, resolve_dtype, resolve_mixed_precision

AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})


@pytest.mark.parametrize("capability,flags,expected", [
    ("AVX2", frozenset({"avx2", "fma"}), torch.float32),  # this machine: bf16 ~60x slower
    ("AVX2", AVX512_BF16, torch.float32),  # PyTorch runs AVX2 kernels anyway
    ("AVX512", frozenset({"avx2", "avx512f"}), torch.float32),  # AVX-512 without bf16 instructions
    ("AVX512", AVX512_BF16, torch.bfloat16),
    ("AVX512", frozenset({"avx512f", "amx_bf16", "amx_tile"}), torch.bfloat16),
    ("DEFAULT", frozenset(), torch.float32),
])
def test_cpu_auto_dtype_follows_native_bf16(capability, flags, expected):
    assert pick_dtype("cpu", capability=capability, flags=flags) == expected


def test_cpu_bf16_is_kept_only_when_the_micro_benchmark_agrees():
    assert pick_dtype("cpu", capability="AVX512", flags=AVX512_BF16, bf16_faster=lambda: False) == torch.float32
    called = []
    pick_dtype("cpu", capability="AVX2", flags=AVX512_BF16, bf16_faster=lambda: called.append(1) or True)
    assert not called  # no benchmark where the capability already rules bf16 out


def test_cuda_and_other_devices():
    assert pick_dtype("cuda", cuda_bf16=True) == torch.bfloat16
    assert pick_dtype("cuda", cuda_bf16=False) == torch.float32
    assert pick_dtype("mps") == torch.float32


@pytest.fixture
def avx2_cpu(monkeypatch):
    """Pretend to run on an AVX2-only CPU (whatever this machine is)."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(fastpath, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    fastpath._auto_dtype.cache_clear()
    yield
    fastpath._auto_dtype.cache_clear()


def test_auto_resolves_to_float32_on_avx2(avx2_cpu):
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_mixed_precision("auto", "cpu") == "no"
    with pytest.warns(UserWarning, match="without native bf16"):
        assert resolve_mixed_precision("bf16", "cpu") == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_mixed_precision("no", "cpu") == "no"


def test_explicit_dtypes_and_bad_names():
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16 and resolve_dtype(torch.float16, "cpu") == torch.float16
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("float8", "cpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        MaskGIT.from_pretrained("fashion-mnist", dtype="half")


def test_this_machine_never_gets_bf16_where_it_is_slow():
    if not cpu_has_native_bf16(torch.backends.cpu.get_cpu_capability(), fastpath.cpu_flags()):
        assert resolve_dtype("auto", "cpu") == torch.float32


@pytest.fixture(scope="module")
def bundled():
    return MaskGIT.from_pretrained("fashion-mnist")


def test_float32_fast_path_equals_the_plain_decoding_loop(bundled):
    cfg = bundled.transformer.config
    labels = torch.tensor([0, 7, 9, 3])
    tokens = torch.full((4, cfg.num_tokens), cfg.mask_id)
    plain = decode(lambda t: bundled.transformer(t, labels), tokens, mask_id=cfg.mask_id, steps=8,
                   generator=torch.Generator().manual_seed(0))  # every logit computed (the fast path: unknown rows)
    same = {"steps": 8, "temperature": 1.0, "choice_temperature": 4.5, "guidance_scale": 0.0}  # decode's defaults
    fast = bundled.fill_tokens(tokens, labels, dtype="float32", generator=torch.Generator().manual_seed(0), **same)
    assert torch.equal(plain, fast) and not fast.is_inference()
    if resolve_dtype("auto", "cpu") == torch.float32:  # the default of from_pretrained on this machine
        assert torch.equal(bundled.fill_tokens(tokens, labels, generator=torch.Generator().manual_seed(0), **same),
                           plain)


def test_bfloat16_path_keeps_the_schedule_and_most_tokens(bundled):
    cfg = bundled.transformer.config
    labels = torch.tensor([7, 1])
    tokens = torch.full((2, cfg.num_tokens), cfg.mask_id)
    runs = {dt: bundled.fill_tokens(tokens, labels, steps=8, dtype=dt, return_history=True,
                                    generator=torch.Generator().manual_seed(1)) for dt in ("float32", "bfloat16")}
    (ref, ref_hist), (low, low_hist) = runs["float32"], runs["bfloat16"]
    unknown = lambda h: (h == cfg.mask_id).sum(-1)  # noqa: E731
    assert torch.equal(unknown(ref_hist), unknown(low_hist))  # the same number decided at every step
    assert (ref == low).float().mean() >= 0.8  # the same tokens at most positions



def test_cli_dtype_option_reaches_sampling_and_is_recorded(tmp_path, capsys):
    import json

    from maskgit.cli import main

    assert main(["sample", "--model", "fashion-mnist", "--labels", "0", "--out", str(tmp_path / "a"),
                 "--dtype", "float32"]) == 0
    assert json.loads((tmp_path / "a" / "sampling.json").read_text())["overrides"]["dtype"] == "float32"
    with pytest.raises(SystemExit):
        main(["sample", "--model", "fashion-mnist", "--out", str(tmp_path / "b"), "--dtype", "int8"])
    assert "invalid choice" in capsys.readouterr().err
    assert main(["sample", "--model", "fashion-mnist", "--labels", "0", "--out", str(tmp_path / "c"),
                 "--top-k", "5"]) == 2
    assert "only apply to autoregressive" in capsys.readouterr().err
