"""Reference convolutions for the tests of the inference form's conv rewrites."""

import torch
import torch.nn.functional as F
from torch import nn


def float64_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv` applied to `x` in float64: the reference a float32 rewrite is bounded against."""
    bias = None if conv.bias is None else conv.bias.double()
    return F.conv2d(x.double(), conv.weight.double(), bias, padding=conv.padding)
