"""Narrow convs (few output channels) as a k×1 conv plus shifted adds: equal to a float64 conv to
float32 rounding, in either memory format, and in bfloat16 as close as the direct bf16 conv; only
plain float32 or bfloat16 convs to ≤ 4 channels qualify."""

import pytest
import torch
from helpers_conv import float64_conv
from torch import nn

from dagan.config import get_preset
from dagan.inference import optimize
from dagan.inference.narrow import MAX_OUT_CHANNELS, NarrowConv2d, narrow_convs, narrow_eligible
from dagan.inference.optimize import inference_form
from dagan.models import DaGAN


@pytest.mark.parametrize(("k", "padding", "cout"), [(7, 3, 3), (7, 3, 1), (3, 1, 4), (3, 0, 2), (5, 1, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
@torch.no_grad()
def test_equals_float64_conv(k, padding, cout, channels_last):
    torch.manual_seed(k * 10 + padding + cout)
    conv = nn.Conv2d(6, cout, k, padding=padding, bias=cout != 2).eval()
    x = torch.rand(2, 6, 13, 17) * 2 - 1
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    got, want = NarrowConv2d(conv)(x), float64_conv(conv, x)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert (got.double() - want).abs().max() < 1e-5 * want.abs().max()


@pytest.mark.parametrize("channels_last", [False, True])
@torch.no_grad()
def test_bfloat16_sums_in_float32_and_rounds_once(channels_last):
    torch.manual_seed(5)
    conv = nn.Conv2d(16, 3, 7, padding=3).bfloat16().eval()
    x = torch.rand(2, 16, 24, 20).bfloat16()
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    got, want = NarrowConv2d(conv)(x), float64_conv(conv, x)
    assert got.dtype == torch.bfloat16 and got.shape == want.shape
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def rms(y):
        return float((y.double() - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt())

    assert rms(got) < 1.5 * rms(conv(x)), (rms(got), rms(conv(x)))  # as close as the direct conv: one rounding


def test_weight_is_the_wide_convs():
    head = NarrowConv2d(nn.Conv2d(8, 3, 7, padding=3))
    assert head.weight is head.wide.weight and head.weight.shape == (21, 8, 7, 1)


def test_only_plain_float32_or_bfloat16_narrow_convs_qualify():
    assert narrow_eligible(nn.Conv2d(8, MAX_OUT_CHANNELS, 7, padding=3))
    assert not narrow_eligible(nn.Conv2d(8, MAX_OUT_CHANNELS + 1, 7, padding=3))
    assert not narrow_eligible(nn.Conv2d(8, 1, 1))  # 1×1: nothing to move into channels
    assert not narrow_eligible(nn.Conv2d(8, 1, 3, stride=2))
    assert not narrow_eligible(nn.Conv2d(8, 1, 3, padding=1, padding_mode="reflect"))
    assert not narrow_eligible(nn.Conv2d(8, 1, (3, 5)))
    assert narrow_eligible(nn.Conv2d(8, 1, 3).to(torch.bfloat16))
    assert not narrow_eligible(nn.Conv2d(8, 1, 3).to(torch.bfloat16), dtypes=(torch.float32,))
    assert not narrow_eligible(nn.Conv2d(8, 1, 3).half())


def test_replaces_nested_convs_once():
    root = nn.Sequential(nn.Conv2d(4, 16, 3), nn.Sequential(nn.Conv2d(16, 1, 7, padding=3)))
    assert narrow_convs(root) == 1 and isinstance(root[1][0], NarrowConv2d)
    assert narrow_convs(root) == 0


@pytest.mark.parametrize("amx", [False, True])
@torch.no_grad()
def test_inference_form_uses_it_on_cpu(monkeypatch, amx):
    monkeypatch.setattr(optimize, "onednn_uses_amx", lambda: amx)  # the default, not this machine's CPU
    torch.manual_seed(0)
    model = DaGAN(get_preset("tiny")).eval()
    fast = inference_form(model, "cpu", "fp32")
    assert isinstance(fast.generator.decoder.final, NarrowConv2d)
    assert isinstance(fast.generator.dense_motion.occlusion, NarrowConv2d)
    g = torch.Generator().manual_seed(3)
    src, drv = torch.rand(1, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    torch.testing.assert_close(fast.animate(src, drv), model.animate(src, drv), atol=1e-4, rtol=0)
    bf16 = inference_form(model, "cpu", "bf16")
    assert isinstance(bf16.generator.dense_motion.occlusion, NarrowConv2d)  # a float32 head
    assert isinstance(bf16.generator.decoder.final, NarrowConv2d) is not amx  # AMX is fast at any width
    assert not any(isinstance(m, NarrowConv2d) for m in inference_form(model, "cpu", "fp32", narrow=False).modules())
