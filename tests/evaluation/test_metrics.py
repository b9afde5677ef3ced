import functools
import json

import matplotlib
import numpy as np
import pytest
import torch
from skimage import data, io
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from dagan.errors import DaganError
from dagan.evaluation import lpips as lp
from dagan.evaluation import metrics as m

KEYS = {"L1", "PSNR", "SSIM", "LPIPS", "AKD", "AED"}
KEYS |= {"num_frames", "failed_detections_pred", "failed_detections_target"}


@functools.cache
def astronaut() -> np.ndarray:
    """256×256×3 float crop of skimage's astronaut around her face."""
    return resize(data.astronaut()[20:260, 100:340], (256, 256), anti_aliasing=True)


@functools.cache
def grace_hopper() -> np.ndarray:
    path = matplotlib.get_data_path() + "/sample_data/grace_hopper.jpg"
    return resize(io.imread(path), (256, 256), anti_aliasing=True)


def translate(image: np.ndarray, dx: int, dy: int, pad: int = 16) -> np.ndarray:
    """Content moved by (dx, dy) pixels (right, down), borders filled by edge padding."""
    big = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    h, w = image.shape[:2]
    return big[pad - dy : pad - dy + h, pad - dx : pad - dx + w]


def test_prepare():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(300, 200, 3), dtype=np.uint8)
    out = m.prepare(u8, 128)
    assert out.shape == (128, 128, 3) and out.dtype == np.float64
    assert 0.0 <= out.min() and out.max() <= 1.0
    same = rng.uniform(size=(64, 64, 3))
    assert np.array_equal(m.prepare(same, 64), same)
    assert np.array_equal(m.prepare((same * 255).astype(np.uint8), 64), (same * 255).astype(np.uint8) / 255.0)
    assert m.prepare(np.full((64, 64, 3), 1.0005), 64).max() == 1.0  # tiny overshoot is clipped


@pytest.mark.parametrize(
    "frame, match",
    [
        (np.zeros((64, 64)), "H×W×3"),
        (np.zeros((64, 64, 4)), "H×W×3"),
        (np.full((64, 64, 3), -0.5), r"\[0, 1\]"),
        (np.full((64, 64, 3), 255.0), r"\[0, 1\]"),
        (np.full((64, 64, 3), np.nan), r"\[0, 1\]"),
        (np.zeros((64, 64, 3), np.int16), "uint8 or float"),
    ],
)
def test_prepare_bad_input(frame, match):
    with pytest.raises(DaganError, match=match):
        m.prepare(frame, 64)


def test_identical_frames():
    img = np.random.default_rng(1).uniform(size=(64, 64, 3))
    assert m.l1(img, img) == 0.0
    assert m.ssim(img, img) == pytest.approx(1.0)
    assert m.psnr(img, img) == m.PSNR_CAP_DB == 100.0
    with pytest.raises(DaganError, match="shapes differ"):
        m.l1(img, img[:32])


def test_known_values():
    a = np.zeros((8, 8, 3))
    b = np.full((8, 8, 3), 0.1)
    assert m.l1(a, b) == pytest.approx(0.1)
    assert m.psnr(a, b) == pytest.approx(20.0)  # MSE 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_ssim_agree_with_scikit_image(seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(size=(64, 64, 3))
    b = np.clip(a + rng.normal(scale=0.1, size=a.shape), 0, 1)
    assert m.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-4)
    assert m.ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0, channel_axis=-1), abs=1e-4)
    assert m.l1(a, b) == pytest.approx(np.abs(a - b).mean())


def test_registry():
    assert list(m.METRICS) == ["L1", "PSNR", "SSIM", "LPIPS", "AKD", "AED"]
    assert m.METRICS["PSNR"].higher_is_better and not m.METRICS["AKD"].higher_is_better
    with pytest.raises(ValueError, match="twice"):
        m.register_metric("L1", higher_is_better=False, description="")(lambda pair: 0.0)


