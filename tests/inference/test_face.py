from importlib import resources

import numpy as np
import pytest
from helpers_media import astronaut_face, face_on_background
from helpers_tracking import FakeDetector, face_at, index_frames
from PIL import Image

from dagan.errors import DaganError
from dagan.inference.face import (
    DEFAULT_MARGIN,
    Box,
    FaceTracker,
    OneEuroFilter,
    crop_and_resize,
    crop_box_from_face,
    detect_faces,
    detect_largest_face,
    face_landmarks,
    largest_face,
    model_file,
    track_crops,
)
from dagan.io.image import read_image
from dagan.io.video import iter_frames, probe_video

ASSETS = resources.files("dagan") / "assets"


# ---------------------------------------------------------------- models and detection


def test_model_files_are_found():
    for name in ("shape_predictor_68_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat"):
        assert model_file(name).is_file()
    with pytest.raises(DaganError, match="no_such.dat"):
        model_file("no_such.dat")


def test_bundled_source_photo_has_one_face():
    image = read_image(ASSETS / "sample_source.png")
    box, count = detect_largest_face(image, source="sample_source.png")
    assert count == 1
    h, w = image.shape[:2]
    assert 0 <= box.x0 < box.x1 <= w and 0 <= box.y0 < box.y1 <= h
    assert box.width > 0.25 * w  # a portrait: the face is large


def test_bundled_driving_video_has_a_face_in_every_checked_frame():
    path = ASSETS / "sample_driving.mp4"
    info = probe_video(path)
    assert (info.width, info.height, info.fps) == (256, 256, 25.0)
    assert info.num_frames == 75 and info.has_audio and path.stat().st_size < 1_000_000
    for i, frame in enumerate(iter_frames(path)):
        if i % 15 == 0:
            assert len(detect_faces(frame)) == 1, f"frame {i}"


def test_detection_scales_back_to_the_full_image():
    small = face_on_background(180, 150)
    big = np.asarray(Image.fromarray(small).resize((small.shape[1] * 3, small.shape[0] * 3)))
    (a,), (b,) = detect_faces(small), detect_faces(big, max_side=640)  # big is detected downscaled
    b = b.scaled(1 / 3)
    # HOG boxes come from a scale pyramid (steps of ~1.2×): compare up to that quantisation.
    assert np.allclose(b.center, a.center, atol=0.1 * a.width)
    assert 0.8 < b.width / a.width < 1.25


def test_small_faces_need_the_adaptive_upsampling():
    tiny = np.asarray(Image.fromarray(astronaut_face()).resize((100, 100), Image.Resampling.LANCZOS))
    assert detect_faces(tiny, upsample=0) == []  # face ≈ 44 px: below HOG's 80 px window
    (box,) = detect_faces(tiny)
    assert 30 < box.width < 60


def test_no_face():
    flat = np.full((120, 160, 3), 0.5, np.float32)
    assert detect_faces(flat) == []
    with pytest.raises(DaganError, match="no face found in blank.png"):
        detect_largest_face(flat, source="blank.png")


def test_largest_face_and_box_helpers():
    a, b = Box(0, 0, 10, 10), Box(5, 5, 25, 25)
    assert largest_face([a, b]) is b and largest_face([]) is None
    assert a.iou(b) == pytest.approx(25 / (100 + 400 - 25))
    assert Box.square(5, 5, 10) == Box(0, 0, 10, 10)


def test_landmarks_lie_on_the_face():
    image = face_on_background(180, 150)
    (box,) = detect_faces(image)
    points = face_landmarks(image, box)
    assert points.shape == (68, 2) and points.dtype == np.float32
    nose, chin = points[30], points[8]
    assert box.x0 <= nose[0] <= box.x1 and box.y0 <= nose[1] <= box.y1
    assert chin[1] > nose[1]


def test_bad_image_shape():
    with pytest.raises(ValueError, match="H×W×3 RGB or H×W gray"):
        detect_faces(np.zeros((10, 10, 4)))
    assert detect_faces(np.zeros((10, 10))) == []  # a gray (luma) image is fine


# ---------------------------------------------------------------- crops


def test_crop_box_framing():
    face = Box(100, 100, 200, 180)
    crop = crop_box_from_face(face, (1000, 1000))
    assert crop.width == pytest.approx(crop.height) == pytest.approx(100 * (1 + DEFAULT_MARGIN))
    cx, cy = crop.center
    assert cx == pytest.approx(150) and cy < 140  # lifted above the face centre
    inside = crop_box_from_face(Box(0, 0, 60, 60), (200, 100), fit_inside=True)
    assert inside.x0 >= 0 and inside.y0 >= 0 and inside.x1 <= 200 and inside.y1 <= 100
    with pytest.raises(ValueError):
        crop_box_from_face(Box(5, 5, 5, 5), (10, 10))


