"""Detect every N frames and follow in between: schedule, re-detection on lost confidence, accuracy."""

import math

import numpy as np
import pytest
from helpers_media import face_on_background
from helpers_tracking import FakeDetector, face_at, index_frames

from dagan.inference.follow import FourierFollower
from dagan.inference.stages import track_faces
from dagan.inference.tracking import CorrelationFollower, FaceTracker

SCENE = (480, 320)


class FakeFollower:
    """Follows `face_at(path(i))`, except on frames in `lost` where it loses the face."""

    def __init__(self, path, lost=()):
        self.path, self.lost, self.starts = path, set(lost), []

    def __call__(self):  # the tracker takes a factory
        return self

    def start(self, image, box):
        self.starts.append(int(image[0, 0, 0]))

    def update(self, image):
        i = int(image[0, 0, 0])
        return None if i in self.lost else face_at(self.path(i))


def test_follower_fills_the_frames_between_detections():
    detector = FakeDetector(lambda i: [face_at(20 + 2 * i)])
    follower = FakeFollower(lambda i: 21 + 2 * i)  # 1 px off the detections: shows where boxes came from
    tracker = FaceTracker(detect=detector, detect_every=5, follower=follower, smooth_sigma=0, margin=0.0, lift=0.0)
    out = list(tracker.track(index_frames(12)))
    assert detector.calls == [0, 5, 10] and follower.starts == [0, 5, 10]
    assert [t.crop_box.center[0] for t in out] == [20 + 2 * i + (i % 5 != 0) for i in range(12)]
    assert [t.followed for t in out] == [i % 5 != 0 for i in range(12)]
    assert tracker.report.followed == 9 and tracker.report.detector_runs == 3


def test_lost_confidence_triggers_detection_on_that_frame():
    detector = FakeDetector(lambda i: [face_at(20 + 2 * i)])
    follower = FakeFollower(lambda i: 20 + 2 * i, lost={3})
    tracker = FaceTracker(detect=detector, detect_every=5, follower=follower, smooth_sigma=0)
    out = list(tracker.track(index_frames(12)))
    assert detector.calls == [0, 3, 8]  # re-detected at once on 3, then the schedule restarts from there
    assert tracker.report.lost == 1 and not out[3].followed and out[4].followed


def test_missed_detection_keeps_a_confident_follower_and_holds_without_one():
    script = lambda i: [] if i == 5 else [face_at(20 + 2 * i)]  # noqa: E731
    follower = FakeFollower(lambda i: 20 + 2 * i)
    tracker = FaceTracker(detect=FakeDetector(script), detect_every=5, follower=follower, smooth_sigma=0,
                          margin=0.0, lift=0.0)
    out = list(tracker.track(index_frames(8)))
    assert out[5].followed and out[5].crop_box.center[0] == 30
    assert tracker.report.misses == 1
    follower = FakeFollower(lambda i: 20 + 2 * i, lost={5})
    detector = FakeDetector(script)
    tracker = FaceTracker(detect=detector, detect_every=5, follower=follower, smooth_sigma=0, margin=0.0, lift=0.0)
    out = list(tracker.track(index_frames(8)))
    assert out[5].face_box is None and out[5].crop_box.center[0] == 28  # held frame 4's crop
    assert detector.calls == [0, 5, 6]  # after a miss, detect on every frame until found


def test_reduced_copies_give_boxes_in_full_frame_pixels():
    small = face_on_background(200, 160, SCENE)
    full = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)  # the same scene at twice the size
    on_small = list(FaceTracker(smooth_sigma=0).track([small]))[0]
    on_pair = list(FaceTracker(smooth_sigma=0).track([(full, small)]))[0]
    assert on_pair.frame is full
    np.testing.assert_allclose(on_pair.crop_box.as_array(), 2 * on_small.crop_box.as_array())
    np.testing.assert_allclose(on_pair.face_box.as_array(), 2 * on_small.face_box.as_array())


@pytest.mark.parametrize("factory", [CorrelationFollower, FourierFollower])
def test_follower_follows_and_loses_a_vanished_face(factory):
    frames = [face_on_background(150 + 5 * i, 160, SCENE) for i in range(4)]
    first = FaceTracker(smooth_sigma=0)._detect(frames[0], None, 0)
    follower = factory()
    follower.start(frames[0], first)
    for i in (1, 2, 3):
        box = follower.update(frames[i])
        assert box is not None and follower.psr > follower.min_psr
        assert abs(box.center[0] - (first.center[0] + 5 * i)) < 3 and abs(box.center[1] - first.center[1]) < 3
    blank = face_on_background(150, 160, SCENE)
    blank[:] = blank[0, 0]  # the face is gone
    assert follower.update(blank) is None and follower.update(frames[0]) is None  # stays lost until restarted


