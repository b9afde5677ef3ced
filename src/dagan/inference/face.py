"""Face detection, VoxCeleb-style square crops, and temporally smooth crop tracking for videos.

Detection is dlib's HOG frontal-face detector; landmarks use the 68-point predictor shipped by the
`face-recognition-models` package (located on disk, never imported: it imports pkg_resources).

Coordinates are pixels with (0, 0) at the top-left corner of the top-left pixel; a `Box` spans
[x0, x1) × [y0, y1) and may extend beyond the image.
"""

from __future__ import annotations

import importlib.util
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from dagan.errors import DaganError
from dagan.io.image import to_uint8

__all__ = [
    "Box",
    "model_file",
    "detect_faces",
    "largest_face",
    "detect_largest_face",
    "face_landmarks",
    "crop_box_from_face",
    "crop_and_resize",
    "TrackedFrame",
    "TrackReport",
    "FaceTracker",
    "track_crops",
    "OneEuroFilter",
    "DEFAULT_MARGIN",
]

DEFAULT_MARGIN = 0.8  # crop side = (1 + margin) × face side: the face spans ~1/1.8 ≈ 56% of the crop
DEFAULT_LIFT = 0.1  # crop centre moves up by this × face side (dlib boxes cut the forehead)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box [x0, x1) × [y0, y1) in pixels; `score` is the detector's confidence."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 0.0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def iou(self, other: Box) -> float:
        """Intersection over union with another box (0 when disjoint)."""
        iw = min(self.x1, other.x1) - max(self.x0, other.x0)
        ih = min(self.y1, other.y1) - max(self.y0, other.y0)
        inter = max(iw, 0.0) * max(ih, 0.0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def scaled(self, factor: float) -> Box:
        """All coordinates multiplied by `factor` (image rescaling)."""
        return Box(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor, self.score)

    @classmethod
    def square(cls, cx: float, cy: float, side: float) -> Box:
        cx, cy, half = float(cx), float(cy), float(side) / 2
        return cls(cx - half, cy - half, cx + half, cy + half)

    def as_array(self) -> np.ndarray:
        """float64 array [x0, y0, x1, y1]."""
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Model files and detectors


def model_file(name: str) -> Path:
    """Path of a dlib model shipped by `face-recognition-models`, without importing that package.

    Args:
        name: file name, e.g. "shape_predictor_68_face_landmarks.dat" or
            "dlib_face_recognition_resnet_model_v1.dat".

    Raises:
        DaganError: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DaganError("face-recognition-models is not installed (pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise DaganError(f"dlib model file {name} not found: missing from {path.parent}")
    return path


@lru_cache(maxsize=1)
def _detector():
    import dlib

    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=1)
def _shape_predictor():
    import dlib

    return dlib.shape_predictor(str(model_file("shape_predictor_68_face_landmarks.dat")))


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {arr.shape}")
    return np.ascontiguousarray(to_uint8(arr))


def detect_faces(image: np.ndarray, *, max_side: int = 640, upsample: int | None = None) -> list[Box]:
    """Detect frontal faces with dlib's HOG detector.

    Large images are detected on a copy downscaled so the longer side is `max_side` (HOG cost grows
    with pixels; faces in such images are big anyway). With `upsample=None` the detector first runs
    at that scale and, only if nothing is found, again with the image upsampled 2× (finds faces down
    to ~40 px instead of ~80 px).

    Args:
        image: H×W×3 RGB, uint8 or float in [0, 1].
        max_side: longer side of the working copy.
        upsample: dlib pyramid upsampling count; None = adaptive as above.

    Returns:
        Boxes in `image` pixels, largest first; `score` holds the detector margin (> 0).
    """
    rgb = _as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    work = rgb
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        work = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    detector = _detector()
    tries = (upsample,) if upsample is not None else (0, 1)
    rects, scores = [], []
    for up in tries:
        rects, scores, _ = detector.run(work, up, 0.0)
        if len(rects):
            break
    sx, sy = w / work.shape[1], h / work.shape[0]
    boxes = [
        Box(r.left() * sx, r.top() * sy, (r.right() + 1) * sx, (r.bottom() + 1) * sy, float(s))
        for r, s in zip(rects, scores, strict=True)
    ]
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def largest_face(boxes: Sequence[Box]) -> Box | None:
    """The box with the largest area, or None for an empty list."""
    return max(boxes, key=lambda b: b.area) if boxes else None


def detect_largest_face(image: np.ndarray, *, source: str = "image", **detect_kwargs) -> tuple[Box, int]:
    """Detect faces and return (largest face, number of faces found).

    A count above 1 is for the caller to report ("3 faces in photo.jpg; using the largest").

    Raises:
        DaganError: no face found; the message names `source`.
    """
    boxes = detect_faces(image, **detect_kwargs)
    if not boxes:
        raise DaganError(f"no face found in {source}; use a photo with a clearly visible frontal face")
    return boxes[0], len(boxes)


def face_landmarks(image: np.ndarray, box: Box) -> np.ndarray:
    """68 dlib/iBUG landmarks inside a face box.

    Args:
        image: H×W×3 RGB, uint8 or float in [0, 1].
        box: a face box from `detect_faces` (not a crop box).

    Returns:
        68×2 float32 (x, y) in image pixels.
    """
    import dlib

    rgb = _as_rgb_uint8(image)
    rect = dlib.rectangle(round(box.x0), round(box.y0), round(box.x1) - 1, round(box.y1) - 1)
    shape = _shape_predictor()(rgb, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)  # 68×2


# --------------------------------------------------------------------------------------------
# Crops


def crop_box_from_face(
    box: Box,
    image_size: tuple[int, int],
    margin: float = DEFAULT_MARGIN,
    *,
    lift: float = DEFAULT_LIFT,
    fit_inside: bool = False,
) -> Box:
    """A square crop around a face box, framed like VoxCeleb training crops.

    The crop side is (1 + margin) × the face box's longer side (default 1.8×, so the dlib face box,
    eyebrows to chin, covers the central ~56% of the crop and hair/neck fit in), centred on the face
    box moved up by `lift` × that side.

    Args:
        box: face box in image pixels.
        image_size: (width, height) of the image.
        margin: extra size relative to the face box.
        lift: upward shift of the centre, as a fraction of the face side.
        fit_inside: shift the square into the image where possible (and shrink it to the image's
            shorter side if larger), trading centring for no padding. Off by default: the crop may
            extend beyond the image and `crop_and_resize` pads it.
    """
    face = max(box.width, box.height)
    if not face > 0:
        raise ValueError(f"degenerate face box {box}")
    side = face * (1.0 + margin)
    cx, cy = box.center
    cy -= lift * face
    if fit_inside:
        w, h = image_size
        side = min(side, float(min(w, h)))
        cx = min(max(cx, side / 2), w - side / 2)
        cy = min(max(cy, side / 2), h - side / 2)
    return Box.square(cx, cy, side)


def crop_and_resize(image: np.ndarray, box: Box, size: int, *, pad_mode: str = "edge") -> np.ndarray:
    """Cut `box` out of `image` (sub-pixel exact) and resize it to size×size with anti-aliasing.

    Parts of the box outside the image are padded with `pad_mode` ("edge": replicate the border
    pixels, the default, which keeps the crop free of hard black edges the generator would animate;
    "constant": black; "reflect": mirrored). Resampling is Pillow's bicubic, which widens its kernel
    when downscaling (anti-aliased).

    Args:
        image: H×W×3, uint8 or float in [0, 1].
        box: region in image pixels (any aspect ratio; normally square).
        size: output side.

    Returns:
        size×size×3 float32 in [0, 1].
    """
    if pad_mode not in ("edge", "constant", "reflect"):
        raise ValueError(f"pad_mode must be 'edge', 'constant' or 'reflect', got {pad_mode!r}")
    if not (box.width > 0 and box.height > 0):
        raise ValueError(f"degenerate crop box {box}")
    arr = np.asarray(image)
    h, w = arr.shape[:2]
    # Integer window around the box with a margin for the resampling kernel, gathered with
    # out-of-image indices mapped by the padding rule (works however far outside the box lies).
    ctx = 2 + math.ceil(2 * max(box.width, box.height) / size)
    ix0, iy0 = math.floor(box.x0) - ctx, math.floor(box.y0) - ctx
    ix1, iy1 = math.ceil(box.x1) + ctx, math.ceil(box.y1) + ctx
    rows, row_ok = _pad_index(np.arange(iy0, iy1), h, pad_mode)
    cols, col_ok = _pad_index(np.arange(ix0, ix1), w, pad_mode)
    window = arr[rows[:, None], cols[None, :]]  # (iy1 − iy0)×(ix1 − ix0)×3
    if pad_mode == "constant":
        window = window * (row_ok[:, None] & col_ok[None, :])[..., None].astype(window.dtype)
    src = (box.x0 - ix0, box.y0 - iy0, box.x1 - ix0, box.y1 - iy0)
    if window.dtype == np.uint8:
        out = np.asarray(Image.fromarray(window).resize((size, size), Image.Resampling.BICUBIC, box=src))
        return out.astype(np.float32) / 255.0
    window = np.asarray(window, dtype=np.float32)
    channels = [
        np.asarray(Image.fromarray(window[..., c], mode="F").resize((size, size), Image.Resampling.BICUBIC, box=src))
        for c in range(window.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)  # size×size×3


def _pad_index(index: np.ndarray, n: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Map possibly out-of-range indices into [0, n) by `mode`; also return the in-range mask."""
    inside = (index >= 0) & (index < n)
    if mode == "reflect" and n > 1:  # numpy's "reflect": the edge pixel is not repeated
        period = 2 * (n - 1)
        folded = np.mod(index, period)
        return np.where(folded >= n, period - folded, folded), inside
    return np.clip(index, 0, n - 1), inside


