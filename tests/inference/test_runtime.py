"""TorchRuntime: float32 boundary over the inference form, bf16 notes, out-of-memory message."""

import pytest
import torch

from dagan.errors import DaganError
from dagan.geometry import normalize_keypoints
from dagan.inference import hardware
from dagan.inference.runtime import Runtime, TorchRuntime

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


def frames(b, seed):
    return torch.rand(b, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_runtime_matches_the_model_with_float32_boundary(model, precision):
    runtime = TorchRuntime(model, CPU, precision)
    assert isinstance(runtime, Runtime) and runtime.precision == precision and runtime.model is not model
    src, drv = frames(1, 1), frames(3, 2)
    state = runtime.prepare_source(src)
    depth, kp = runtime.driving_keypoints(drv)
    kp_norm = normalize_keypoints(state.keypoints, kp, kp[0:1])
    out = runtime.generate(state, kp_norm)
    assert depth.dtype == kp.value.dtype == kp.jacobian.dtype == out.dtype == torch.float32
    assert out.shape == (3, 3, 64, 64) and float(out.min()) >= 0 and float(out.max()) <= 1
    with torch.no_grad():
        ref_state = model.prepare_source(src)
        ref = model.generate(ref_state, normalize_keypoints(ref_state.keypoints, model.detect_keypoints(drv),
                                                            model.detect_keypoints(drv[:1])))["prediction"]
    atol = 1e-5 if precision == "fp32" else 0.05
    torch.testing.assert_close(out, ref, atol=atol, rtol=0)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the loaded model is untouched


def test_out_of_memory_names_the_fix(model, monkeypatch):
    runtime = TorchRuntime(model, CPU, "fp32")

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(runtime.model, "estimate_depth", oom)
    with pytest.raises(DaganError, match=r"batch of 4 frames.*smaller --batch-size \(e\.g\. 2\)"):
        runtime.driving_keypoints(frames(4, 3))


def test_bf16_without_native_support_says_so_once(model, monkeypatch, capsys):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma"})
    assert hardware.native_bf16(CPU) is False
    TorchRuntime(model, CPU, "bf16")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no native bf16" in err and "slow" in err
    TorchRuntime(model, CPU, "fp32")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512_bf16"})
    assert hardware.native_bf16(CPU) is True
    TorchRuntime(model, CPU, "bf16")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("flags", "cap", "amx"), [
    ({"avx512_bf16", "amx_bf16"}, None, True), ({"avx512_bf16", "amx_bf16"}, "avx10_1_512_amx", True),
    ({"avx512_bf16", "amx_bf16"}, "AVX512_CORE_BF16", False), ({"avx512_bf16", "amx_bf16"}, "ALL", True),
    ({"avx512_bf16"}, None, False), (None, None, False)])
def test_amx_is_seen_from_the_flags_and_the_onednn_cap(monkeypatch, flags, cap, amx):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert hardware.onednn_uses_amx() is amx


def test_bad_precision(model):
    with pytest.raises(DaganError, match="unknown precision"):
        TorchRuntime(model, CPU, "fp8")
    with pytest.raises(DaganError, match="fp16 is not supported on CPU"):
        TorchRuntime(model, CPU, "fp16")
