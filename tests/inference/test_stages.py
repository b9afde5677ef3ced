"""The pipeline's stages used one at a time (as a live mode would) agree with the whole-video run."""

from pathlib import Path

import numpy as np
import pytest
import torch

import dagan
from dagan.config import get_preset
from dagan.inference.face import Box
from dagan.inference.pipeline import AnimateOptions, AnimationPipeline
from dagan.inference.runtime import TorchRuntime
from dagan.inference.stages import (
    Composer,
    MotionTransfer,
    SourceFace,
    batched,
    crop_frame,
    driving_crops,
    prepare_source,
)
from dagan.io import iter_frames, read_image
from dagan.models import DaGAN
from helpers_media import make_clip

ASSETS = Path(dagan.__file__).parent / "assets"


@pytest.fixture(scope="module")
def runtime():
    torch.manual_seed(0)
    return TorchRuntime(DaGAN(get_preset("tiny")).eval(), torch.device("cpu"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "d.mp4", num_frames=6, size=(64, 64), audio=None)


def test_one_frame_at_a_time_equals_batches(runtime, clip):
    photo = read_image(ASSETS / "sample_source.png")
    source = prepare_source(runtime, photo, "photo", crop=False, messages=[])
    assert source.crop.shape == (64, 64, 3) and source.box == Box(0, 0, photo.shape[1], photo.shape[0])
    crops = list(driving_crops(str(clip), 64, crop=False, detect_every=1, messages=[]))
    assert len(crops) == 6 and crops[0].shape == (64, 64, 3) and crops[0].dtype == np.float32
    batch = MotionTransfer(runtime, source.state)
    whole = np.concatenate([batch(b).frames for b in batched(crops, 4)])  # 6×S×S×3
    live = MotionTransfer(runtime, source.state)
    single = np.concatenate([live([c]).frames for c in crops])
    assert whole.shape == (6, 64, 64, 3)
    np.testing.assert_allclose(single, whole, atol=1e-6, rtol=0)
    # the frames differ from each other (the clip moves) far more than batching changes them
    assert np.abs(whole[0] - whole[5]).max() > 10 * np.abs(single - whole).max()


def test_composer_output_sizes(runtime):
    photo = np.zeros((51, 40, 3), np.uint8)
    face = SourceFace(photo, np.zeros((64, 64, 3), np.float32), Box(5, 5, 35, 35), None)
    depth, kp = runtime.driving_keypoints(torch.rand(1, 3, 64, 64))
    from dagan.inference.stages import Animated

    animated = Animated(np.full((1, 64, 64, 3), 0.5, np.float32), depth, kp)
    crop = np.zeros((64, 64, 3), np.float32)
    for options, size in [({}, (64, 64)), ({"paste": True}, (40, 50)), ({"side_by_side": True}, (320, 64))]:
        compose = Composer(face, 64, **options)
        out = compose(animated, 0, crop)
        assert compose.output_size == size and out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="cannot be combined"):
        Composer(face, 64, paste=True, side_by_side=True)


def test_crop_frame_whole_and_box():
    frame = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    assert crop_frame(frame, None, 16).shape == (16, 16, 3)
    part = crop_frame(frame, Box(0, 0, 10, 10), 10)
    np.testing.assert_allclose(part, frame[:10, :10] / 255.0, atol=1e-6)


def test_batched():
    assert list(batched(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batched([], 3)) == []


def test_a_model_with_make_runtime_runs_through_its_runtime(runtime, clip, tmp_path):
    calls = []

    class Exported:
        """Stands in for an exported model: not a DaGAN, but it makes its own runtime."""

        def make_runtime(self, device, precision):
            calls.append((device, precision))
            return runtime

    pipe = AnimationPipeline(Exported(), device="cpu", progress=False)
    assert pipe.runtime is runtime and pipe.size == 64
    result = pipe.run(ASSETS / "sample_source.png", clip, tmp_path / "o.mp4", AnimateOptions(crop=False))
    assert calls == [("cpu", "fp32")] and result.frames == 6
    assert len(list(iter_frames(tmp_path / "o.mp4"))) == 6
