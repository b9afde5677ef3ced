"""`dagan animate --model EXPORTED_DIR`: the demo model exported, then animated through every
option `animate` offers, frame for frame against the PyTorch model on the same inputs."""

from pathlib import Path

import av
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
from helpers_media import face_on_background
from onnx_helpers import psnr

ASSETS = Path(dagan.__file__).parent / "assets"


def frames_of(path: Path) -> np.ndarray:
    files = sorted(path.glob("*.png")) if path.is_dir() else None
    if files:
        from PIL import Image

        return np.stack([np.asarray(Image.open(f)) for f in files]).astype(np.float32) / 255
    return np.stack(list(iter_frames(path))).astype(np.float32) / 255


def test_cli_export_then_animate_the_bundled_samples(demo_export, tmp_path, capsys):
    """What the issue's "done when" runs: export, then animate with crop and tracking, relative motion, audio."""
    video = tmp_path / "onnx.mp4"
    assert main(["animate", "--quiet", "--model", str(demo_export), "-o", str(video)]) == 0
    assert f"ONNX model {demo_export}" in capsys.readouterr().out
    info, drv = probe_video(video), probe_video(ASSETS / "sample_driving.mp4")
    assert (info.num_frames, info.frame_rate, info.has_audio) == (drv.num_frames, drv.frame_rate, True)
    # frame for frame against the PyTorch run, losslessly (two H.264 encodes of near-equal frames diverge)
    assert main(["animate", "--quiet", "--model", str(demo_export), "-o", str(tmp_path / "onnx") + "/"]) == 0
    assert main(["animate", "--quiet", "-o", str(tmp_path / "torch") + "/"]) == 0
    a, b = frames_of(tmp_path / "onnx"), frames_of(tmp_path / "torch")
    assert a.shape == b.shape == (drv.num_frames, 128, 128, 3) and a.std(axis=0).mean() > 0.004  # the face moves
    assert np.abs(a - b).max() <= 2 / 255 + 1e-6 and psnr(a, b) >= 45


@pytest.fixture(scope="module")
def moving_face(tmp_path_factory):
    """6 frames of a face moving across a 360×300 frame (face detection and tracking run)."""
    path = tmp_path_factory.mktemp("clip") / "moving.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 360, 300, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(face_on_background(140 + 10 * i, 150 - 3 * i), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


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
