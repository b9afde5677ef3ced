"""The inference form of a loaded `DaGAN`: BatchNorm folded away, weights cast once, fused tails.

    fast = inference_form(model, device, "bf16")   # a new DaGAN; `model` and its state dict untouched
    state = fast.prepare_source(source)             # same API, same shapes

What changes, all exact up to float rounding in fp32:
- conv → BatchNorm (Same/Down/UpBlock2d, ResNet trunk and its downsample, ResBlock2d's norm2)
  becomes one conv with folded weights; the pre-activation ResBlock's norm1, which has no conv
  before it, becomes a per-channel affine fused with its ReLU (`addcmul` then in-place ReLU);
- nearest ×2 → 3×3 conv (UpBlock2d) becomes one 2×2 conv per output phase on the low-resolution
  input (`subpixel_conv`): 4/9 of the multiply-adds, and no upsampled copy in memory;
- spectral norm (SPADE decoder) is removed, its eval-mode weight baked in;
- weights are cast once to the run precision (no autocast re-casting on every call); the heads
  whose outputs feed softmaxes and coordinates (keypoint heatmaps and jacobians, the motion mask
  and occlusion) stay float32, and sampling grids are float32 throughout (see the models);
- weights are channels_last where measured faster (CPU oneDNN and CUDA cuDNN both gain);
- on CPU, wide 3×3 convs run by Winograd's F(4×4, 3×3) (`dagan.inference.winograd`): 1/4 of the
  multiply-adds, error a few times the direct conv's rounding; in float32, and in bf16 where
  oneDNN has no AMX (with AMX its direct bf16 kernels are faster);
- on CPU, convs to at most 4 channels (the 7×7 heads) run as a k×1 conv to k·Cout channels plus
  k shifted adds (`dagan.inference.narrow`), which oneDNN vectorises; float32 convs everywhere,
  bf16 ones where oneDNN has no AMX;
- optionally `torch.compile` (off by default; needs a C++ compiler);
- on CPU, freed activations stay in the process for reuse (`dagan.inference.memory`).

The form is for inference only: its parameter layout differs, so it refuses `save_pretrained`.
"""

from __future__ import annotations

import copy
import shutil

import torch
import torch.nn.functional as F
from torch import nn

from dagan.errors import DaganError
from dagan.inference.hardware import onednn_uses_amx
from dagan.inference.memory import keep_freed_memory
from dagan.inference.narrow import DTYPES as NARROW_DTYPES
from dagan.inference.narrow import narrow_convs
from dagan.inference.winograd import DTYPES as WINOGRAD_DTYPES
from dagan.inference.winograd import winograd_convs
from dagan.models.resnet import BasicBlock, Bottleneck, ResNet
from dagan.models.spade import SPADEDecoder
from dagan.nn import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """conv followed by eval-mode BN as one conv: W' = W·s, b' = (b - μ)·s + β, s = γ/√(σ² + ε).

    Computed in float64, returned float32 on the conv's device, with a bias even if `conv` had none.
    """
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                       device=conv.weight.device)
    with torch.no_grad():
        folded.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
        folded.bias.copy_((bias - bn.running_mean.double()) * scale + bn.bias.double())
    return folded


def batchnorm_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as y = x·scale + shift; both 1×C×1×1 float32."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * scale
    return scale.float().view(1, -1, 1, 1), shift.float().view(1, -1, 1, 1)


class ConvReLU(nn.Module):
    """Folded Same/Down/UpBlock2d: [nearest ×2] → conv → in-place ReLU → [avg-pool 2]. Shapes as the block."""

    def __init__(self, conv: nn.Conv2d, upsample: bool = False, pool: bool = False):
        super().__init__()
        self.conv = conv
        self.upsample = upsample
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        out = self.conv(x).relu_()
        return F.avg_pool2d(out, 2) if self.pool else out


# Which rows (columns) of a 3×3 kernel fall on each of the two low-resolution taps, per output phase:
# after nearest ×2, output row 2i+a reads upsampled rows 2i+a-1…2i+a+1 = low rows {i-1, i, i} (a = 0)
# or {i, i, i+1} (a = 1).
_PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)


