"""`dagan metrics` on videos and frame folders."""

import json

import numpy as np
from PIL import Image

import dagan
from dagan.cli.main import main
from dagan.io import iter_frames
from dagan.io.video import VideoWriter
from pathlib import Path

SAMPLE = Path(dagan.__file__).parent / "assets" / "sample_driving.mp4"


def test_identical_video_and_frame_folder(tmp_path, capsys):
    """A short video against its own decoded frames saved as PNGs: the video reader (uint8) and the
    folder reader (float) must give the same frames, in the same order."""
    video = tmp_path / "clip.mp4"
    with VideoWriter(video, 25, (256, 256)) as writer:
        for i, frame in enumerate(iter_frames(SAMPLE)):
            if i == 8:
                break
            writer.write(frame)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(iter_frames(video)):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    assert main(["metrics", "--pred", str(video), "--target", str(folder), "--json", "--no-lpips"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"L1", "PSNR", "SSIM", "LPIPS", "AKD", "AED", "num_frames", "failed_detections_pred",
                        "failed_detections_target"}
    assert out["L1"] < 1e-6 and out["SSIM"] > 1 - 1e-6 and out["AKD"] == 0 and out["AED"] == 0, out
    assert out["failed_detections_pred"] == out["failed_detections_target"] == 0
    assert out["num_frames"] == 8 and out["LPIPS"] is None and out["LPIPS_reason"]


def test_mismatched_counts_and_missing_inputs(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "0.png")
    assert main(["metrics", "--pred", str(folder), "--target", str(SAMPLE), "--no-lpips"]) == 2
    assert "frame counts differ" in capsys.readouterr().err
    assert main(["metrics", "--pred", str(tmp_path / "nope"), "--target", str(SAMPLE)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["metrics", "--pred", str(tmp_path / "empty"), "--target", str(SAMPLE)]) == 2
    assert "no image frames" in capsys.readouterr().err