def test_crop_identity_and_dtypes():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    full = Box(0, 0, 32, 32)
    out = crop_and_resize(img, full, 32)
    assert out.dtype == np.float32 and out.shape == (32, 32, 3)
    assert np.abs(out * 255 - img).max() < 1.0
    out_f = crop_and_resize(img.astype(np.float32) / 255, full, 32)
    assert np.abs(out_f - out).max() < 1 / 255 + 1e-6


def test_crop_is_sub_pixel_exact():
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], (64, 1, 3))  # value = x / 63
    out = crop_and_resize(ramp, Box(10.5, 10.5, 42.5, 42.5), 32)
    centres = 10.5 + np.arange(32) + 0.5  # output pixel centres in input coordinates
    expected = (centres - 0.5) / 63  # pixel centre x + 0.5 carries value x / 63
    assert np.allclose(out[16, :, 0], expected, atol=2e-3)


def test_crop_downscale_is_antialiased():
    checker = (np.indices((128, 128)).sum(0) % 2).astype(np.float32)[..., None].repeat(3, 2)
    out = crop_and_resize(checker, Box(0, 0, 128, 128), 16)
    assert np.allclose(out, 0.5, atol=0.05)  # no aliasing pattern


@pytest.mark.parametrize(("mode", "value"), [("edge", 1.0), ("constant", 0.0)])
def test_crop_outside_the_image_is_padded(mode, value):
    img = np.ones((20, 20, 3), np.float32)
    out = crop_and_resize(img, Box(-20, 0, 20, 40), 40, pad_mode=mode)
    assert np.allclose(out[5:15, 2:15], value, atol=1e-3)
    assert np.allclose(out[2:18, 25:38], 1.0, atol=1e-3)
    far = crop_and_resize(img, Box(100, 100, 110, 110), 8, pad_mode=mode)
    assert np.allclose(far, value, atol=1e-3)
    # reflect = numpy's "reflect" (edge pixel not repeated), also far outside (several folds); at
    # scale 1 on whole pixels the bicubic resampling is exact, so the crop equals np.pad's values
    ramp = np.random.default_rng(0).random((20, 20, 3)).astype(np.float32)
    refl = crop_and_resize(ramp, Box(-30, -45, 40, 25), 70, pad_mode="reflect")
    expected = np.pad(ramp, ((45, 50), (30, 50), (0, 0)), mode="reflect")[:70, :70]
    np.testing.assert_allclose(refl, expected, atol=1e-5)
    with pytest.raises(ValueError, match="pad_mode"):
        crop_and_resize(img, Box(0, 0, 5, 5), 4, pad_mode="wrap")


# ---------------------------------------------------------------- One-Euro filter


def test_one_euro_filter_basics():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, rate=25)
    x0 = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert np.array_equal(f(x0), x0)  # first sample passes through
    for _ in range(10):
        assert np.allclose(f(x0), x0)
    rng = np.random.default_rng(0)
    f.reset()
    noisy = x0 + rng.normal(0, 0.5, (200, 2, 2))
    smooth = np.stack([f(x) for x in noisy])
    assert smooth.shape == noisy.shape
    assert smooth[50:].std(0).max() < 0.5 * noisy[50:].std(0).min()
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(3))


def test_one_euro_beta_reduces_lag():
    ramp = np.arange(100, dtype=np.float64) * 2.0  # moving fast
    lag = {}
    for beta in (0.0, 1.0):
        f = OneEuroFilter(min_cutoff=0.5, beta=beta, rate=25)
        lag[beta] = ramp[-1] - [f(np.array([v])) for v in ramp][-1][0]
    assert 0 < lag[1.0] < 0.5 * lag[0.0]


def test_one_euro_timestamps():
    f = OneEuroFilter()
    f(np.zeros(2), t=0.0)
    f(np.ones(2), t=0.1)
    with pytest.raises(ValueError, match="increase"):
        f(np.ones(2), t=0.1)


# ---------------------------------------------------------------- tracking (logic, fake detector)


def test_tracker_holds_last_box_and_backfills_the_start():
    script = lambda i: [] if i < 3 or 6 <= i < 9 else [face_at(20 + 3 * i)]  # noqa: E731
    tracker = FaceTracker(detect=FakeDetector(script), smooth_sigma=0, margin=0.0, lift=0.0)
    out = list(tracker.track(index_frames(12)))
    assert [t.index for t in out] == list(range(12))
    cx = [t.crop_box.center[0] for t in out]
    assert cx[:4] == [29.0] * 4  # before the first face: the first box
    assert cx[5:9] == [35.0] * 4  # detector misses: hold the last box
    assert cx[9] == 47.0
    assert out[6].face_box is None and out[9].face_box is not None
    assert tracker.report.misses == 6
    assert any("no face detected in 6" in m for m in tracker.report.messages())