def test_a_known_face_is_searched_for_at_a_pyramid_step_of_the_full_search(monkeypatch):
    """Scheduled re-detections pass the followed face's size: a smaller working copy, same box sizes."""
    import dagan.inference.face as face

    big = face_on_background(240, 160, SCENE)
    big = np.repeat(np.repeat(big, 2, axis=0), 2, axis=1)  # 960×640, face ≈ 175 px
    sizes = []
    run = face._detector().run
    monkeypatch.setattr(face, "_detector", lambda: type("D", (), {"run": lambda self, img, up, t: (
        sizes.append(img.shape[:2]) or run(img, up, t))})())
    full = face.detect_faces(big)[0]
    near = face.detect_faces(big, expected_side=full.width)[0]
    step = sizes[1][1] / sizes[0][1]
    assert sizes[0] == (427, 640) and step == pytest.approx((5 / 6) ** round(math.log(step, 5 / 6)), rel=0.01)
    face_px = full.width * sizes[1][1] / big.shape[1]  # in the reduced working copy
    assert step < 1 and face_px * 5 / 6 < 100 <= face_px  # reduced as long as the face stays ≥ 100 px
    assert abs(near.width - full.width) <= 0.1 * full.width and near.iou(full) > 0.8
    assert face.detect_faces(big, expected_side=60.0)[0] == full  # a small face: no further reduction


@pytest.fixture(scope="module")
def moving_face():
    """40 frames: the face sweeps 156 px right and bobs ±25 px (what a talking head does, faster)."""
    path = [(110 + 4 * i, 160 + 25 * np.sin(i / 6)) for i in range(40)]
    return [face_on_background(x, y, SCENE) for x, y in path]


@pytest.mark.parametrize("factory", [CorrelationFollower, FourierFollower])
@pytest.mark.parametrize("every", [10, 25])  # 25: the default
def test_tracking_gives_the_crops_of_per_frame_detection(moving_face, every, factory):
    every_frame = [t.crop_box for t in FaceTracker(detect_every=1).track(moving_face)]
    tracker = FaceTracker(detect_every=every, follower=factory)
    tracked = [t.crop_box for t in tracker.track(moving_face)]
    assert tracker.report.detector_runs <= math.ceil(40 / every) + tracker.report.lost
    assert tracker.report.followed >= 30

    def gaps(boxes):  # |Δcx|, |Δcy|, |Δside| against per-frame detection, frame pixels
        return np.array([[abs(a.center[0] - b.center[0]), abs(a.center[1] - b.center[1]), abs(a.width - b.width)]
                         for a, b in zip(every_frame, boxes, strict=True)])

    gap = gaps(tracked)
    side = np.mean([b.width for b in every_frame])  # ≈ 160 px
    assert gap.max() < 0.06 * side and gap.mean() < 0.025 * side, gap.max(0)  # a few pixels
    interpolated = [t.crop_box for t in FaceTracker(detect_every=every).track(moving_face)]
    assert gaps(interpolated).max() > 3 * gap.max()  # following is what keeps the crops on the face


def test_fourier_follower_is_the_default_and_rejects_odd_windows():
    assert track_faces("v.mp4", 25).follower is FourierFollower
    assert track_faces("v.mp4", 25, follow=False).follower is None
    with pytest.raises(ValueError, match="cells"):
        FourierFollower(cells=63)


def test_fourier_follower_follows_on_gray_and_rgb_alike():
    frames = [face_on_background(150 + 4 * i, 160 - 2 * i, SCENE) for i in range(6)]
    first = FaceTracker(smooth_sigma=0)._detect(frames[0], None, 0)
    gray = FourierFollower()
    gray.start(frames[0].mean(axis=2).astype(np.uint8), first)
    for i in range(1, 6):
        box = gray.update(frames[i].mean(axis=2).astype(np.uint8))
        assert box is not None and (box.width, box.height) == (first.width, first.height)  # size kept
        assert abs(box.center[0] - (first.center[0] + 4 * i)) < 2 and abs(box.center[1] - (first.center[1] - 2 * i)) < 2
    assert box.score == gray.psr > gray.min_psr


def test_fourier_follower_keeps_the_face_when_its_window_leaves_the_frame():
    """Near the border the window is padded (edge pixels) rather than cut: following goes on."""
    scene = face_on_background(112, 160, SCENE)
    frames = [np.ascontiguousarray(scene[:, 40 + 3 * i :]) for i in range(4)]  # the face moves left, out of view
    first = FaceTracker(smooth_sigma=0)._detect(frames[0], None, 0)
    follower = FourierFollower()
    follower.start(frames[0], first)
    assert first.center[0] - first.width < 0  # the 2× window reaches past the left edge
    for i, frame in enumerate(frames[1:], start=1):
        box = follower.update(frame)
        assert box is not None and abs(box.center[0] - (first.center[0] - 3 * i)) < 2
