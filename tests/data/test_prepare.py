"""`dagan prepare`: face-cropped clips in the dataset layout, bad videos skipped, clear errors."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dagan
from dagan.cli.main import main
from dagan.data.datasets import list_clips
from dagan.inference.face import detect_faces
from dagan.io import iter_frames, probe_video

SAMPLE = Path(dagan.__file__).parent / "assets" / "sample_driving.mp4"


@pytest.fixture()
def raw(tmp_path):
    root = tmp_path / "raw"
    for ident, clip in (("alice", "a1"), ("alice", "a2"), ("bob", "b1"), ("carol", "c1")):
        (root / ident).mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE, root / ident / f"{clip}.mp4")
    (root / "bob" / "broken.mp4").write_bytes(b"not a video")
    return root


def test_prepare_writes_dataset_layout(raw, tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["prepare", str(raw), "-o", str(out), "--size", "64", "--workers", "2", "--test-fraction", "0.5",
                 "--detect-every", "5"]) == 0
    text = capsys.readouterr().out
    assert "4 clips (1 skipped)" in text and "broken.mp4" in text
    clips = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4"))
    assert len(clips) == 4
    assert {c.split("/")[1] for c in clips} == {"alice#a1.mp4", "alice#a2.mp4", "bob#b1.mp4", "carol#c1.mp4"}
    # an identity never spans both splits
    splits = {}
    for c in clips:
        split, name = c.split("/")
        splits.setdefault(name.split("#")[0], set()).add(split)
    assert all(len(s) == 1 for s in splits.values())
    info = probe_video(out / clips[0])
    assert (info.width, info.height, info.num_frames) == (64, 64, probe_video(SAMPLE).num_frames)
    # --test-fraction 0.5 sends whole identities to test by crc32("0:<identity>") / 2³² < 0.5:
    # alice 0.44 and carol 0.24 → test, bob 0.95 → train; both splits exist
    assert sorted(p.name for p in (out / "test").glob("*.mp4")) == ["alice#a1.mp4", "alice#a2.mp4", "carol#c1.mp4"]
    assert {k: len(v) for k, v in list_clips(out, "train").items()} == {"bob": 1}
    # the output frames are face-centred: the face found in a frame sits in the middle of the crop
    frame = next(iter_frames(out / "train" / "bob#b1.mp4"))
    big = np.asarray(Image.fromarray(frame).resize((256, 256), Image.Resampling.BICUBIC))
    boxes = detect_faces(big)
    assert boxes, "no face in the prepared frame"
    cx, cy = (boxes[0].x0 + boxes[0].x1) / 2 / 256, (boxes[0].y0 + boxes[0].y1) / 2 / 256
    assert abs(cx - 0.5) < 0.1 and abs(cy - 0.5) < 0.15, (cx, cy)


def test_prepare_errors(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["prepare", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 2
    assert "no videos" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mp4").write_bytes(b"junk")
    assert main(["prepare", str(tmp_path / "bad"), "-o", str(tmp_path / "o"), "--workers", "1"]) == 2
    assert "could be prepared" in capsys.readouterr().err