# --------------------------------------------------------------------------------------------
# Temporal smoothing


class OneEuroFilter:
    """The 1€ filter (Casiez et al., CHI 2012), element-wise over arrays of any shape.

    Low jitter when still, low lag when moving: the cutoff frequency rises with speed
    (cutoff = min_cutoff + beta × |dx/dt|). Typical use: smoothing driving keypoints K×2 per frame.

    Args:
        min_cutoff: cutoff (Hz) at rest; lower = smoother.
        beta: speed coefficient; higher = less lag on fast motion.
        d_cutoff: cutoff (Hz) for the derivative estimate.
        rate: sample rate (Hz) used when `__call__` gets no timestamp.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, rate: float = 25.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or rate <= 0:
            raise ValueError("min_cutoff, d_cutoff and rate must be positive")
        self.min_cutoff, self.beta, self.d_cutoff, self.rate = min_cutoff, beta, d_cutoff, rate
        self.reset()

    def reset(self) -> None:
        """Forget the history; the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff, dt: float):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float | None = None) -> np.ndarray:
        """Filter one sample (any shape, same every call); `t` in seconds, default previous + 1/rate."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            self._t = 0.0 if t is None else float(t)
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"sample shape changed from {self._x.shape} to {x.shape}")
        t = self._t + 1.0 / self.rate if t is None else float(t)
        dt = t - self._t
        if dt <= 0:
            raise ValueError(f"timestamps must increase (got {t} after {self._t})")
        self._t = t
        dx = (x - self._x) / dt
        self._dx = self._dx + self._alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + self._alpha(cutoff, dt) * (x - self._x)
        return self._x.copy()


# --------------------------------------------------------------------------------------------
# Tracking


@dataclass(frozen=True)
class TrackedFrame:
    """One frame with its smoothed crop.

    Attributes:
        index: frame number from 0.
        frame: the original frame (as given).
        crop_box: smoothed square crop box in frame pixels (may extend beyond the frame).
        face_box: the face detected in this frame, or None (detector not run here, or missed).
    """

    index: int
    frame: np.ndarray
    crop_box: Box
    face_box: Box | None


@dataclass
class TrackReport:
    """What happened while tracking, for the CLI to print (`messages()`)."""

    source: str
    frames: int = 0
    detector_runs: int = 0
    misses: int = 0
    multi_face_frames: int = 0
    first_multi_face_frame: int | None = None
    max_faces: int = 0

    def messages(self) -> list[str]:
        out = []
        if self.multi_face_frames:
            out.append(
                f"{self.source}: up to {self.max_faces} faces in {self.multi_face_frames} frame(s) "
                f"(first at frame {self.first_multi_face_frame}); following the largest"
            )
        if self.misses:
            out.append(
                f"{self.source}: no face detected in {self.misses} of {self.detector_runs} checked frames; "
                "held the last crop there"
            )
        return out


@dataclass
class _Entry:
    index: int
    frame: np.ndarray | None
    face: Box | None
    crop: np.ndarray | None = None  # raw crop (cx, cy, side) before smoothing


class _NoFaceYet(Exception):
    """Internal: too many frames buffered before the first detection."""


@dataclass
class FaceTracker:
    """Streaming face-crop tracker for videos, with bounded memory.

    Detection runs every `detect_every` frames (and on every frame after a miss, or until the first
    face); crops in between are interpolated linearly. Frames where the detector finds nothing hold
    the last crop; frames before the first detection use the first one. Crops (centre and side) are
    smoothed with a centred Gaussian of `smooth_sigma` frames, truncated at
    `lookahead = ceil(2 × smooth_sigma)` frames, so output lags input by at most
    `detect_every + lookahead` frames and only that many frames are held in memory.

    The face to follow is the largest at the first detection; afterwards the detection overlapping
    the previous face most (IoU > 0.3) is taken, else the largest. Frames with several faces are
    counted in `report`.

    Before the first detection frames must be buffered. At most `max_pending` are; beyond that, if
    `track` was given a callable that reopens the frame source, the scan continues without buffering
    and the source is reopened once the face is found, otherwise a DaganError is raised.

    Args:
        source: name used in messages (the video path).
        detect_every: run the detector every N frames.
        margin, lift: crop framing, see `crop_box_from_face`.
        smooth_sigma: temporal smoothing (frames); 0 disables it.
        max_pending: frames buffered while waiting for the first face.
        max_side: detector working resolution, see `detect_faces`.
    """

    source: str = "video"
    detect_every: int = 1
    margin: float = DEFAULT_MARGIN
    lift: float = DEFAULT_LIFT
    smooth_sigma: float = 2.0
    max_pending: int = 250
    max_side: int = 640
    detect: Callable[[np.ndarray], list[Box]] | None = None
    report: TrackReport = field(init=False)

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {self.detect_every}")
        if self.smooth_sigma < 0:
            raise ValueError(f"smooth_sigma must be >= 0, got {self.smooth_sigma}")
        self.report = TrackReport(self.source)

    @property
    def lookahead(self) -> int:
        return math.ceil(2 * self.smooth_sigma)

    def track(
        self, frames: Iterable[np.ndarray] | Callable[[], Iterable[np.ndarray]]
    ) -> Iterator[TrackedFrame]:
        """Yield every frame with its smoothed crop box, in order.

        Args:
            frames: H×W×3 frames, or a zero-argument callable returning a fresh iterable of them
                (e.g. `lambda: iter_frames(path)`), which lifts the `max_pending` limit.

        Raises:
            DaganError: no face in any frame (or in the first `max_pending` frames when `frames`
                cannot be reopened); the message names `source`.
        """
        self.report = TrackReport(self.source)
        reopen = frames if callable(frames) else None
        iterator = iter(reopen() if reopen is not None else frames)
        try:
            yield from self._run(iterator, None)
            return
        except _NoFaceYet:
            if reopen is None:
                raise DaganError(
                    f"no face found in the first {self.max_pending} frames of {self.source}"
                ) from None
        # Too long without a face: find the first one without keeping frames, then start over.
        first_index, first_crop = self._scan_for_first_face(iterator, self.max_pending + 1)
        _close(iterator)
        # The second pass skips detection before `first_index`; the scan found no face there.
        self.report = TrackReport(self.source, detector_runs=first_index, misses=first_index)
        yield from self._run(iter(reopen()), (first_index, first_crop))

    def _detect(self, frame: np.ndarray, previous: Box | None, index: int) -> Box | None:
        boxes = self.detect(frame) if self.detect is not None else detect_faces(frame, max_side=self.max_side)
        self.report.detector_runs += 1
        if not boxes:
            self.report.misses += 1
            return None
        if len(boxes) > 1:
            self.report.multi_face_frames += 1
            self.report.max_faces = max(self.report.max_faces, len(boxes))
            if self.report.first_multi_face_frame is None:
                self.report.first_multi_face_frame = index
            if previous is not None:
                best = max(boxes, key=previous.iou)
                if previous.iou(best) > 0.3:
                    return best
        return largest_face(boxes)

    def _crop(self, face: Box, frame: np.ndarray) -> np.ndarray:
        crop = crop_box_from_face(face, (frame.shape[1], frame.shape[0]), self.margin, lift=self.lift)
        return np.array([*crop.center, crop.width])  # (cx, cy, side)

    def _scan_for_first_face(self, iterator: Iterator[np.ndarray], start: int) -> tuple[int, np.ndarray]:
        index = start - 1
        for index, frame in enumerate(iterator, start=start):
            face = self._detect(frame, None, index)
            if face is not None:
                return index, self._crop(face, frame)
        raise DaganError(f"no face found in any of the {index + 1} frames of {self.source}")

    def _run(self, iterator: Iterator[np.ndarray], known_first: tuple[int, np.ndarray] | None):
        L = self.lookahead
        unresolved: deque[_Entry] = deque()  # frames after the last detection, crop not yet known
        resolved: deque[_Entry] = deque()  # crop known: up to L emitted ones (history) + pending
        emitted_in_resolved = 0
        last: tuple[int, np.ndarray] | None = None  # (index, crop) of the last detection
        last_face: Box | None = None
        last_attempt = -(10**9)
        index = -1

        def resolve(upto_crop: np.ndarray | None, upto_index: int) -> None:
            """Give every unresolved entry a crop: interpolate, hold, or (leading) take the first."""
            while unresolved:
                e = unresolved.popleft()
                if last is None:
                    e.crop = upto_crop
                elif upto_crop is not None and upto_index - last[0] <= self.detect_every:
                    t = (e.index - last[0]) / (upto_index - last[0])
                    e.crop = (1 - t) * last[1] + t * upto_crop
                else:
                    e.crop = last[1]
                resolved.append(e)

        def emit(final: bool) -> Iterator[TrackedFrame]:
            nonlocal emitted_in_resolved
            while emitted_in_resolved < len(resolved):
                k = emitted_in_resolved
                if not final and len(resolved) - 1 - k < L:
                    return
                entry = resolved[k]
                yield TrackedFrame(entry.index, entry.frame, self._smoothed(resolved, k), entry.face)
                entry.frame = None  # the history only needs the crop
                emitted_in_resolved += 1
                while emitted_in_resolved > L:
                    resolved.popleft()
                    emitted_in_resolved -= 1

        for index, frame in enumerate(iterator):
            self.report.frames += 1
            entry = _Entry(index, frame, None)
            if known_first is not None and last is None:
                if index < known_first[0]:  # before the first face, found by an earlier scan
                    entry.crop = known_first[1]
                    resolved.append(entry)
                    yield from emit(False)
                    continue
                last = known_first  # from here on, a miss holds the scanned crop
            missed_before = last is not None and last_attempt > last[0]
            attempt = last is None or missed_before or index - last_attempt >= self.detect_every
            if attempt:
                last_attempt = index
                entry.face = self._detect(frame, last_face, index)
            unresolved.append(entry)
            if entry.face is not None:
                crop = self._crop(entry.face, frame)
                unresolved.pop()
                resolve(crop, index)
                entry.crop = crop
                resolved.append(entry)
                last, last_face = (index, crop), entry.face
            elif attempt and last is not None:
                resolve(None, index)  # a miss: hold the last crop up to here
            elif last is None and len(unresolved) > self.max_pending:
                unresolved.clear()
                raise _NoFaceYet
            yield from emit(False)
        if last is None and unresolved:
            unresolved.clear()
            raise DaganError(f"no face found in any of the {index + 1} frames of {self.source}")
        if index < 0:
            raise DaganError(f"{self.source} has no frames")
        resolve(None, index)
        yield from emit(True)

    def _smoothed(self, resolved: deque[_Entry], k: int) -> Box:
        # Symmetric window: near the ends of the video it shrinks on both sides, so linear motion
        # is reproduced exactly (a one-sided window would lag).
        m = min(self.lookahead, k, len(resolved) - 1 - k)
        if m == 0:
            cx, cy, side = resolved[k].crop
            return Box.square(cx, cy, side)
        lo, hi = k - m, k + m + 1
        offsets = np.arange(lo, hi) - k
        weights = np.exp(-0.5 * (offsets / self.smooth_sigma) ** 2)
        crops = np.stack([resolved[j].crop for j in range(lo, hi)])  # n×3
        cx, cy, side = (weights[:, None] * crops).sum(0) / weights.sum()
        return Box.square(cx, cy, side)


def _close(iterator) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def track_crops(
    frames: Iterable[np.ndarray] | Callable[[], Iterable[np.ndarray]], **tracker_options
) -> Iterator[TrackedFrame]:
    """Shorthand for `FaceTracker(**tracker_options).track(frames)` (when the report is not needed)."""
    return FaceTracker(**tracker_options).track(frames)
