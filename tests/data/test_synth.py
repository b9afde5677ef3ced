"""Synthetic talking-head clips: renderer, motion, dataset files, determinism, and the depth metrics
(dagan.evaluation.depth) on their ground truth."""

import json

import numpy as np
import pytest

from dagan.data.synth import (
    TRUTH_KEYS,
    _builtin_face,
    head_framing,
    load_truth,
    random_appearance,
    sample_motion,
    synthesize,
)
from dagan.data.head_mesh import MIRROR_68, Appearance, build_head
from dagan.data.raster import intrinsics_matrix, pose_matrix, project, rasterize
from dagan.data.synth_render import render_head
from dagan.errors import DaganError
from dagan.evaluation.depth import depth_agreement, flat_depth_baseline
from dagan.io.video import iter_frames

SIZE = 64
TINY = dict(identities=2, clips=1, frames=6, size=SIZE)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ds"
    summary = synthesize(root, seed=0, **TINY)
    return root, summary


@pytest.fixture(scope="module")
def head():
    image, lm = _builtin_face("astronaut")
    return build_head(image, lm)


@pytest.fixture(scope="module")
def camera(head):
    k = intrinsics_matrix(SIZE)
    return k, head_framing(head, k, SIZE)


def _render(head, camera, yaw=0.0, pitch=0.0, roll=0.0, **kw):
    k, rest = camera
    return render_head(head, np.r_[yaw, pitch, roll, rest], k, SIZE, **kw)


def _frames(path):
    return np.stack(list(iter_frames(path)))


# --- dataset files ---------------------------------------------------------------------------


def test_layout_names_and_summary(dataset):
    root, summary = dataset
    train = sorted(p.name for p in (root / "train").iterdir())
    test = sorted(p.name for p in (root / "test").iterdir())
    assert train == ["id000_astronaut#000.mp4", "id000_astronaut#000.npz"]
    assert test == ["id001_grace_hopper#000.mp4", "id001_grace_hopper#000.npz"]
    assert summary["train"] == ["id000_astronaut#000.mp4"] and summary["test"] == ["id001_grace_hopper#000.mp4"]
    assert json.loads((root / "synth.json").read_text()) == summary
    assert [i["split"] for i in summary["identities"]] == ["train", "test"]


def test_dataset_reader_lists_the_clips(dataset):
    from dagan.data.datasets import list_clips

    root, _ = dataset
    assert list(list_clips(root, "train")) == ["id000_astronaut"]
    assert list(list_clips(root, "test")) == ["id001_grace_hopper"]


def test_ground_truth_keys_shapes_and_values(dataset):
    root, _ = dataset
    truth = load_truth(root / "train" / "id000_astronaut#000.mp4")
    t = TINY["frames"]
    assert set(truth) == set(TRUTH_KEYS)
    shapes = {
        "depth": ((t, SIZE, SIZE), np.float32),
        "mask": ((t, SIZE, SIZE), np.bool_),
        "pose": ((t, 6), np.float32),
        "rotation": ((t, 3, 3), np.float32),
        "landmarks": ((t, 68, 2), np.float32),
        "landmarks3d": ((t, 68, 3), np.float32),
        "landmarks_visible": ((t, 68), np.bool_),
        "intrinsics": ((3, 3), np.float32),
        "mouth_open": ((t,), np.float32),
        "eyes_closed": ((t,), np.float32),
        "fps": ((), np.float32),
    }
    for key, (shape, dtype) in shapes.items():
        assert truth[key].shape == shape, key
        assert truth[key].dtype == dtype, key
    depth, mask = truth["depth"], truth["mask"]
    assert mask.mean() > 0.15  # the head fills a good part of the frame
    assert (depth[mask] > 0.3).all() and (depth[mask] < 2.0).all()  # metres
    assert (depth[~mask] >= 0).all() and np.isfinite(depth).all()
    assert (depth == 0).any()  # background
    # the stored rotation is the documented function of the stored angles
    rot = np.stack([pose_matrix(*p[:3]) for p in truth["pose"].astype(np.float64)])
    np.testing.assert_allclose(truth["rotation"], rot, atol=1e-6)
    # landmarks are the projection of landmarks3d with the stored intrinsics
    lm = project(truth["landmarks3d"].reshape(-1, 3), truth["intrinsics"]).reshape(t, 68, 2)
    np.testing.assert_allclose(truth["landmarks"], lm, atol=1e-3)
    assert np.abs(truth["pose"][:, :3]).max() <= np.radians(25) + 1e-6
    assert float(truth["fps"]) == 25.0


def test_landmarks_inside_image_and_moving(dataset):
    root, _ = dataset
    for split, name in (("train", "id000_astronaut#000"), ("test", "id001_grace_hopper#000")):
        lm = load_truth(root / split / f"{name}.npz")["landmarks"]
        assert (lm > 0).all() and (lm < SIZE).all()
        assert np.abs(np.diff(lm, axis=0)).max() > 0.5  # the head moves
        assert lm.std(axis=0).mean() > 0.2


