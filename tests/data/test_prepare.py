"""`dagan prepare`: face-cropped clips in the dataset layout, bad videos skipped, clear errors."""

import shutil
from pathlib import Path

import pytest

import dagan
from dagan.cli.main import main
from dagan.data.datasets import list_clips
from dagan.io import probe_video

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
    train = list_clips(out, "train") if (out / "train").exists() else {}
    assert sum(len(v) for v in train.values()) + len(list((out / "test").glob("*.mp4"))) == 4


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
