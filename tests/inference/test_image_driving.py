"""Driving with one image: one picture out (crop or pasted back, any faces); image output needs it."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dagan
import dagan.assets
from dagan.cli.main import main
from dagan.io import iter_frames, probe_video, read_image

SOURCE = Path(dagan.__file__).parent / "assets" / "sample_source.png"


@pytest.fixture(scope="module")
def driving_png(tmp_path_factory):
    """Frame 40 of the bundled driving video (mouth open, head turned) as a PNG."""
    frame = [f for i, f in enumerate(iter_frames(dagan.assets.sample_driving())) if i == 40][0]
    path = tmp_path_factory.mktemp("drive_img") / "pose.png"
    Image.fromarray(frame).save(path)
    return path


def animate(*args):
    return main(["animate", "--quiet", *map(str, args)])


def test_one_image_in_one_image_out(driving_png, tmp_path, capsys):
    assert animate("--source", SOURCE, "--driving", driving_png, "-o", tmp_path / "posed.png") == 0
    assert "absolute motion" in capsys.readouterr().out
    posed = read_image(tmp_path / "posed.png")
    assert posed.shape == (128, 128, 3)
    assert animate("--source", SOURCE, "--driving", SOURCE, "-o", tmp_path / "self.png") == 0
    # driving with the source itself reproduces it closely; another pose moves it further away
    from dagan.inference.face import crop_and_resize, crop_box_from_face, detect_largest_face
    from dagan.io import to_uint8

    photo = read_image(SOURCE)
    face, _ = detect_largest_face(to_uint8(photo))
    crop = crop_and_resize(photo, crop_box_from_face(face, photo.shape[1::-1]), 128)
    assert np.abs(read_image(tmp_path / "self.png") - crop).mean() < np.abs(posed - crop).mean()


def test_image_driving_with_paste_back_and_faces(driving_png, group_png, tmp_path):
    out = tmp_path / "group.jpg"
    assert animate("--source", group_png, "--driving", driving_png, "--faces", "all", "--paste-back", "-o", out) == 0
    pasted, photo = read_image(out), read_image(group_png)
    assert pasted.shape == photo.shape
    assert np.abs(pasted - photo).mean() > 0.002
    assert animate("--source", group_png, "--driving", driving_png, "--faces", "1,2", "-o", tmp_path / "f.png") == 0
    assert sorted(p.name for p in tmp_path.glob("f_face*.png")) == ["f_face1.png", "f_face2.png"]
    assert animate("--source", SOURCE, "--driving", driving_png, "-o", tmp_path / "one.mp4") == 0
    assert probe_video(tmp_path / "one.mp4").num_frames == 1


def test_image_output_with_a_video_driving_is_refused(tmp_path, capsys):
    assert animate("--source", SOURCE, "-o", tmp_path / "x.png") == 2
    err = capsys.readouterr().err.strip()
    assert "is an image, but" in err and "a video (75 frames)" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())
    assert animate("--source", SOURCE, "--driving", SOURCE, "--best-frame", "3", "-o", tmp_path / "x.png") == 2
    assert "needs a driving video" in capsys.readouterr().err
