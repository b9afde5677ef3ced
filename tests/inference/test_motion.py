"""Motion files: extract once, animate like the video did, refuse other models and newer formats."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import dagan
from dagan.cli.main import main
from dagan.config import get_preset
from dagan.errors import DaganError
from dagan.inference.motion import MOTION_FORMAT, Motion, load_motion, model_identifier, save_motion
from dagan.io import probe_video, to_float
from dagan.io.frames import iter_any_frames
from dagan.models import DaGAN
from helpers_media import audio_seconds

SOURCE = Path(dagan.__file__).parent / "assets" / "sample_source.png"


def cli(*args):
    return main([*map(str, args)])


@pytest.fixture(scope="module")
def motion_file(tiny_dir, crop_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("motion") / "drive.npz"
    assert cli("extract-motion", "--model", tiny_dir, "--driving", crop_clip, "--no-crop", "-o", out) == 0
    return out


def test_motion_file_holds_keypoints_fps_and_model_but_no_pixels(tiny_dir, motion_file):
    with np.load(motion_file, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    assert int(arrays["format"]) == MOTION_FORMAT and int(arrays["num_frames"]) == 6
    assert arrays["value"].shape == (6, 5, 2) and arrays["jacobian"].shape == (6, 5, 2, 2)
    assert Fraction(int(arrays["fps_num"]), int(arrays["fps_den"])) == Fraction(30000, 1001)
    assert str(arrays["model_id"]) == model_identifier(DaGAN.from_pretrained(tiny_dir))
    assert "landmarks" not in arrays
    assert max(a.size for a in arrays.values()) <= 6 * 5 * 4  # nothing image-sized
    assert not list(motion_file.parent.glob(".*"))  # no temp file left behind


def test_animating_from_the_motion_file_matches_the_video(face_clip, tmp_path):
    """The demo model on real face frames: the same PNG frames from the video and from its motion file."""
    motion = tmp_path / "talk.npz"
    assert cli("extract-motion", "--driving", face_clip, "--no-crop", "-o", motion) == 0
    common = ["animate", "--quiet", "--source", SOURCE, "--no-crop"]
    assert cli(*common, "--driving", face_clip, "-o", tmp_path / "video/") == 0
    assert cli(*common, "--driving", motion, "-o", tmp_path / "motion/") == 0
    a = np.stack([to_float(f) for f in iter_any_frames(tmp_path / "video")])
    b = np.stack([to_float(f) for f in iter_any_frames(tmp_path / "motion")])
    assert a.shape == b.shape == (6, 128, 128, 3)
    assert np.abs(a.astype(np.float64) - b).max() <= 1 / 255 + 1e-6
    assert np.abs(a[1:] - a[:1]).mean() > 0.005  # the frames do move, so the comparison means something


def test_motion_file_with_audio_reproduces_the_clip(tiny_dir, crop_clip, motion_file, tmp_path):
    out = tmp_path / "out.mp4"
    assert cli("animate", "--quiet", "--model", tiny_dir, "--source", SOURCE, "--no-crop",
               "--driving", motion_file, "--audio", crop_clip, "-o", out) == 0
    info = probe_video(out)
    assert info.num_frames == 6 and info.frame_rate == Fraction(30000, 1001) and info.has_audio
    assert abs(audio_seconds(out) - audio_seconds(crop_clip)) < 0.05
    assert cli("animate", "--quiet", "--model", tiny_dir, "--source", SOURCE, "--no-crop",
               "--driving", motion_file, "-o", tmp_path / "silent.mp4") == 0
    assert not probe_video(tmp_path / "silent.mp4").has_audio  # a motion file carries no sound


def test_model_identifier_covers_depth_and_keypoints_only():
    torch.manual_seed(0)
    a = DaGAN(get_preset("tiny"))
    b = DaGAN(get_preset("tiny"))
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        next(b.generator.parameters()).add_(1.0)
    assert model_identifier(a) == model_identifier(b)
    with torch.no_grad():
        next(b.keypoint_detector.parameters()).add_(1e-3)
    assert model_identifier(a) != model_identifier(b)


def _fake(path, **changes):
    arrays = {"format": np.array(MOTION_FORMAT), "model_id": np.array("abc"), "value": np.zeros((2, 5, 2), np.float32),
              "fps_num": np.array(25), "fps_den": np.array(1), "num_frames": np.array(2)}
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("changes, message", [
    ({"format": np.array(MOTION_FORMAT + 1)}, "newer than this dagan reads"),
    ({"model_id": np.array("other")}, "extracted with another model"),
    ({"num_frames": np.array(3)}, "damaged motion file"),
    ({"fps_den": np.array(0)}, "damaged motion file"),
])
def test_bad_motion_files_get_one_clear_line(tmp_path, changes, message):
    path = _fake(tmp_path / "m.npz", **changes)
    with pytest.raises(DaganError, match=message):
        load_motion(path, model_id="abc")


def test_pickled_or_foreign_npz_is_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", value=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DaganError, match="not a readable motion file|not a dagan motion file"):
        load_motion(tmp_path / "obj.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DaganError, match="not a readable motion file"):
        load_motion(tmp_path / "junk.npz")


def test_save_load_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    motion = Motion(rng.standard_normal((3, 4, 2)).astype(np.float32), rng.standard_normal((3, 4, 2, 2)).astype(np.float32),
                    Fraction(30000, 1001), "id1", np.full((3, 68, 2), np.nan, np.float32), "clip.mp4")
    save_motion(tmp_path / "m.npz", motion)
    back = load_motion(tmp_path / "m.npz", model_id="id1")
    assert np.array_equal(back.value, motion.value) and np.array_equal(back.jacobian, motion.jacobian)
    assert back.frame_rate == motion.frame_rate and back.num_frames == 3 and back.driving == "clip.mp4"
    assert np.isnan(back.landmarks).all()
    with pytest.raises(DaganError, match="must end in .npz"):
        save_motion(tmp_path / "m.pkl", motion)


def test_cli_errors(tiny_dir, crop_clip, motion_file, tmp_path, capsys):
    other = tmp_path / "other"
    torch.manual_seed(1)
    DaGAN(get_preset("tiny")).save_pretrained(other)
    assert cli("animate", "--quiet", "--model", other, "--source", SOURCE, "--no-crop", "--driving", motion_file,
               "-o", tmp_path / "x.mp4") == 2
    err = capsys.readouterr().err.strip()
    assert "extracted with another model" in err and len(err.splitlines()) == 1
    assert cli("animate", "--quiet", "--model", tiny_dir, "--source", SOURCE, "--no-crop", "--driving",
               motion_file, "--side-by-side", "-o", tmp_path / "x.mp4") == 2
    assert "a motion file" in capsys.readouterr().err
    assert cli("animate", "--quiet", "--model", tiny_dir, "--source", SOURCE, "--no-crop", "--driving",
               motion_file, "--audio", crop_clip, "-o", tmp_path / "x.gif") == 2
    assert "--audio needs a video output" in capsys.readouterr().err
    assert cli("animate", "--quiet", "--model", tiny_dir, "--source", SOURCE, "--no-crop", "--driving",
               motion_file, "--audio", tmp_path / "none.wav", "-o", tmp_path / "x.mp4") == 2
    assert "no such file" in capsys.readouterr().err
    assert cli("extract-motion", "--model", tiny_dir, "--driving", SOURCE, "-o", tmp_path / "m.npz") == 2
    assert "needs a driving video" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*")) and not (tmp_path / "m.npz").exists()


def test_best_frame_from_a_motion_file(tiny_dir, crop_clip, motion_file, tmp_path, capsys):
    assert cli("animate", "--quiet", "--model", tiny_dir, "--source", SOURCE, "--no-crop", "--driving",
               motion_file, "--best-frame", "2", "-o", tmp_path / "b.mp4") == 0
    assert probe_video(tmp_path / "b.mp4").num_frames == 6
    assert cli("animate", "--quiet", "--model", tiny_dir, "--source", SOURCE, "--no-crop", "--driving",
               motion_file, "--best-frame", "auto", "-o", tmp_path / "c.mp4") == 2
    assert "extract-motion --landmarks" in capsys.readouterr().err


def test_runtime_identifier_ignores_precision_and_inference_form(tiny_dir):
    from dagan.inference.motion import runtime_model_id
    from dagan.inference.runtime import TorchRuntime

    model = DaGAN.from_pretrained(tiny_dir)
    ids = {runtime_model_id(TorchRuntime(model, torch.device("cpu"), p)) for p in ("fp32", "bf16")}
    assert ids == {model_identifier(model)}
