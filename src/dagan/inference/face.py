"""Face detection, VoxCeleb-style square crops, and temporal smoothing (tracking: `tracking.py`).

Detection is dlib's HOG frontal-face detector; landmarks use the 68-point predictor shipped by the
`face-recognition-models` package (located on disk, never imported: it imports pkg_resources).

Coordinates are pixels with (0, 0) at the top-left corner of the top-left pixel; a `Box` spans
[x0, x1) × [y0, y1) and may extend beyond the image.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from dagan.errors import DaganError
from dagan.io.yuv import YuvFrame
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
    "crop_yuv_and_resize",
    "resample_box",
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


def _as_detector_image(image: np.ndarray) -> np.ndarray:
    """H×W×3 RGB or H×W gray (a luma plane), uint8 and contiguous: what dlib's HOG detector takes."""
    arr = np.asarray(image)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected an H×W×3 RGB or H×W gray image, got shape {arr.shape}")
    return np.ascontiguousarray(to_uint8(arr))


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {arr.shape}")
    return np.ascontiguousarray(to_uint8(arr))


PYRAMID_STEP = 5 / 6  # dlib's pyramid_down<6>: each level is 5/6 of the one above
EXPECTED_FACE_PX = 100.0  # a known face is searched for at a scale that keeps it this big (HOG window: 80)


def detect_faces(image: np.ndarray, *, max_side: int = 640, upsample: int | None = None,
                 expected_side: float | None = None) -> list[Box]:
    """Detect frontal faces with dlib's HOG detector.

    Large images are detected on a copy downscaled so the longer side is `max_side` (HOG cost grows
    with pixels; faces in such images are big anyway). With `upsample=None` the detector first runs
    at that scale and, only if nothing is found, again with the image upsampled 2× (finds faces down
    to ~40 px instead of ~80 px).

    Args:
        image: H×W×3 RGB or H×W gray, uint8 or float in [0, 1].
        max_side: longer side of the working copy.
        upsample: dlib pyramid upsampling count; None = adaptive as above.
        expected_side: the face's size when it is known (image pixels; a tracker re-detecting it).
            The working copy is then reduced further, by whole steps of dlib's pyramid (5/6 each),
            as long as such a face stays at least `EXPECTED_FACE_PX`: HOG's cost falls with the
            pixels, and the boxes it can return are the same sizes the full-size search returns.

    Returns:
        Boxes in `image` pixels, largest first; `score` holds the detector margin (> 0).
    """
    rgb = _as_detector_image(image)
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if expected_side is not None and expected_side * scale > EXPECTED_FACE_PX:
        scale *= PYRAMID_STEP ** math.floor(math.log(EXPECTED_FACE_PX / (expected_side * scale), PYRAMID_STEP))
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
        image: H×W×3, uint8 or float in [0, 1]; or a `YuvFrame` (see `crop_yuv_and_resize`).
        box: region in image pixels (any aspect ratio; normally square).
        size: output side.

    Returns:
        size×size×3 float32 in [0, 1].
    """
    if isinstance(image, YuvFrame):
        return crop_yuv_and_resize(image, box, size, pad_mode=pad_mode)
    out = resample_box(image, box, size, pad_mode=pad_mode)
    if out.dtype == np.uint8:
        return out.astype(np.float32) / 255.0
    return np.clip(out, 0.0, 1.0)


def crop_yuv_and_resize(frame: YuvFrame, box: Box, size: int, *, pad_mode: str = "edge") -> np.ndarray:
    """`crop_and_resize` of a picture kept as Y, U, V planes: each plane is resampled at its own
    resolution (the box scaled by the chroma subsampling) and only the result is converted to RGB.

    Returns:
        size×size×3 float32 in [0, 1].
    """
    sx, sy = frame.subsampling
    chroma = Box(box.x0 / sx, box.y0 / sy, box.x1 / sx, box.y1 / sy)
    y = resample_box(frame.y, box, size, pad_mode=pad_mode)
    u = resample_box(frame.u, chroma, size, pad_mode=pad_mode)
    v = resample_box(frame.v, chroma, size, pad_mode=pad_mode)
    return frame.to_rgb_of(y, u, v)


def resample_box(image: np.ndarray, box: Box, size: int, *, pad_mode: str = "edge") -> np.ndarray:
    """`box` of an H×W or H×W×C array resampled to size×size (×C), in the input's dtype and levels.

    The work behind `crop_and_resize` (see there for `pad_mode` and the resampling).
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
    if row_ok.all() and col_ok.all():
        window = arr[iy0:iy1, ix0:ix1]  # inside the image: a view, no gather over the full frame
    else:
        r0, c0 = rows.min(), cols.min()
        part = arr[r0 : rows.max() + 1, c0 : cols.max() + 1]
        window = part[rows - r0][:, cols - c0]  # (iy1 − iy0)×(ix1 − ix0)(×C)
        if pad_mode == "constant":
            mask = row_ok[:, None] & col_ok[None, :]
            window = window * (mask if window.ndim == 2 else mask[..., None]).astype(window.dtype)
    src = (box.x0 - ix0, box.y0 - iy0, box.x1 - ix0, box.y1 - iy0)
    if window.dtype == np.uint8:
        return np.asarray(Image.fromarray(window).resize((size, size), Image.Resampling.BICUBIC, box=src))
    window = np.asarray(window, dtype=np.float32)
    if window.ndim == 2:
        return np.asarray(Image.fromarray(window, mode="F").resize((size, size), Image.Resampling.BICUBIC, box=src))
    channels = [
        np.asarray(Image.fromarray(window[..., c], mode="F").resize((size, size), Image.Resampling.BICUBIC, box=src))
        for c in range(window.shape[2])
    ]
    return np.stack(channels, axis=2)  # size×size×C


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
# Tracking lives in `dagan.inference.tracking` (it builds on the helpers above); its names stay
# importable from here, resolved on first use so neither module imports the other at load time.

_TRACKING_NAMES = {"FaceTracker", "TrackedFrame", "TrackReport", "track_crops"}


def __getattr__(name: str):
    if name in _TRACKING_NAMES:
        from dagan.inference import tracking

        return getattr(tracking, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