def test_video_frames_match_the_truth(dataset):
    root, _ = dataset
    frames = _frames(root / "train" / "id000_astronaut#000.mp4")
    truth = load_truth(root / "train" / "id000_astronaut#000.npz")
    assert frames.shape == (TINY["frames"], SIZE, SIZE, 3)
    # the head differs from the static background: mask pixels change over time more
    var = frames.astype(np.float32).std(0).mean(-1)
    mask_any = truth["mask"].any(0)
    assert var[mask_any].mean() > var[~mask_any].mean()


def test_same_seed_is_identical_and_another_seed_differs(dataset, tmp_path):
    root, _ = dataset
    again = tmp_path / "again"
    synthesize(again, seed=0, **TINY)
    other = tmp_path / "other"
    synthesize(other, seed=1, **TINY)
    for split, name in (("train", "id000_astronaut#000"), ("test", "id001_grace_hopper#000")):
        assert (root / split / f"{name}.npz").read_bytes() == (again / split / f"{name}.npz").read_bytes()
        np.testing.assert_array_equal(_frames(root / split / f"{name}.mp4"), _frames(again / split / f"{name}.mp4"))
        a, b = load_truth(root / split / f"{name}.npz"), load_truth(other / split / f"{name}.npz")
        assert not np.allclose(a["pose"], b["pose"])
        assert not np.array_equal(_frames(root / split / f"{name}.mp4"), _frames(other / split / f"{name}.mp4"))


