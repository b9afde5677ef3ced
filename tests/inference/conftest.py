"""Fixtures shared by the inference tests: tiny models, short clips and a made-up group photo."""

from fractions import Fraction

import pytest
import torch

from dagan.config import get_preset
from dagan.models import DaGAN
from helpers_media import group_photo, make_clip, write_frames


@pytest.fixture(scope="module")
def tiny_model():
    """The tiny preset, random weights, with attention γ = 0.5 (γ = 0 at init would bypass the attention)."""
    torch.manual_seed(0)
    m = DaGAN(get_preset("tiny")).eval()
    with torch.no_grad():
        m.generator.attention.gamma.fill_(0.5)
    return m


