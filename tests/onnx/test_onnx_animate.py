"""`dagan animate --model EXPORTED_DIR`: the demo model exported, then animated through every
option `animate` offers, frame for frame against the PyTorch model on the same inputs."""

from pathlib import Path

import numpy as np
import pytest

import dagan
from dagan.assets import DEMO_MODEL
from dagan.cli.main import main
from dagan.inference.pipeline import AnimateOptions, AnimationPipeline
from dagan.io import iter_frames, probe_video
from dagan.models import DaGAN
from dagan.onnx import OnnxModel
from dagan.onnx.runtime import OnnxRuntime
from helpers_media import face_on_background, make_clip
from onnx_helpers import psnr

ASSETS = Path(dagan.__file__).parent / "assets"


def frames_of(path: Path) -> np.ndarray:
    files = sorted(path.glob("*.png")) if path.is_dir() else None
    if files:
        from PIL import Image

        return np.stack([np.asarray(Image.open(f)) for f in files]).astype(np.float32) / 255
    return np.stack(list(iter_frames(path))).astype(np.float32) / 255


def test_cli_export_then_animate_the_bundled_samples(demo_export, tmp_path, capsys):
    """What the issue's "done when" runs: export, then animate with crop and tracking and relative motion,
    frame for frame against the PyTorch run (as PNG frames: two H.264 encodes of near-equal frames diverge)."""
    assert main(["animate", "--quiet", "--model", str(demo_export), "-o", str(tmp_path / "onnx") + "/"]) == 0
    assert f"ONNX model {demo_export}" in capsys.readouterr().out
    assert main(["animate", "--quiet", "-o", str(tmp_path / "torch") + "/"]) == 0
    a, b = frames_of(tmp_path / "onnx"), frames_of(tmp_path / "torch")
    frames = probe_video(ASSETS / "sample_driving.mp4").num_frames
    assert a.shape == b.shape == (frames, 128, 128, 3) and a.std(axis=0).mean() > 0.004  # the face moves
    assert np.abs(a - b).max() <= 2 / 255 + 1e-6 and psnr(a, b) >= 45


@pytest.fixture(scope="module")
def moving_face(tmp_path_factory):
    """6 frames (with audio) of a face moving across a 360×300 frame: face detection and tracking run."""
    return make_clip(tmp_path_factory.mktemp("clip") / "moving.mp4", 6, (360, 300),
                     draw=lambda i, w, h: face_on_background(140 + 10 * i, 150 - 3 * i, (w, h)))


def test_audio_frame_rate_and_frame_count_are_kept(demo_export, moving_face, tmp_path):
    pipe = AnimationPipeline(OnnxModel(demo_export), device="cpu", progress=False)
    result = pipe.run(str(ASSETS / "sample_source.png"), str(moving_face), tmp_path / "out.mp4")
    info, drv = probe_video(tmp_path / "out.mp4"), probe_video(moving_face)
    assert result.audio and info.has_audio
    assert (info.num_frames, info.frame_rate, info.width) == (6, drv.frame_rate, 128)


@pytest.mark.parametrize("options", [
    dict(smooth_keypoints=1.0, side_by_side=True, batch_size=4),
    dict(relative=False, paste_back=True),
    dict(best_frame="auto"),
    dict(best_frame=3, adapt_movement_scale=False, crop=False),
], ids=["relative-smooth-side-by-side", "absolute-paste-back", "best-frame-auto", "best-frame-3-no-crop"])
def test_every_animate_option_matches_pytorch(options, demo_export, moving_face, tmp_path):
    source = str(ASSETS / "sample_source.png")
    outputs = {}
    for name, model in (("onnx", OnnxModel(demo_export)), ("torch", DaGAN.from_pretrained(DEMO_MODEL))):
        pipe = AnimationPipeline(model, device="cpu", progress=False)
        assert isinstance(pipe.runtime, OnnxRuntime) == (name == "onnx")
        result = pipe.run(source, str(moving_face), tmp_path / name, AnimateOptions(**options))
        outputs[name] = (result, frames_of(tmp_path / name))
    (ra, a), (rb, b) = outputs["onnx"], outputs["torch"]
    assert (ra.frames, ra.size, ra.best_frame) == (rb.frames, rb.size, rb.best_frame) and ra.frames == 6
    assert np.abs(a - b).max() <= 2 / 255 + 1e-6, "PNG frames differ by more than uint8 rounding"
    assert psnr(a, b) >= 45