def test_existing_dataset_needs_overwrite(dataset, tmp_path):
    root = tmp_path / "ds"
    synthesize(root, seed=0, identities=2, clips=1, frames=2, size=32)
    with pytest.raises(DaganError, match="overwrite"):
        synthesize(root, seed=0, identities=2, clips=1, frames=2, size=32)
    synthesize(root, seed=0, identities=2, clips=1, frames=2, size=32, overwrite=True)
    assert len(list((root / "train").iterdir())) == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(identities=1), "identities"),
        (dict(size=63), "size"),
        (dict(size=16), "size"),
        (dict(frames=0), "frames"),
        (dict(test_identities=2), "test_identities"),
        (dict(test_identities=[0, 1]), "test_identities"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    args = dict(TINY, **kwargs)
    with pytest.raises(DaganError, match=match):
        synthesize(tmp_path / "ds", **args)


def test_photo_without_face_is_a_clear_error(tmp_path):
    blank = np.full((120, 120, 3), 128, np.uint8)
    with pytest.raises(DaganError, match="no face"):
        synthesize(tmp_path / "ds", photos=[blank], **TINY)


def test_user_photo_becomes_an_identity(tmp_path):
    from PIL import Image

    image, _ = _builtin_face("astronaut")
    path = tmp_path / "my face.png"
    Image.fromarray(image[40:260, 110:340]).save(path)
    summary = synthesize(tmp_path / "ds", photos=[path], identities=3, clips=1, frames=2, size=32)
    assert summary["identities"][2]["name"] == "id002_my-face"
    assert summary["test"] == ["id002_my-face#000.mp4"]
    assert (tmp_path / "ds" / "test" / "id002_my-face#000.npz").is_file()


def test_default_split_holds_out_every_third_identity():
    from dagan.data.synth import _pick_test

    assert _pick_test(6, None) == [2, 5]
    assert _pick_test(2, None) == [1]
    assert _pick_test(9, None) == [2, 5, 8]
    assert _pick_test(5, [0, 3]) == [0, 3]


# --- renderer --------------------------------------------------------------------------------


def test_frontal_depth_nose_nearer_than_cheeks(head, camera):
    r = _render(head, camera)
    assert r.mask.sum() > 0.2 * SIZE * SIZE
    assert (r.depth[r.mask] > 0).all()
    assert r.landmarks_visible.all()

    def depth_at(p):
        return r.depth[int(p[1]), int(p[0])]

    lm = r.landmarks
    nose = depth_at(lm[30])
    for a, b in ((2, 31), (14, 35), (3, 48), (13, 54)):  # cheeks on both sides
        cheek = depth_at(0.5 * (lm[a] + lm[b]))
        assert nose < cheek - 0.01  # at least 1 cm nearer
    assert depth_at(lm[30]) < depth_at(lm[27]) < depth_at(lm[0])  # tip, bridge, ear side


def test_yaw_hides_the_far_side(head, camera):
    k, rest = camera
    front = _render(head, camera)
    assert front.landmarks_visible.all()
    for yaw, far in ((0.44, range(9, 17)), (-0.44, range(0, 8))):
        r = _render(head, camera, yaw=yaw)
        hidden = set(np.flatnonzero(~r.landmarks_visible))
        assert hidden and hidden <= set(far) | {17, 26}  # only the far jaw/brow end is hidden
        assert (r.landmarks[list(hidden)] > 0).all() and (r.landmarks[list(hidden)] < SIZE).all()  # in view
        # triangles visible from the front that are now covered by a nearer part of the head
        cam = head.vertices @ pose_matrix(yaw, 0, 0).T + rest
        xy = project(cam, k)
        seen_front = np.unique(front.face_id[front.face_id >= 0])
        seen_now = np.unique(r.face_id[r.face_id >= 0])
        gone = np.setdiff1d(seen_front, seen_now)
        centres = xy[head.faces[gone]].mean(1)
        cols, rows = centres[:, 0].astype(int), centres[:, 1].astype(int)
        ok = (cols >= 0) & (cols < SIZE) & (rows >= 0) & (rows < SIZE)
        tri_z = cam[head.faces[gone], 2].mean(1)
        occluded = ok & r.mask[rows.clip(0, SIZE - 1), cols.clip(0, SIZE - 1)]
        occluded &= r.depth[rows.clip(0, SIZE - 1), cols.clip(0, SIZE - 1)] < tri_z - 0.01
        assert occluded.sum() >= 10


def test_yaw_sign_matches_headpose_convention(head, camera):
    from dagan.evaluation.headpose import head_pose

    for yaw, pitch, roll in ((0.3, 0.0, 0.1), (-0.3, 0.2, -0.1)):
        r = _render(head, camera, yaw, pitch, roll)
        est = head_pose(r.landmarks, SIZE)
        assert est.yaw == pytest.approx(np.degrees(yaw), abs=5)
        assert est.pitch == pytest.approx(np.degrees(pitch), abs=5)
        assert est.roll == pytest.approx(np.degrees(roll), abs=3)


def test_expressions_open_mouth_and_close_eyes(head, camera):
    rest = _render(head, camera)
    act = _render(head, camera, mouth_open=1.0, eyes_closed=1.0)

    def gap(r, a, b):
        return np.linalg.norm(r.landmarks[a] - r.landmarks[b])

    assert gap(act, 62, 66) > gap(rest, 62, 66) + 1.5  # lips part (pixels at 64×64)
    assert gap(act, 8, 33) > gap(rest, 8, 33) + 1.0  # the chin drops
    for up, low in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert gap(act, up, low) < 0.2 * gap(rest, up, low) + 0.1  # lids meet
    # the opened mouth is dark inside
    centre = act.landmarks[[62, 66]].mean(0).astype(int)
    assert act.image[centre[1], centre[0]].mean() < rest.image[centre[1], centre[0]].mean()


def test_mirrored_identity_mirrors_the_landmarks():
    image, lm = _builtin_face("grace_hopper")
    k = intrinsics_matrix(SIZE)
    plain = build_head(image, lm)
    mirrored = build_head(image, lm, Appearance(mirror=True))
    a = render_head(plain, np.r_[0.0, 0.0, 0.0, head_framing(plain, k, SIZE)], k, SIZE)
    b = render_head(mirrored, np.r_[0.0, 0.0, 0.0, head_framing(mirrored, k, SIZE)], k, SIZE)
    flipped = b.landmarks[MIRROR_68].copy()
    flipped[:, 0] = SIZE - flipped[:, 0]
    np.testing.assert_allclose(flipped, a.landmarks, atol=0.05)
    assert np.abs(b.image.astype(int) - a.image[:, ::-1].astype(int)).mean() < 12


def test_appearance_variants_differ_and_are_seeded():
    one = random_appearance(np.random.default_rng(3))
    assert one == random_appearance(np.random.default_rng(3))
    assert one != random_appearance(np.random.default_rng(4))


def test_render_bad_input(head, camera):
    k, rest = camera
    with pytest.raises(ValueError, match="pose"):
        render_head(head, rest, k, SIZE)
    with pytest.raises(ValueError, match="background"):
        render_head(head, np.r_[0, 0, 0, rest], k, SIZE, background=np.zeros((SIZE, SIZE, 3)))
    with pytest.raises(ValueError, match="68"):
        build_head(np.zeros((50, 50, 3), np.uint8), np.zeros((5, 2)))


def test_rasterize_known_values():
    # two overlapping right triangles covering the left-bottom half of a 4×4 raster
    xy = np.array([[0.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    xy = np.vstack([xy, xy])
    z = np.array([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])  # the second copy is nearer
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    face_id, weights, depth = rasterize(xy, z, faces, 4, 4)
    expected = np.tril(np.ones((4, 4), bool), k=-1) | np.eye(4, dtype=bool)  # centres on the diagonal count
    np.testing.assert_array_equal(face_id >= 0, expected)
    assert (face_id[expected] == 1).all()
    np.testing.assert_allclose(depth[expected], 1.0)
    assert (depth[~expected] == 0).all()
    np.testing.assert_allclose(weights[expected].sum(-1), 1.0, atol=1e-6)
    # perspective-correct depth: a triangle tilted in depth interpolates 1/z linearly on screen
    xy = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    z = np.array([1.0, 3.0, 1.0])
    _, _, depth = rasterize(xy, z, np.array([[0, 1, 2]]), 8, 8)
    u = 0.5 / 8  # barycentric weight of vertex 1 at pixel (0, 0)
    assert depth[0, 0] == pytest.approx(1.0 / ((1 - u) / 1.0 + u / 3.0), rel=1e-5)
    # empty input
    face_id, _, depth = rasterize(xy, z, np.zeros((0, 3), np.int64), 5, 3)
    assert face_id.shape == (3, 5) and (face_id == -1).all() and (depth == 0).all()


# --- motion ----------------------------------------------------------------------------------


def test_sample_motion_is_smooth_bounded_and_seeded():
    rest = np.array([0.0, 0.01, 0.7])
    m = sample_motion(np.random.default_rng(0), 200, 25.0, rest)
    again = sample_motion(np.random.default_rng(0), 200, 25.0, rest)
    np.testing.assert_array_equal(m.pose, again.pose)
    assert m.pose.shape == (200, 6)
    angles = m.pose[:, :3]
    assert np.abs(angles).max() <= np.radians(25)
    assert np.abs(np.diff(angles, axis=0)).max() < np.radians(4)  # smooth at 25 fps (< 100°/s)
    assert angles[:, 0].std() > np.radians(3)  # it really turns
    assert np.abs(m.pose[:, 3:5] - rest[:2]).max() <= 0.0101
    assert np.abs(m.pose[:, 5] / rest[2] - 1).max() <= 0.0501
    assert 0 <= m.mouth_open.min() and m.mouth_open.max() <= 1 and m.mouth_open.std() > 0.05
    assert 0 <= m.eyes_closed.min() and m.eyes_closed.max() <= 1 and m.eyes_closed.max() > 0.9  # blinks in 8 s


# --- depth metrics ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def depth_truth(head, camera):
    r = [_render(head, camera, yaw=y) for y in (0.0, 0.3)]
    return np.stack([x.depth for x in r]), np.stack([x.mask for x in r])


def test_depth_agreement_identical_and_scale_invariant(depth_truth):
    gt, mask = depth_truth
    exact = depth_agreement(gt, gt, mask)
    assert exact["abs_rel"] == pytest.approx(0.0, abs=1e-7)
    assert exact["delta_1_25"] == 1.0
    assert exact["pearson"] == pytest.approx(1.0, abs=1e-9)
    assert exact["frames"] == 2
    scaled = depth_agreement(3.7 * gt, gt, mask)
    for key in ("abs_rel", "delta_1_25", "pearson"):
        assert scaled[key] == pytest.approx(exact[key], abs=1e-7)
    disparity = np.where(gt > 0, 0.5 / np.maximum(gt, 1e-6), 0.0)
    inverted = depth_agreement(disparity, gt, mask, pred_is_disparity=True)
    assert inverted["abs_rel"] == pytest.approx(0.0, abs=1e-7) and inverted["pearson"] == pytest.approx(1.0)
    # a single frame works too, and torch tensors are accepted
    import torch

    single = depth_agreement(torch.from_numpy(gt[0]), gt[0], mask[0])
    assert single["frames"] == 1 and single["abs_rel"] == pytest.approx(0.0, abs=1e-7)


def test_flat_baseline_is_worse_than_truth_and_noise_in_between(depth_truth):
    gt, mask = depth_truth
    flat = flat_depth_baseline(gt, mask)
    assert flat["abs_rel"] > 0.01 and flat["pearson"] == 0.0
    rng = np.random.default_rng(0)
    noisy = gt * (1 + 0.02 * rng.standard_normal(gt.shape))
    mid = depth_agreement(noisy, gt, mask)
    assert 0 < mid["abs_rel"] < flat["abs_rel"]
    assert flat["pearson"] < mid["pearson"] < 1.0
    # a wrong shape (the depth upside down) correlates worse than the truth
    upside = depth_agreement(gt[:, ::-1], gt, mask & mask[:, ::-1])
    assert upside["pearson"] < 0.9


def test_depth_agreement_bad_input(depth_truth):
    gt, mask = depth_truth
    with pytest.raises(ValueError, match="same shape"):
        depth_agreement(gt[0], gt, mask)
    with pytest.raises(ValueError, match="no frame"):
        depth_agreement(gt, gt, np.zeros_like(mask))
    with pytest.raises(ValueError, match="H×W"):
        depth_agreement(gt[None], gt[None], mask[None])