def subpixel_conv(conv: nn.Conv2d) -> nn.Conv2d | None:
    """nearest ×2 → `conv` (3×3, zero padding 1) as one 2×2 conv on the low-resolution input.

    The returned conv (padding 1, 4·Cout outputs, phase-major: channel (2a+b)·Cout + c) gives
    B×4Cout×(H+1)×(W+1); output phase (a, b) of the upsampled result is its window [a:a+H, b:b+W].
    Exact up to float rounding (each 2×2 tap sums the 3×3 taps that read the same input pixel), with
    4/9 of the multiply-adds. None when `conv` is not a plain 3×3, stride 1, zero-padded conv.
    """
    plain = (conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
             and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")
    if not plain:
        return None
    w = conv.weight.double()
    taps = _PHASE_TAPS.to(w.device)
    phases = [torch.einsum("uk,oikl,vl->oiuv", taps[a], w, taps[b]) for a in (0, 1) for b in (0, 1)]
    out = nn.Conv2d(conv.in_channels, 4 * conv.out_channels, 2, padding=1, bias=True, device=w.device)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
    with torch.no_grad():
        out.weight.copy_(torch.cat(phases))
        out.bias.copy_(bias.repeat(4))
    return out


class SubpixelConvReLU(nn.Module):
    """Folded UpBlock2d without the upsampled copy: 2×2 conv of the input per phase → ReLU → interleave.

    B×Cin×H×W → B×Cout×2H×2W, equal (to float rounding) to nearest ×2 → 3×3 conv → ReLU.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        self.out_channels = conv.out_channels // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        phases = self.conv(x).relu_()  # B×4C×(H+1)×(W+1)
        c = self.out_channels
        out = torch.empty(b, c, 2 * h, 2 * w, dtype=phases.dtype, device=phases.device,
                          memory_format=torch.channels_last if phases.is_contiguous(memory_format=torch.channels_last)
                          else torch.contiguous_format)
        for a in (0, 1):
            for bb in (0, 1):
                k = 2 * a + bb
                out[:, :, a::2, bb::2] = phases[:, k * c:(k + 1) * c, a:a + h, bb:bb + w]
        return out


class FoldedResBlock(nn.Module):
    """ResBlock2d with norm1 as a fused affine+ReLU and norm2 folded into conv1. Shape preserved."""

    def __init__(self, block: ResBlock2d):
        super().__init__()
        scale, shift = batchnorm_affine(block.norm1)
        self.register_buffer("scale", scale.to(block.conv1.weight.device))
        self.register_buffer("shift", shift.to(block.conv1.weight.device))
        self.conv1 = fold_batchnorm(block.conv1, block.norm2)
        self.conv2 = copy.deepcopy(block.conv2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.addcmul(self.shift, x, self.scale).relu_()
        out = self.conv1(out).relu_()
        return self.conv2(out).add_(x)


def _fold_pairs(module: nn.Module, pairs: list[tuple[str, str]]) -> None:
    for conv_name, bn_name in pairs:
        setattr(module, conv_name, fold_batchnorm(getattr(module, conv_name), getattr(module, bn_name)))
        setattr(module, bn_name, nn.Identity())


def _fold_resnet_block(block: nn.Module) -> None:
    n = 3 if isinstance(block, Bottleneck) else 2
    _fold_pairs(block, [(f"conv{i}", f"bn{i}") for i in range(1, n + 1)])
    if block.downsample is not None:
        conv, bn = block.downsample
        block.downsample = fold_batchnorm(conv, bn)


def fold_module(root: nn.Module, subpixel: bool = True) -> nn.Module:
    """Replace, in place, every foldable block under `root` by its BatchNorm-free equivalent.

    With `subpixel`, upsampling blocks become `SubpixelConvReLU` (4/9 of the multiply-adds).
    """
    for name, child in list(root.named_children()):
        if isinstance(child, (SameBlock2d, DownBlock2d, UpBlock2d)):
            folded, up = fold_batchnorm(child.conv, child.norm), isinstance(child, UpBlock2d)
            phase_conv = subpixel_conv(folded) if up and subpixel else None
            setattr(root, name, SubpixelConvReLU(phase_conv) if phase_conv is not None
                    else ConvReLU(folded, upsample=up, pool=isinstance(child, DownBlock2d)))
        elif isinstance(child, ResBlock2d):
            setattr(root, name, FoldedResBlock(child))
        else:
            if isinstance(child, (BasicBlock, Bottleneck)):
                _fold_resnet_block(child)
            elif isinstance(child, ResNet):
                _fold_pairs(child, [("conv1", "bn1")])
            elif isinstance(child, SPADEDecoder):
                _remove_spectral_norm(child)
            fold_module(child, subpixel)
    return root


def _remove_spectral_norm(decoder: nn.Module) -> None:
    for module in decoder.modules():
        if isinstance(module, nn.Conv2d) and hasattr(module, "weight_orig"):
            torch.nn.utils.remove_spectral_norm(module)


def float32_heads(model) -> list[nn.Module]:
    """The convs whose outputs feed a softmax or coordinates; the inference form keeps them float32."""
    kd, dm = model.keypoint_detector, model.generator.dense_motion
    return [m for m in (kd.heatmap_head, kd.jacobian_head, dm.mask, dm.occlusion) if m is not None]


def check_compiler() -> None:
    """DaganError unless torch.compile can build kernels here (it needs a C++ compiler)."""
    names = ("c++", "g++", "clang++", "cc")
    if not any(shutil.which(n) for n in names):
        raise DaganError("--compile needs a C++ compiler and none was found (c++/g++/clang++/cc); "
                         "install one (e.g. apt-get install g++) or run without --compile")
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as exc:  # torch's own probe: any failure means inductor cannot build
        raise DaganError(f"--compile cannot use the C++ compiler ({exc}); run without --compile") from None


def conv_rewrite_dtypes(eligible: bool) -> tuple[torch.dtype, ...]:
    """The weight dtypes whose convs the inference form rewrites (Winograd, narrow heads) by default:
    none off CPU or under torch.compile, float32 on CPUs where oneDNN runs bf16 on AMX, else both."""
    if not eligible:
        return ()
    return (torch.float32,) if onednn_uses_amx() else (torch.float32, torch.bfloat16)


def chosen_dtypes(flag: bool | None, defaults: tuple, every: tuple) -> tuple:
    """A rewrite's dtypes for its `inference_form` flag: `defaults` for None, `every` dtype it
    takes for True, none for False."""
    return defaults if flag is None else (every if flag else ())


def inference_form(model, device: torch.device | str = "cpu", precision: str = "fp32",
                   channels_last: bool = True, compile: bool = False, subpixel: bool = True,
                   winograd: bool | None = None, narrow: bool | None = None):
    """A folded, cast, eval-mode copy of a `DaGAN` for `device` and `precision`.

    The copy keeps the DaGAN API (prepare_source, estimate_depth, detect_keypoints, generate,
    animate) and takes float32 or `precision` images; `model` is not modified. With `compile`, the
    depth network, keypoint detector and generator are wrapped in `torch.compile` (static shapes:
    compiling happens in the first call at each batch size). `subpixel=False` keeps the upsampling
    blocks as upsample → 3×3 conv (for comparison). `winograd` computes the wide 3×3 convs by
    `winograd_convs`, `narrow` the convs to few channels by `narrow_convs`; by default (None) both
    apply on CPU without `compile`, to float32 convs and, where oneDNN has no AMX, to bf16 ones
    (`conv_rewrite_dtypes`); True applies them to both dtypes, False not at all.
    """
    if precision not in DTYPES:
        raise DaganError(f"unknown precision {precision!r}; choose fp32, bf16 or fp16")
    if compile:
        check_compiler()
    on_cpu = torch.device(device).type == "cpu"
    if on_cpu:
        keep_freed_memory()
    fast = copy.deepcopy(model).eval()
    fold_module(fast, subpixel)
    fast.to(device=device, dtype=DTYPES[precision])
    for head in float32_heads(fast):
        head.float()
    defaults = conv_rewrite_dtypes(on_cpu and not compile)
    narrow_convs(fast, chosen_dtypes(narrow, defaults, NARROW_DTYPES))
    if channels_last:
        fast.to(memory_format=torch.channels_last)
    winograd_convs(fast, dtypes=chosen_dtypes(winograd, defaults, WINOGRAD_DTYPES))
    fast.requires_grad_(False)
    fast.inference_precision = precision
    if compile:
        for name in ("depth", "keypoint_detector", "generator"):
            setattr(fast, name, torch.compile(getattr(fast, name), dynamic=False))
    return fast

