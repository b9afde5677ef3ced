"""Group photos: face numbering and selection, multi-face paste-back, one batch per frame, end to end."""

import json

import numpy as np
import pytest
import torch

from dagan.cli.main import main
from dagan.errors import DaganError
from dagan.geometry import Keypoints
from dagan.inference.face import Box
from dagan.inference.group import face_output_path, parse_faces, select_faces
from dagan.inference.paste import blend_mask, paste_back, paste_faces
from dagan.inference.pipeline import AnimateOptions, AnimationPipeline
from dagan.io import read_image, to_float
from dagan.io.frames import iter_any_frames

LEFT, MIDDLE, RIGHT = Box(10, 10, 50, 50), Box(100, 0, 200, 100), Box(60, 20, 90, 50)


def test_faces_are_numbered_left_to_right():
    boxes = [MIDDLE, LEFT, RIGHT]  # detector order: largest first
    assert select_faces(boxes, "all", "p.jpg") == [(1, LEFT), (2, RIGHT), (3, MIDDLE)]
    assert select_faces(boxes, "largest", "p.jpg") == [(3, MIDDLE)]
    assert select_faces(boxes, parse_faces("3,1"), "p.jpg") == [(1, LEFT), (3, MIDDLE)]
    with pytest.raises(DaganError, match="p.jpg has 3 faces"):
        select_faces(boxes, parse_faces("4"), "p.jpg")
    with pytest.raises(DaganError, match="no face found"):
        select_faces([], "all", "p.jpg")


@pytest.mark.parametrize("spec", ["", "0", "one", "1,x", "-2"])
def test_bad_face_specs(spec):
    if spec == "":
        assert parse_faces(spec) == "largest"
        return
    with pytest.raises(DaganError, match="--faces"):
        parse_faces(spec)


def test_face_output_names(tmp_path):
    assert face_output_path("out/a.mp4", 2).as_posix() == "out/a_face2.mp4"
    assert face_output_path("frames/", 1).as_posix() == "frames_face1"
    assert face_output_path(tmp_path, 3) == tmp_path.parent / f"{tmp_path.name}_face3"


def test_paste_faces_one_face_is_paste_back_and_outside_is_untouched():
    rng = np.random.default_rng(0)
    photo = rng.random((80, 120, 3)).astype(np.float32)
    face = rng.random((16, 16, 3)).astype(np.float32)
    box = Box(20.3, 10.7, 70.1, 60.5)
    assert np.array_equal(paste_faces(photo, [face], [box]), paste_back(photo, face, box))
    two = paste_faces(photo, [face, face], [box, Box(60, 5, 110, 55)])
    outside = np.ones(photo.shape[:2], bool)
    for b in (box, Box(60, 5, 110, 55)):
        outside[:, :] &= blend_mask(b, (0, 0, 120, 80)) == 0
    assert np.array_equal(two[outside], photo[outside])


def test_overlapping_faces_blend_without_a_seam():
    """Two overlapping crops of one colour: the overlap is that colour (no darkening, no double
    weight), the result is independent of face order and equals A·c + (1 − A)·photo."""
    photo = np.zeros((60, 100, 3), np.float32)
    colour = np.full((8, 8, 3), 0.8, np.float32)
    a, b = Box(10, 5, 60, 55), Box(35, 5, 85, 55)
    ab = paste_faces(photo, [colour, colour], [a, b])
    assert np.allclose(ab, paste_faces(photo, [colour, colour], [b, a]), atol=1e-6)
    ma, mb = blend_mask(a, (0, 0, 100, 60)), blend_mask(b, (0, 0, 100, 60))
    coverage = 1 - (1 - ma) * (1 - mb)
    assert np.allclose(ab[..., 0], 0.8 * coverage, atol=1e-5)
    assert ab.max() <= 0.8 + 1e-6  # never brighter than the faces: overlaps are mixed, not added
    with pytest.raises(ValueError, match="2 faces but 1 boxes"):
        paste_faces(photo, [colour, colour], [a])


@pytest.fixture(scope="module")
def demo_pipe():
    from dagan import assets

    model, _ = assets.resolve_model(None)
    return AnimationPipeline(model, device="cpu", progress=False)


def test_stacked_states_give_per_face_results(demo_pipe):
    """The bundled demo model (trained, so different sources give visibly different frames)."""
    runtime = demo_pipe.runtime
    g = torch.Generator().manual_seed(0)
    sources = [torch.rand(1, 3, 128, 128, generator=g) for _ in range(2)]
    states = [runtime.prepare_source(s) for s in sources]
    _, kp = runtime.driving_keypoints(torch.rand(3, 3, 128, 128, generator=g))
    stacked = runtime.stack_states(states, 3)
    assert stacked.image.shape == (6, 3, 128, 128) and stacked.keypoints.value.shape[0] == 6
    together = runtime.generate(stacked, Keypoints.cat([kp, kp]))
    apart = torch.cat([runtime.generate(s, kp) for s in states])
    assert torch.allclose(together, apart, atol=1e-5)
    assert (apart[:3] - apart[3:]).abs().mean() > 0.05  # the two faces really differ


