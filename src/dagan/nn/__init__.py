"""Shared building blocks (FOMM vocabulary): same/down/up/res blocks, hourglass, anti-alias downsampling."""

from dagan.nn.blocks import (
    AntiAliasDownsample,
    DownBlock2d,
    Hourglass,
    HourglassDecoder,
    HourglassEncoder,
    ResBlock2d,
    SameBlock2d,
    UpBlock2d,
    gaussian_kernel,
)

__all__ = [
    "AntiAliasDownsample",
    "DownBlock2d",
    "Hourglass",
    "HourglassDecoder",
    "HourglassEncoder",
    "ResBlock2d",
    "SameBlock2d",
    "UpBlock2d",
    "gaussian_kernel",
]
