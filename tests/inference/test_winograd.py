"""Winograd F(4×4, 3×3) convs: the transforms are those of the interpolation points, the conv equals a float64
conv to float32 rounding (and, in bfloat16, to a bound set by bf16 rounding), small outputs fall back
to the direct conv, only wide plain convs qualify."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers_conv import float64_conv, psnr
from torch import nn

from dagan.config import get_preset
from dagan.inference import optimize, winograd
from dagan.inference.optimize import inference_form
from dagan.inference.winograd import G, WinogradConv2d, winograd_convs, winograd_eligible
from dagan.models import DaGAN

POINTS = (0, 1, -1, 2, -1 / 2)  # and ∞


def toom_cook(points):
    """Aᵀ (Vandermonde rows p⁰…p³) and G (rows pᵏ / Πₗ(p − pₗ)) of F(4, 3) for `points` and ∞,
    written from the definition to check the module's tables."""
    at = torch.zeros(4, 6, dtype=torch.float64)
    g = torch.zeros(6, 3, dtype=torch.float64)
    for j, p in enumerate(points):
        norm = math.prod(p - q for q in points if q != p)
        at[:, j] = torch.tensor([p**i for i in range(4)], dtype=torch.float64)
        g[j] = torch.tensor([p**k / norm for k in range(3)], dtype=torch.float64)
    at[3, 5] = g[5, 2] = 1
    return at, g


def test_matrices_compute_a_valid_correlation():
    g = torch.Generator().manual_seed(0)
    d, w = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(3, 3, generator=g, dtype=torch.float64)
    y = winograd.AT @ ((G @ w @ G.T) * (winograd.BT @ d @ winograd.BT.T)) @ winograd.AT.T
    want = F.conv2d(d[None, None], w[None, None])[0, 0]  # 4×4, cross-correlation like nn.Conv2d
    torch.testing.assert_close(y, want, atol=1e-12, rtol=0)


def test_module_matrices_are_those_of_the_points_and_exact_in_bfloat16():
    at, g = toom_cook(POINTS)
    torch.testing.assert_close(winograd.AT, at, atol=0, rtol=0)
    torch.testing.assert_close(winograd.G, g, atol=1e-15, rtol=0)
    m = WinogradConv2d(nn.Conv2d(4, 4, 3))
    torch.testing.assert_close(m.bt2.double(), torch.kron(winograd.BT, winograd.BT), atol=0, rtol=0)
    torch.testing.assert_close(m.at2.double(), torch.kron(at, at), atol=0, rtol=0)
    m16 = WinogradConv2d(nn.Conv2d(4, 4, 3).bfloat16())
    assert torch.equal(m16.bt2.double(), m.bt2.double()) and torch.equal(m16.at2.double(), m.at2.double())


def conv(cin, cout, padding, bias=True):
    torch.manual_seed(cin * 31 + cout + padding)
    return nn.Conv2d(cin, cout, 3, padding=padding, bias=bias).eval()


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize(("batch", "h", "w"), [(1, 18, 18), (2, 21, 34), (1, 37, 19)])
@pytest.mark.parametrize("channels_last", [False, True])
@torch.no_grad()
def test_equals_float64_conv(padding, batch, h, w, channels_last):
    direct = conv(12, 20, padding, bias=(h % 2 == 0))
    x = torch.rand(batch, 12, h, w, generator=torch.Generator().manual_seed(h * w)) * 2 - 1
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    got, want = WinogradConv2d(direct)(x), float64_conv(direct, x)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert got.stride(1) == 1  # channels innermost, as the channels_last inference form expects
    err, direct_err = (got.double() - want).abs().max(), (direct(x).double() - want).abs().max()
    assert err < 2e-5 * want.abs().max(), (float(err), float(direct_err))  # F(4,3): ~10× the direct rounding


def relative_rms(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt())


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("channels_last", [False, True])
@torch.no_grad()
def test_bfloat16_stays_within_a_few_direct_roundings(padding, channels_last):
    """Operands and products in bf16: one conv's error is about ten times the direct bf16 conv's
    (tiles and filters are rounded after the transforms), measured 1.7e-2 against 1.7e-3 relative
    RMS at 256 channels; the bound leaves room for the random draw at this size."""
    direct = conv(24, 32, padding).bfloat16()
    nn.init.normal_(direct.weight, std=(2 / (9 * 24)) ** 0.5)
    x = torch.rand(2, 24, 22, 27, generator=torch.Generator().manual_seed(7)).bfloat16()
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    got, want = WinogradConv2d(direct)(x), float64_conv(direct, x)
    assert got.dtype == torch.bfloat16 and got.shape == want.shape and got.stride(1) == 1
    err, direct_err = relative_rms(got, want), relative_rms(direct(x), want)
    assert direct_err < 5e-3 and err < 4e-2, (err, direct_err)
    assert err > direct_err  # the products really ran in bf16, not a float32 path