def _frames(path):
    return np.stack([to_float(f) for f in iter_any_frames(path)])


def _region(frames, box):
    return frames[:, int(box.y0) + 5:int(box.y1) - 5, int(box.x0) + 5:int(box.x1) - 5]


def test_group_photo_all_faces_move_and_run_as_one_batch(demo_pipe, group_png, face_clip, tmp_path, monkeypatch):
    calls = []
    generate = demo_pipe.runtime.generate
    monkeypatch.setattr(demo_pipe.runtime, "generate", lambda s, k: calls.append(k.value.shape[0]) or generate(s, k))
    opts = AnimateOptions(faces="all", paste_back=True, batch_size=3)
    result = demo_pipe.run(group_png, face_clip, tmp_path / "all/", opts)
    assert result.faces == [1, 2] and result.frames == 6 and calls == [6, 6]  # 2 faces × 3 frames per call
    frames = _frames(tmp_path / "all")
    photo = read_image(group_png)
    assert frames.shape == (6, *photo.shape)
    boxes = [f.box for f in demo_pipe.prepare_photo(group_png, opts)]
    for box in boxes:
        region = _region(frames, box)
        assert np.abs(region[1:] - region[:1]).mean() > 0.003  # this face moves over time
    outside = np.ones(photo.shape[:2], bool)
    for box in boxes:
        outside &= blend_mask(box, (0, 0, photo.shape[1], photo.shape[0])) == 0
    assert np.array_equal(frames[:, outside], np.broadcast_to(photo[outside], frames[:, outside].shape))


def test_group_photo_largest_face_only(demo_pipe, group_png, face_clip, tmp_path, capsys):
    assert main(["animate", "--quiet", "--source", str(group_png), "--driving", str(face_clip), "--paste-back",
                 "-o", str(tmp_path / "largest/")]) == 0
    assert "2 faces in" in capsys.readouterr().out
    frames = _frames(tmp_path / "largest")
    photo = read_image(group_png)
    left, right = (f.box for f in demo_pipe.prepare_photo(group_png, AnimateOptions(faces="all")))
    assert np.abs(_region(frames, left)[1:] - _region(frames, left)[:1]).mean() > 0.003
    outside = blend_mask(left, (0, 0, photo.shape[1], photo.shape[0])) == 0  # the astronaut included
    assert np.array_equal(frames[:, outside], np.broadcast_to(photo[outside], frames[:, outside].shape))
    assert np.array_equal(_region(frames, right), np.broadcast_to(_region(photo[None], right), _region(frames, right).shape))


def test_crop_only_output_is_one_file_per_face(group_png, face_clip, tmp_path, capsys):
    out = tmp_path / "faces.mp4"
    assert main(["animate", "--quiet", "--source", str(group_png), "--driving", str(face_clip), "--faces", "all",
                 "-o", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces_face1.mp4", "faces_face2.mp4"]
    assert "faces 1,2" in capsys.readouterr().out
    assert main(["animate", "--quiet", "--source", str(group_png), "--driving", str(face_clip), "--faces", "3",
                 "-o", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err
    assert "has 2 faces" in err and len(err.strip().splitlines()) == 1
    assert main(["animate", "--quiet", "--source", str(group_png), "--driving", str(face_clip), "--faces", "all",
                 "--no-crop", "-o", str(tmp_path / "x.mp4")]) == 2
    assert "cannot be combined with --no-crop" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_info_lists_the_faces(group_png, capsys):
    assert main(["info", "--faces", str(group_png)]) == 0
    out = capsys.readouterr().out
    assert "2 faces" in out and "face 1: box x 128–278" in out and "largest" in out.splitlines()[1]
    assert main(["info", "--faces", str(group_png), "--json"]) == 0
    faces = json.loads(capsys.readouterr().out)["faces"]
    assert [f["face"] for f in faces] == [1, 2] and faces[0]["box"][0] < faces[1]["box"][0]


def test_composer_with_several_faces():
    from dagan.inference.stages import Animated, Composer, SourceFace

    photo = np.zeros((51, 80, 3), np.uint8)
    faces = [SourceFace(photo, np.zeros((8, 8, 3), np.float32), Box(0, 0, 40, 40), None, 1),
             SourceFace(photo, np.zeros((8, 8, 3), np.float32), Box(40, 0, 80, 40), None, 2)]
    per_face = np.stack([np.full((2, 8, 8, 3), 0.25, np.float32), np.full((2, 8, 8, 3), 0.75, np.float32)])
    animated = Animated(per_face[0], None, Keypoints(torch.zeros(2, 5, 2)), per_face)
    crops = Composer(faces, 8)
    assert crops.streams == 2 and [f.mean() for f in crops.outputs(animated, 1, None)] == pytest.approx([64, 191], abs=1)
    pasted = Composer(faces, 8, paste=True)
    assert pasted.streams == 1 and pasted.output_size == (80, 50)
    (frame,) = pasted.outputs(animated, 0, None)
    assert frame[20, 20, 0] == 64 and frame[20, 60, 0] == 191  # each face pasted at its own box
    assert Composer(faces, 8, paste=True, even=False).output_size == (80, 51)