def test_tracker_detect_every_interpolates():
    detector = FakeDetector(lambda i: [face_at(20 + 2 * i)])
    tracker = FaceTracker(detect=detector, detect_every=4, smooth_sigma=0, margin=0.0, lift=0.0)
    out = list(tracker.track(index_frames(11)))
    assert detector.calls == [0, 4, 8]
    assert [t.crop_box.center[0] for t in out[:9]] == pytest.approx([20 + 2 * i for i in range(9)])
    assert [t.crop_box.center[0] for t in out[9:]] == [36.0, 36.0]  # after the last detection: hold


def test_tracker_memory_is_bounded():
    produced = []

    def frames():
        for frame in index_frames(60):
            produced.append(1)
            yield frame

    tracker = FaceTracker(detect=FakeDetector(lambda i: [face_at(50)]), detect_every=3, smooth_sigma=2.0)
    max_lag = 0
    for consumed, _ in enumerate(tracker.track(frames()), start=1):
        max_lag = max(max_lag, len(produced) - consumed)
    assert max_lag <= tracker.detect_every + tracker.lookahead
    assert consumed == 60


def test_tracker_smoothing_reduces_jitter():
    rng = np.random.default_rng(0)
    jitter = rng.normal(0, 2.0, 80)
    detector = FakeDetector(lambda i: [face_at(50 + jitter[i])])
    smooth = [t.crop_box.center[0] for t in FaceTracker(detect=detector, smooth_sigma=2.0).track(index_frames(80))]
    assert np.std(np.diff(smooth)) < 0.3 * np.std(np.diff(jitter))


def test_tracker_several_faces_follows_and_reports():
    def script(i):
        big, small = face_at(30), Box(60, 40, 75, 55)
        return [big, small] if i % 2 else [big]

    tracker = FaceTracker(detect=FakeDetector(script), smooth_sigma=0)
    out = list(tracker.track(index_frames(6)))
    assert all(t.face_box == face_at(30) or t.face_box.x0 == 20 for t in out)
    assert tracker.report.multi_face_frames == 3 and tracker.report.first_multi_face_frame == 1
    assert "2 faces" in tracker.report.messages()[0]


def test_tracker_never_a_face():
    tracker = FaceTracker(source="drive.mp4", detect=FakeDetector(lambda i: []))
    with pytest.raises(DaganError, match="no face found in any of the 5 frames of drive.mp4"):
        list(tracker.track(index_frames(5)))
    with pytest.raises(DaganError, match="no frames"):
        list(tracker.track(iter([])))


def test_tracker_late_face_with_plain_iterator_and_with_reopenable_source():
    script = lambda i: [face_at(40)] if i >= 30 else []  # noqa: E731
    tracker = FaceTracker(source="late.mp4", detect=FakeDetector(script), max_pending=10, smooth_sigma=1)
    with pytest.raises(DaganError, match="first 10 frames of late.mp4"):
        list(tracker.track(index_frames(40)))
    out = list(tracker.track(lambda: index_frames(40)))  # reopenable: no frame limit
    assert [t.index for t in out] == list(range(40))
    assert all(np.allclose(t.crop_box.as_array(), out[0].crop_box.as_array()) for t in out)
    assert tracker.report.misses == 30 and tracker.report.frames == 40


# ---------------------------------------------------------------- tracking (real detector)


def test_crop_follows_a_moving_face():
    path = [(110 + 6 * i, 140 + 2 * i) for i in range(20)]  # 6 px/frame right, 2 px/frame down
    frames = (face_on_background(x, y) for x, y in path)
    tracker = FaceTracker(source="synthetic", smooth_sigma=2.0)
    out = list(tracker.track(frames))
    assert len(out) == 20 and tracker.report.misses == 0
    offsets = []
    for tracked, (x, y) in zip(out, path, strict=True):
        cx, cy = tracked.crop_box.center
        offsets.append((cx - x, cy - y))
        assert abs(tracked.crop_box.width - 87 * (1 + DEFAULT_MARGIN)) < 20
    offsets = np.array(offsets)
    # The crop moves with the face: its offset from the patch centre stays put (linear motion,
    # centred smoothing → no lag), up to detector quantisation.
    assert np.abs(offsets - np.median(offsets, axis=0)).max() < 6
    assert np.abs(np.median(offsets, axis=0)).max() < 25
    crop = crop_and_resize(out[10].frame, out[10].crop_box, 64)
    assert crop.shape == (64, 64, 3)


def test_track_crops_shorthand():
    frames = [face_on_background(180, 150)] * 3
    out = list(track_crops(frames, detect_every=2))
    assert len(out) == 3 and out[1].face_box is None and out[2].face_box is not None
