"""CUDA inference (run with `pytest -m gpu`; these fail, not skip, without a GPU): the inference form in
fp32/bf16/fp16 against the loaded model, float32 heads and coordinates, and the runtime's OOM message."""

import pytest
import torch
from helpers_conv import psnr

from dagan.errors import DaganError
from dagan.inference.runtime import TorchRuntime

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_inference_form_matches_cpu_fp32(model, precision):
    cuda = torch.device("cuda")
    g = torch.Generator().manual_seed(1)
    src, drv = torch.rand(1, 3, 64, 64, generator=g), torch.rand(4, 3, 64, 64, generator=g)
    ref = model.animate(src, drv)
    runtime = TorchRuntime(model, cuda, precision)
    assert next(runtime.model.parameters()).device.type == "cuda"
    out = runtime.model.animate(src.to(cuda), drv.to(cuda)).float().cpu()
    kp = runtime.model.detect_keypoints(drv.to(cuda))
    assert kp.value.dtype == kp.jacobian.dtype == torch.float32
    assert psnr(out, ref) > (50 if precision == "fp32" else 35)


def test_cuda_out_of_memory_is_one_line(model):
    runtime = TorchRuntime(model, torch.device("cuda"), "fp32")
    free, _ = torch.cuda.mem_get_info()
    side = int((free / 4 / 3) ** 0.5) * 2  # a batch far larger than the free memory
    with pytest.raises(DaganError, match="smaller --batch-size"):
        with runtime._guard(64):
            torch.empty(3, side, side, device="cuda")
