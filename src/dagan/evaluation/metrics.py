"""Frame-by-frame comparison of a predicted and a target video: L1, PSNR, SSIM, LPIPS, AKD, AED.

Every frame is first brought to the evaluation size with `prepare` (size×size×3 float64 in [0, 1]).
Per-frame values are averaged over frames; AKD and AED only over frames where a face was found in
both videos, and the frames without a face are counted, never silently dropped. The exact
definitions, and how they differ from the published ones, are in docs/metrics.md.

The metrics live in a registry, `METRICS` (name → `Metric`); `compute_metrics` runs all of them.
"""

import functools
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from skimage.metrics import structural_similarity
from skimage.transform import resize

from dagan.errors import DaganError
from dagan.evaluation.landmarks import Face, detect_face, identity_distance, keypoint_distance, to_uint8
from dagan.evaluation.lpips import LPIPS, lpips_distance, try_load_lpips

PSNR_CAP_DB = 100.0  # PSNR of a frame whose MSE is below 1e-10 (identical frames): 10·log10(1 / 1e-10)
RANGE_TOLERANCE = 1e-3  # float frames may overshoot [0, 1] by this much (then they are clipped)


def prepare(frame: np.ndarray, size: int = 256) -> np.ndarray:
    """One frame → size×size×3 float64 in [0, 1].

    frame: H×W×3, uint8 (divided by 255) or float in [0, 1]. Other sizes are resized with
    `skimage.transform.resize(..., order=1, anti_aliasing=True)` (non-square frames are stretched:
    crop first if that is not wanted).
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise DaganError(f"expected H×W×3 RGB frames, got shape {tuple(frame.shape)}")
    if frame.dtype == np.uint8:
        image = frame.astype(np.float64) / 255.0
    elif np.issubdtype(frame.dtype, np.floating):
        image = frame.astype(np.float64)
        lo, hi = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            raise DaganError(f"float frames must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
    else:
        raise DaganError(f"frames must be uint8 or float, got {frame.dtype}")
    if image.shape[:2] != (size, size):
        image = resize(image, (size, size), order=1, anti_aliasing=True)
    return np.clip(image, 0.0, 1.0)


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise DaganError(f"frame shapes differ: {pred.shape} vs {target.shape}")


def l1(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error over all pixels and channels."""
    _check_pair(pred, target)
    return float(np.mean(np.abs(pred - target)))


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """10·log10(1 / MSE) in dB (data range 1), capped at PSNR_CAP_DB (100 dB) when MSE < 1e-10."""
    _check_pair(pred, target)
    mse = float(np.mean((pred - target) ** 2))
    return PSNR_CAP_DB if mse < 1e-10 else float(10.0 * np.log10(1.0 / mse))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """`skimage.metrics.structural_similarity(pred, target, data_range=1.0, channel_axis=-1)`:
    7×7 uniform window, K1 = 0.01, K2 = 0.03, sample covariance, mean over pixels and channels."""
    _check_pair(pred, target)
    return float(structural_similarity(pred, target, data_range=1.0, channel_axis=-1))


@dataclass(eq=False)
class FramePair:
    """One prepared predicted / target frame pair (size×size×3 float64 in [0, 1]).

    Faces are detected on first use and shared by the metrics that need them.
    """

    pred: np.ndarray
    target: np.ndarray
    lpips_model: LPIPS | None = field(default=None, repr=False)

    @functools.cached_property
    def pred_face(self) -> Face | None:
        return detect_face(to_uint8(self.pred))

    @functools.cached_property
    def target_face(self) -> Face | None:
        return detect_face(to_uint8(self.target))


@dataclass(frozen=True)
class Metric:
    """A per-frame metric: fn(pair) → value, or None when undefined for this frame (no face, no model)."""

    name: str
    fn: Callable[[FramePair], float | None]
    higher_is_better: bool
    description: str


METRICS: dict[str, Metric] = {}


def register_metric(name: str, *, higher_is_better: bool, description: str):
    """Decorator adding a per-frame metric `fn(pair: FramePair) -> float | None` to METRICS."""

    def decorator(fn: Callable[[FramePair], float | None]):
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = Metric(name, fn, higher_is_better, description)
        return fn

    return decorator


@register_metric("L1", higher_is_better=False, description="mean absolute pixel error, [0, 1] scale")
def _l1(pair: FramePair) -> float:
    return l1(pair.pred, pair.target)