@torch.no_grad()
def test_small_outputs_run_the_direct_conv():
    direct = conv(6, 8, 1)
    side = winograd.MIN_SIDE
    small, large = torch.rand(2, 6, side - 1, side - 1), torch.rand(2, 6, side, side)
    assert torch.equal(WinogradConv2d(direct)(small), direct(small))
    assert not torch.equal(WinogradConv2d(direct)(large), direct(large))  # rounded differently: not the fallback


@torch.no_grad()
def test_output_is_channels_last_with_the_bias_everywhere():
    direct = conv(4, 5, 1)
    nn.init.zeros_(direct.weight)
    out = WinogradConv2d(direct)(torch.rand(1, 4, 20, 24))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, direct.bias.view(1, 5, 1, 1).expand(1, 5, 20, 24), atol=0, rtol=0)


def test_only_wide_plain_float32_or_bfloat16_convs_are_eligible():
    wide = winograd.MIN_CHANNELS
    assert winograd_eligible(nn.Conv2d(wide, wide, 3, padding=1))
    assert winograd_eligible(nn.Conv2d(wide * 2, wide, 3, padding=0, bias=False))
    rejected = [nn.Conv2d(wide // 2, wide, 3, padding=1), nn.Conv2d(wide, wide, 3, stride=2, padding=1),
                nn.Conv2d(wide, wide, 1), nn.Conv2d(wide, wide, 3, padding=2),
                nn.Conv2d(wide, wide, 3, padding=1, padding_mode="reflect"),
                nn.Conv2d(wide, wide, 3, padding=1, dilation=2), nn.Conv2d(wide, wide, 3, padding=1, groups=2),
                nn.Conv2d(wide, wide, 3, padding=1).half(), type("Sub", (nn.Conv2d,), {})(wide, wide, 3)]
    assert not any(winograd_eligible(c) for c in rejected)
    assert winograd_eligible(nn.Conv2d(8, 8, 3, padding=1), min_channels=8)
    narrow_bf16 = winograd.MIN_CHANNELS_BF16  # bf16 gains from narrower convs on (measured)
    assert narrow_bf16 < wide
    assert winograd_eligible(nn.Conv2d(narrow_bf16, narrow_bf16, 3, padding=1).bfloat16())
    assert not winograd_eligible(nn.Conv2d(narrow_bf16, narrow_bf16, 3, padding=1))  # float32 needs `wide`
    assert not winograd_eligible(nn.Conv2d(narrow_bf16 // 2, narrow_bf16, 3, padding=1).bfloat16())
    assert not winograd_eligible(nn.Conv2d(wide, wide, 3, padding=1).bfloat16(), dtypes=(torch.float32,))


def test_replaces_nested_convs_and_counts_them():
    root = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Sequential(nn.ReLU(), nn.Conv2d(8, 8, 3)), nn.Conv2d(8, 8, 1))
    assert winograd_convs(root, min_channels=8) == 2
    assert [type(m).__name__ for m in root.modules() if isinstance(m, (nn.Conv2d, WinogradConv2d))].count("WinogradConv2d") == 2
    assert isinstance(root[2], nn.Conv2d) and winograd_convs(root, min_channels=8) == 0  # idempotent: fallbacks stay direct


def uses_winograd(form) -> bool:
    return any(isinstance(m, WinogradConv2d) for m in form.modules())


@pytest.mark.parametrize("amx", [False, True])
@torch.no_grad()
def test_inference_form_uses_it_on_cpu_in_fp32_and_in_bf16_without_amx(monkeypatch, amx):
    torch.manual_seed(0)
    model = DaGAN(get_preset("tiny")).eval()
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)  # every plain 3×3 conv of the tiny preset qualifies
    monkeypatch.setattr(winograd, "MIN_CHANNELS_BF16", 1)
    monkeypatch.setattr(optimize, "onednn_uses_amx", lambda: amx)  # the default, not this machine's CPU
    fast = inference_form(model, "cpu", "fp32")
    assert uses_winograd(fast)
    g = torch.Generator().manual_seed(3)
    src, drv = torch.rand(1, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    torch.testing.assert_close(fast.animate(src, drv), model.animate(src, drv), atol=1e-4, rtol=0)
    bf16 = inference_form(model, "cpu", "bf16")
    assert uses_winograd(bf16) is not amx
    assert uses_winograd(inference_form(model, "cpu", "bf16", winograd=True))
    assert not uses_winograd(inference_form(model, "cpu", "fp32", winograd=False))
    assert not uses_winograd(inference_form(model, "cpu", "bf16", winograd=False))
    direct = inference_form(model, "cpu", "bf16", winograd=False)
    assert psnr(bf16.animate(src, drv), direct.animate(src, drv)) > 40

