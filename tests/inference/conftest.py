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


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A random tiny-preset model (64², 5 keypoints) with a visible attention contribution."""
    torch.manual_seed(0)
    model = DaGAN(get_preset("tiny")).eval()
    with torch.no_grad():
        model.generator.attention.gamma.fill_(0.3)
    d = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def crop_clip(tmp_path_factory):
    """6 already-cropped 64² frames at 30000/1001 fps with AAC audio (for --no-crop runs)."""
    return make_clip(tmp_path_factory.mktemp("crop_clip") / "drive.mp4", num_frames=6, size=(64, 64),
                     fps=Fraction(30000, 1001))


@pytest.fixture(scope="session")
def group_png(tmp_path_factory):
    return group_photo(tmp_path_factory.mktemp("group") / "group.png")


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory):
    """6 frames of the bundled driving video (every 10th, so the head visibly moves), 256², no audio."""
    import dagan.assets
    from dagan.io import iter_frames

    frames = [f for i, f in enumerate(iter_frames(dagan.assets.sample_driving())) if i % 10 == 0][:6]
    return write_frames(tmp_path_factory.mktemp("face_clip") / "talk.mp4", frames)
