"""The inference form: exact in fp32 after folding, bf16 close, heads float32, never saved."""

import copy

import pytest
import torch
from helpers_conv import psnr
from torch import nn

from dagan.config import get_preset
from dagan.errors import DaganError
from dagan.inference import optimize
from dagan.inference.optimize import fold_batchnorm, inference_form
from dagan.models import DaGAN
from dagan.nn import ResBlock2d, UpBlock2d

S = 64


def with_trained_norms(model: DaGAN) -> DaGAN:
    """Non-trivial BatchNorm statistics and a non-zero attention γ, so folding has something to get wrong."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
        model.generator.attention.gamma.fill_(0.5)
    return model


@pytest.fixture(scope="module", params=["tiny", "tiny-spade"])
def model(request):
    torch.manual_seed(0)
    return with_trained_norms(DaGAN(get_preset(request.param)).eval())


def images(b, seed):
    return torch.rand(b, 3, S, S, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_fp32_form_equals_the_model(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    channels_last = model.config.generator.kind == "dagan"  # each memory format on one preset (test time)
    fast = inference_form(model, "cpu", "fp32", channels_last=channels_last)
    src, drv = images(1, 1), images(3, 2)
    torch.testing.assert_close(fast.estimate_depth(drv), model.estimate_depth(drv), atol=1e-5, rtol=0)
    kp, kp_fast = model.detect_keypoints(drv), fast.detect_keypoints(drv)
    torch.testing.assert_close(kp_fast.value, kp.value, atol=1e-5, rtol=0)
    torch.testing.assert_close(kp_fast.jacobian, kp.jacobian, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.animate(src, drv), model.animate(src, drv), atol=1e-4, rtol=0)
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], before[k]) for k in before)


def test_form_has_no_batchnorm_or_spectral_norm_and_is_never_saved(model, tmp_path):
    fast = inference_form(model)
    kinds = {type(m) for m in fast.modules()}
    assert nn.BatchNorm2d not in kinds and ResBlock2d not in kinds
    assert not any(hasattr(m, "weight_orig") for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original keeps its layout
    with pytest.raises(DaganError, match="never saved"):
        fast.save_pretrained(tmp_path)


@torch.no_grad()
def test_bf16_form_casts_once_and_keeps_coordinates_float32():
    torch.manual_seed(0)
    model = with_trained_norms(DaGAN(get_preset("tiny")).eval())
    fast = inference_form(model, "cpu", "bf16")
    heads = {id(sub) for m in optimize.float32_heads(fast) for sub in m.modules()}  # a NarrowConv2d head's wide conv too
    for m in fast.modules():
        if isinstance(m, nn.Conv2d):
            assert m.weight.dtype == (torch.float32 if id(m) in heads else torch.bfloat16)
    src, drv = images(1, 3), images(4, 4)
    kp = fast.detect_keypoints(drv)
    assert kp.value.dtype == kp.jacobian.dtype == torch.float32
    state = fast.prepare_source(src)
    out = fast.generate(state, kp)
    assert out["deformation"].dtype == out["mask"].dtype == torch.float32
    assert out["prediction"].dtype == torch.bfloat16
    assert psnr(fast.animate(src, drv), model.animate(src, drv)) > 40


def test_fold_batchnorm_known_values():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    bn = nn.BatchNorm2d(1).eval()
    with torch.no_grad():
        conv.weight.fill_(2.0)
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(4.0 - bn.eps)  # √(var + ε) = 2
        bn.weight.fill_(3.0)
        bn.bias.fill_(0.5)
    folded = fold_batchnorm(conv, bn)
    # BN(2x) = 3·(2x - 1)/2 + 0.5 = 3x - 1
    assert float(folded.weight.detach()) == pytest.approx(3.0) and float(folded.bias.detach()) == pytest.approx(-1.0)


@torch.no_grad()
@pytest.mark.parametrize("channels_last", [False, True])
def test_subpixel_upblock_equals_upsample_then_conv(channels_last):
    """nearest ×2 → 3×3 conv as one 2×2 conv per output phase: same output, including the borders."""
    torch.manual_seed(0)
    block = UpBlock2d(6, 5).eval()
    with torch.no_grad():
        block.norm.running_mean.uniform_(-0.5, 0.5)
        block.norm.running_var.uniform_(0.5, 2.0)
    fast = optimize.fold_module(nn.Sequential(copy.deepcopy(block)))[0]
    assert isinstance(fast, optimize.SubpixelConvReLU) and fast.conv.kernel_size == (2, 2)
    assert fast.conv.weight.numel() == 4 * 5 * 6 * 4  # 16 taps per input/output pair instead of 36
    x = torch.randn(2, 6, 7, 9)
    ref = torch.relu(block.norm(block.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))))
    if channels_last:
        fast, x = fast.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    out = fast(x)
    assert out.shape == (2, 5, 14, 18) and out.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    assert optimize.subpixel_conv(nn.Conv2d(6, 5, 3, padding=1, padding_mode="reflect")) is None


def test_bad_precision_and_missing_compiler(model, monkeypatch):
    with pytest.raises(DaganError, match="unknown precision"):
        inference_form(model, precision="int8")
    monkeypatch.setattr(optimize.shutil, "which", lambda name: None)
    with pytest.raises(DaganError, match="--compile needs a C\\+\\+ compiler"):
        inference_form(model, compile=True)
