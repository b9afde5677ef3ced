"""Face detection, 68 landmarks and 128-d identity embeddings with dlib; the AKD / AED / CSIM distances.

All models come from the `face-recognition-models` wheel (installed with dagan, nothing downloads):

- detector: dlib's HOG frontal face detector (`dlib.get_frontal_face_detector()`), run with one
  pyramid up-sampling (`FACE_UPSAMPLE = 1`, the `face_recognition` package's default); when several
  faces are found the largest box is used;
- landmarks: `shape_predictor_68_face_landmarks.dat` (iBUG-300W 68-point scheme, 0-based indices);
- identity: `dlib_face_recognition_resnet_model_v1.dat` through `dlib.face_recognition_model_v1`,
  computed on the detected face and its 68 landmarks with `num_jitters=0, padding=0.25`.

The models are loaded once per process, lazily, by `face_detector()`, `shape_predictor()` and
`face_encoder()`. Images are H×W×3 RGB, uint8 or float in [0, 1]; coordinates are (x, y) pixels of
the image given (the evaluation size when called from `dagan.evaluation.metrics`).
"""

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dagan.errors import DaganError

SHAPE_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
FACE_ENCODER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
FACE_UPSAMPLE = 1
NUM_LANDMARKS = 68
EMBEDDING_DIM = 128


def dlib_model_path(filename: str) -> Path:
    """Path of a dlib model file shipped in `face-recognition-models` (see `dagan.inference.face.model_file`)."""
    from dagan.inference.face import model_file

    return model_file(filename)


def _dlib():
    try:
        import dlib
    except ImportError as err:  # pragma: no cover - dlib-bin is a declared dependency
        raise DaganError(f"dlib is not importable ({err}); install dlib-bin") from err
    return dlib


@functools.cache
def face_detector():
    """The process-wide dlib HOG frontal face detector."""
    return _dlib().get_frontal_face_detector()


@functools.cache
def shape_predictor():
    """The process-wide dlib 68-landmark shape predictor."""
    return _dlib().shape_predictor(str(dlib_model_path(SHAPE_PREDICTOR_FILE)))


@functools.cache
def face_encoder():
    """The process-wide dlib ResNet face-recognition model (128-d embeddings)."""
    return _dlib().face_recognition_model_v1(str(dlib_model_path(FACE_ENCODER_FILE)))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 or float in [0, 1] → C-contiguous H×W×3 uint8 (rounded), the form dlib needs."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise DaganError(f"expected an H×W×3 RGB image, got shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


@dataclass(eq=False)
class Face:
    """One detected face: box (left, top, right, bottom) and 68×2 landmarks (x, y) in pixels.

    `embedding` (128,) is computed on first access and then kept.
    """

    image: np.ndarray = field(repr=False)  # H×W×3 uint8, the image the face was found in
    box: tuple[int, int, int, int]
    landmarks: np.ndarray  # 68×2 float64 (x, y)
    shape: object = field(repr=False)  # dlib.full_object_detection

    @functools.cached_property
    def embedding(self) -> np.ndarray:
        """128-d dlib identity embedding (float64, unit-ish norm) of this face."""
        vec = face_encoder().compute_face_descriptor(self.image, self.shape, num_jitters=0, padding=0.25)
        return np.asarray(vec, dtype=np.float64)


def detect_face(image: np.ndarray, *, upsample: int = FACE_UPSAMPLE) -> Face | None:
    """The largest face in an H×W×3 image with its 68 landmarks, or None when no face is found."""
    image = to_uint8(image)
    boxes = face_detector()(image, upsample)
    if len(boxes) == 0:
        return None
    box = max(boxes, key=lambda r: r.width() * r.height())
    shape = shape_predictor()(image, box)
    points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)  # 68×2
    return Face(image, (box.left(), box.top(), box.right(), box.bottom()), points, shape)


def detect_landmarks(image: np.ndarray) -> np.ndarray | None:
    """68×2 landmarks (x, y) in pixels of the largest face, or None when no face is found."""
    face = detect_face(image)
    return None if face is None else face.landmarks


def face_embedding(image: np.ndarray) -> np.ndarray | None:
    """128-d identity embedding of the largest face, or None when no face is found."""
    face = detect_face(image)
    return None if face is None else face.embedding


def keypoint_distance(pred: np.ndarray, target: np.ndarray) -> float:
    """Per-frame AKD term: mean over landmarks and both coordinates of |pred − target| (K×2, pixels).

    This is the expression of first-order-model's `pose-evaluation/cmp_kp.py`:
    `np.mean(np.abs(kp1 - kp2))`; it is not a mean Euclidean point distance.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.ndim != 2 or pred.shape[1] != 2:
        raise DaganError(f"landmarks must be two K×2 arrays of equal shape, got {pred.shape} and {target.shape}")
    return float(np.mean(np.abs(pred - target)))


def _embeddings(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise DaganError(f"embeddings differ in size: {a.shape[0]} vs {b.shape[0]}")
    return a, b


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Per-frame AED term: Euclidean (L2) distance ‖a − b‖₂ between two identity embeddings."""
    a, b = _embeddings(a, b)
    return float(np.linalg.norm(a - b))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """CSIM: a·b / (‖a‖‖b‖) of two identity embeddings, in [−1, 1]; 0 when either is all zeros."""
    a, b = _embeddings(a, b)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else 0.0
