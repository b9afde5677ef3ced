"""References for the tests of the inference form's conv rewrites: a float64 conv, PSNR."""

import torch
import torch.nn.functional as F
from torch import nn


def float64_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv` applied to `x` in float64: the reference a float32 rewrite is bounded against."""
    bias = None if conv.bias is None else conv.bias.double()
    return F.conv2d(x.double(), conv.weight.double(), bias, padding=conv.padding)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1] (inf when equal)."""
    return float(10 * torch.log10(1 / ((a.float() - b.float()) ** 2).mean()))