@register_metric("PSNR", higher_is_better=True, description="dB, data range 1, capped at 100 dB")
def _psnr(pair: FramePair) -> float:
    return psnr(pair.pred, pair.target)


@register_metric("SSIM", higher_is_better=True, description="scikit-image SSIM, 7×7 uniform window")
def _ssim(pair: FramePair) -> float:
    return ssim(pair.pred, pair.target)


@register_metric("LPIPS", higher_is_better=False, description="LPIPS v0.1, AlexNet")
def _lpips(pair: FramePair) -> float | None:
    return None if pair.lpips_model is None else lpips_distance(pair.lpips_model, pair.pred, pair.target)


@register_metric("AKD", higher_is_better=False, description="dlib 68 landmarks, mean |Δ| in pixels")
def _akd(pair: FramePair) -> float | None:
    if pair.pred_face is None or pair.target_face is None:
        return None
    return keypoint_distance(pair.pred_face.landmarks, pair.target_face.landmarks)


@register_metric("AED", higher_is_better=False, description="dlib 128-d identity embeddings, L2 distance")
def _aed(pair: FramePair) -> float | None:
    if pair.pred_face is None or pair.target_face is None:
        return None
    return identity_distance(pair.pred_face.embedding, pair.target_face.embedding)


def evaluate_frame(
    pred: np.ndarray, target: np.ndarray, *, size: int = 256, lpips_model: LPIPS | None = None
) -> dict[str, float | None]:
    """Every registered metric on one frame pair; None where undefined (no face; LPIPS without model)."""
    pair = FramePair(prepare(pred, size), prepare(target, size), lpips_model)
    return {name: metric.fn(pair) for name, metric in METRICS.items()}


_MISSING = object()


def compute_metrics(
    pred_frames: Iterable[np.ndarray],
    target_frames: Iterable[np.ndarray],
    *,
    size: int = 256,
    lpips: LPIPS | bool | None = None,
) -> dict[str, float | int | str | None]:
    """Compare two videos frame by frame, streaming (one frame pair in memory at a time).

    pred_frames, target_frames: equal-length iterables of H×W×3 frames (uint8, or float in [0, 1]).
    size: evaluation size; frames are brought to size×size by `prepare`.
    lpips: an `LPIPS` model (used on its device); None to load one with `try_load_lpips()` from
        $DAGAN_LPIPS_WEIGHTS or the standard caches; False to skip LPIPS.

    Returns a JSON-safe dict with exactly the keys L1, PSNR, SSIM, LPIPS, AKD, AED (means over frames,
    float or None), num_frames, failed_detections_pred, failed_detections_target (ints), and
    LPIPS_reason (str) only when LPIPS is None. AKD and AED are means over the frames where a face
    was found in both videos; None if there is no such frame.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise DaganError(f"evaluation size must be an integer ≥ 16, got {size!r}")
    reason = None
    if lpips is None:
        model, reason = try_load_lpips()
    elif lpips is False:
        model, reason = None, "LPIPS disabled by the caller"
    elif isinstance(lpips, LPIPS):
        model = lpips
    else:
        raise DaganError(f"lpips must be an LPIPS model, None or False, got {type(lpips).__name__}")

    sums = {name: 0.0 for name in METRICS}
    counts = {name: 0 for name in METRICS}
    num_frames = failed_pred = failed_target = 0
    pairs = itertools.zip_longest(pred_frames, target_frames, fillvalue=_MISSING)
    for pred, target in pairs:
        if pred is _MISSING or target is _MISSING:
            longer = num_frames + 1 + sum(1 for _ in pairs)  # count the rest of the longer one, unprocessed
            n_pred, n_target = (num_frames, longer) if pred is _MISSING else (longer, num_frames)
            raise DaganError(f"frame counts differ: prediction has {n_pred}, target has {n_target}")
        pair = FramePair(prepare(pred, size), prepare(target, size), model)
        for name, metric in METRICS.items():
            value = metric.fn(pair)
            if value is not None:
                sums[name] += value
                counts[name] += 1
        num_frames += 1
        failed_pred += pair.pred_face is None
        failed_target += pair.target_face is None
    if num_frames == 0:
        raise DaganError("no frames to compare")

    result: dict[str, float | int | str | None] = {
        name: (sums[name] / counts[name] if counts[name] else None) for name in METRICS
    }
    result.update(
        num_frames=num_frames, failed_detections_pred=failed_pred, failed_detections_target=failed_target
    )
    if result["LPIPS"] is None:
        result["LPIPS_reason"] = reason
    return result