def test_identical_videos():
    frames = [astronaut(), grace_hopper()]
    out = m.compute_metrics(iter(frames), (f for f in frames), lpips=False)
    assert set(out) == KEYS | {"LPIPS_reason"}
    assert out["num_frames"] == 2
    assert out["L1"] == 0.0 and out["PSNR"] == 100.0 and out["SSIM"] == pytest.approx(1.0)
    assert out["AKD"] == 0.0 and out["AED"] == 0.0
    assert out["failed_detections_pred"] == out["failed_detections_target"] == 0
    assert out["LPIPS"] is None and "disabled" in out["LPIPS_reason"]
    json.dumps(out, allow_nan=False)  # JSON-safe


def test_translated_face_gives_expected_akd():
    dx, dy = 4, 2
    out = m.compute_metrics([translate(astronaut(), dx, dy)], [astronaut()], lpips=False)
    assert out["failed_detections_pred"] == out["failed_detections_target"] == 0
    # Every landmark moves by (dx, dy): mean of |Δx| and |Δy| is (4 + 2) / 2 = 3 pixels.
    assert out["AKD"] == pytest.approx((dx + dy) / 2, abs=1.0)
    assert out["AED"] < 0.3  # same person
    assert out["L1"] > 0 and out["SSIM"] < 1


def test_other_person_has_larger_aed():
    same = m.compute_metrics([np.clip(astronaut() * 1.1, 0, 1)], [astronaut()], lpips=False)
    other = m.compute_metrics([grace_hopper()], [astronaut()], lpips=False)
    assert same["AED"] < 0.6 < other["AED"]


def test_missing_faces_are_counted():
    blank = np.zeros((256, 256, 3))
    pred = [astronaut(), blank, blank]
    target = [astronaut(), astronaut(), blank]
    out = m.compute_metrics(pred, target, lpips=False)
    assert out["num_frames"] == 3
    assert out["failed_detections_pred"] == 2 and out["failed_detections_target"] == 1
    assert out["AKD"] == 0.0 and out["AED"] == 0.0  # only frame 0 has a face in both
    expected_l1 = np.mean([0.0, np.abs(astronaut()).mean(), 0.0])
    assert out["L1"] == pytest.approx(expected_l1)


def test_no_faces_at_all():
    blank = [np.zeros((64, 64, 3))] * 2
    out = m.compute_metrics(blank, blank, size=64, lpips=False)
    assert out["AKD"] is None and out["AED"] is None
    assert out["failed_detections_pred"] == out["failed_detections_target"] == 2
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("n_pred, n_target", [(2, 3), (3, 2), (0, 1)])
def test_mismatched_frame_counts(n_pred, n_target):
    frame = np.zeros((32, 32, 3))
    with pytest.raises(DaganError, match=f"prediction has {n_pred}, target has {n_target}"):
        m.compute_metrics((frame for _ in range(n_pred)), (frame for _ in range(n_target)), size=32, lpips=False)


def test_bad_arguments():
    frame = np.zeros((32, 32, 3))
    with pytest.raises(DaganError, match="no frames"):
        m.compute_metrics([], [], lpips=False)
    with pytest.raises(DaganError, match="size"):
        m.compute_metrics([frame], [frame], size=0, lpips=False)
    with pytest.raises(DaganError, match="lpips"):
        m.compute_metrics([frame], [frame], size=32, lpips="alex")


def test_lpips_with_model():
    torch.manual_seed(0)
    model = lp.LPIPS()  # random weights: fine for checking the plumbing, never for reporting
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=(64, 64, 3)), rng.uniform(size=(64, 64, 3))
    out = m.compute_metrics([a, a], [a, b], size=64, lpips=model)
    assert "LPIPS_reason" not in out
    assert out["LPIPS"] == pytest.approx(lp.lpips_distance(model, a, b) / 2)


def test_lpips_not_available(tmp_path, monkeypatch):
    monkeypatch.setenv(lp.ENV_VAR, str(tmp_path / "nowhere"))
    frame = np.zeros((32, 32, 3))
    out = m.compute_metrics([frame], [frame], size=32)
    assert out["LPIPS"] is None
    assert lp.ENV_VAR in out["LPIPS_reason"]
    assert set(out) == KEYS | {"LPIPS_reason"}


def test_evaluate_frame():
    values = m.evaluate_frame(astronaut(), astronaut())
    assert set(values) == set(m.METRICS)
    assert values["L1"] == 0.0 and values["AKD"] == 0.0 and values["LPIPS"] is None
