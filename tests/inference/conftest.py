import pytest
import torch

from dagan.config import get_preset
from dagan.models import DaGAN


@pytest.fixture(scope="module")
def tiny_model():
    """The tiny preset, random weights, with attention γ = 0.5 (γ = 0 at init would bypass the attention)."""
    torch.manual_seed(0)
    m = DaGAN(get_preset("tiny")).eval()
    with torch.no_grad():
        m.generator.attention.gamma.fill_(0.5)
    return m
