"""Where the driving motion comes from: a video, a motion file, or one image.

Each source streams its frames for the pipeline and finds the initial frame that relative motion
is measured against. A video or an image has pixels (`has_pixels`: S×S×3 face crops, whose
keypoints the networks detect; also what `--side-by-side` shows); a motion file streams each
frame's keypoints directly (1-frame `Keypoints`: 1×K×2, 1×K×2×2).

    for item in driving.items(messages, profile):  # read → track → crop, on the pipeline's reader thread
        ...
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from dagan.errors import DaganError
from dagan.geometry import Keypoints
from dagan.geometry.keypoints import convex_hull_area
from dagan.inference.face import detect_faces, face_landmarks
from dagan.inference.motion import Motion, is_motion_file, load_motion, runtime_model_id
from dagan.inference.outputs import is_image_path
from dagan.inference.profile import Profile
from dagan.inference.stages import batched, crop_source, driving_crops, frames_to_tensor
from dagan.io import probe_video, read_image, to_uint8

Batch = tuple[list[np.ndarray] | None, torch.Tensor | None, Keypoints]


def normalized_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Centre 68 landmarks and divide by sqrt(convex-hull area), as the original's best-frame search."""
    centred = landmarks - landmarks.mean(axis=0, keepdims=True)
    area = convex_hull_area(torch.from_numpy(landmarks.astype(np.float64)))
    return centred / math.sqrt(area) if area > 0 else centred


def crop_landmarks(crop: np.ndarray) -> np.ndarray | None:
    """68 landmarks of the largest face in a (cropped) frame, or None."""
    boxes = detect_faces(to_uint8(crop))
    return face_landmarks(crop, boxes[0]) if boxes else None


def source_landmarks(source_crop: np.ndarray, source: str) -> np.ndarray:
    """Normalised landmarks of the source crop for `--best-frame auto`."""
    lm = crop_landmarks(source_crop)
    if lm is None:
        raise DaganError(f"--best-frame auto: no facial landmarks found in the cropped {source}")
    return normalized_landmarks(lm)


def landmark_error(landmarks: np.ndarray | None, target: np.ndarray) -> float:
    """Squared distance of 68×2 normalised landmarks to `target`; inf where no face was found."""
    if landmarks is None or not np.isfinite(landmarks).all():
        return math.inf
    return float(((landmarks - target) ** 2).sum())


def open_driving(path: str, runtime, size: int, *, crop: bool = True, detect_every: int = 1,
                 messages: list[str] | None = None):
    """A `MotionDriving` for .npz, an `ImageDriving` for an image file, else a `VideoDriving`."""
    messages = messages if messages is not None else []
    if is_motion_file(path):
        return MotionDriving(path, runtime)
    if is_image_path(path):
        return ImageDriving(path, runtime, size, crop=crop)
    return VideoDriving(path, runtime, size, crop=crop, detect_every=detect_every, messages=messages)


class VideoDriving:
    """A driving video: decoded, face-tracked and cropped as it streams; keypoints per batch."""

    has_pixels = True
    is_image = False

    def __init__(self, path: str, runtime, size: int, *, crop: bool, detect_every: int, messages: list[str]):
        self.path, self.runtime, self.size = path, runtime, size
        self.crop, self.detect_every, self.messages = crop, detect_every, messages
        info = probe_video(path)
        if info.num_frames == 0:
            raise DaganError(f"{path} has no video frames")
        self.frame_rate: Fraction = info.frame_rate
        self.num_frames = info.num_frames
        self.audio = path if info.has_audio else None

    def crops(self, messages: list[str] | None = None, profile: Profile | None = None) -> Iterator[np.ndarray]:
        """read → track → crop: S×S×3 face crops of every frame (whole frames resized with crop=False)."""
        return driving_crops(self.path, self.size, crop=self.crop, detect_every=self.detect_every,
                             messages=messages if messages is not None else [], profile=profile)

    items = crops

    def batches(self, batch_size: int) -> Iterator[Batch]:
        for crops in batched(self.crops(self.messages), batch_size):
            yield self._keypoints(crops)

    def _keypoints(self, crops: list[np.ndarray]) -> Batch:
        depth, kp = self.runtime.driving_keypoints(frames_to_tensor(crops, self.runtime.device))
        return crops, depth, kp

    def initial(self, best_frame, source_crop: np.ndarray, source: str) -> tuple[int, Keypoints | None]:
        """(index, keypoints) of the initial frame: None → the first batch's first frame."""
        if best_frame is None:
            return 0, None
        if best_frame == "auto":
            target = source_landmarks(source_crop, source)
            best, best_err, best_crop = None, math.inf, None
            for i, crop in enumerate(self.crops()):
                err = landmark_error(self._landmarks(crop), target)
                if err < best_err:
                    best, best_err, best_crop = i, err, crop
            if best is None:
                raise DaganError(f"--best-frame auto: no facial landmarks found in any frame of {self.path}")
            return best, self._keypoints([best_crop])[2]
        index = int(best_frame)
        if not 0 <= index < max(self.num_frames, 1):
            raise DaganError(f"--best-frame {index} is outside {self.path} (0…{self.num_frames - 1})")
        for i, crop in enumerate(self.crops()):
            if i == index:
                return index, self._keypoints([crop])[2]
        raise DaganError(f"--best-frame {index}: {self.path} has fewer frames")

    @staticmethod
    def _landmarks(crop: np.ndarray) -> np.ndarray | None:
        lm = crop_landmarks(crop)
        return None if lm is None else normalized_landmarks(lm)

    def extract(self, batch_size: int, landmarks: bool = False) -> Motion:
        """The whole video's motion (and normalised landmarks per frame when asked) as a `Motion`."""
        values, jacobians, marks = [], [], []
        for crops, _, kp in self.batches(batch_size):
            values.append(kp.value.cpu().numpy())
            if kp.jacobian is not None:
                jacobians.append(kp.jacobian.cpu().numpy())
            if landmarks:
                for crop in crops:
                    lm = self._landmarks(crop)
                    marks.append(np.full((68, 2), np.nan, np.float32) if lm is None else lm.astype(np.float32))
        if not values:
            raise DaganError(f"{self.path} has no decodable frames")
        return Motion(np.concatenate(values), np.concatenate(jacobians) if jacobians else None, self.frame_rate,
                      runtime_model_id(self.runtime), np.stack(marks) if landmarks else None, Path(self.path).name)


class MotionDriving:
    """A motion file from `dagan extract-motion`: keypoints without pixels."""

    has_pixels = False
    is_image = False
    audio = None

    def __init__(self, path: str, runtime):
        self.path, self.runtime = path, runtime
        self.motion = load_motion(path, runtime_model_id(runtime))
        self.frame_rate = self.motion.frame_rate
        self.num_frames = self.motion.num_frames

    def items(self, messages: list[str] | None = None, profile: Profile | None = None) -> Iterator[Keypoints]:
        """Each frame's keypoints, 1×K×2 (and 1×K×2×2 jacobians)."""
        for t in range(self.num_frames):
            yield self.motion.keypoints(t, t + 1, self.runtime.device)

    def initial(self, best_frame, source_crop: np.ndarray, source: str) -> tuple[int, Keypoints | None]:
        if best_frame is None:
            return 0, None
        if best_frame == "auto":
            if self.motion.landmarks is None:
                raise DaganError(f"--best-frame auto: {self.path} holds no landmarks; extract it with "
                                 "`dagan extract-motion --landmarks`")
            target = source_landmarks(source_crop, source)
            errors = [landmark_error(lm, target) for lm in self.motion.landmarks]
            index = int(np.argmin(errors))
            if not math.isfinite(errors[index]):
                raise DaganError(f"--best-frame auto: no frame of {self.path} had facial landmarks")
        else:
            index = int(best_frame)
            if not 0 <= index < self.num_frames:
                raise DaganError(f"--best-frame {index} is outside {self.path} (0…{self.num_frames - 1})")
        return index, self.motion.keypoints(index, index + 1, self.runtime.device)


class ImageDriving:
    """One driving photo: one output frame, posed like the photo (absolute motion)."""

    has_pixels = True
    is_image = True
    audio = None
    frame_rate = Fraction(25)
    num_frames = 1

    def __init__(self, path: str, runtime, size: int, *, crop: bool):
        self.path, self.runtime = path, runtime
        self.crop, _ = crop_source(read_image(path), size, crop=crop, name=path, messages=[])

    def items(self, messages: list[str] | None = None, profile: Profile | None = None) -> Iterator[np.ndarray]:
        """The one S×S×3 face crop."""
        yield self.crop

    def initial(self, best_frame, source_crop: np.ndarray, source: str) -> tuple[int, Keypoints | None]:
        if best_frame not in (None, 0):
            raise DaganError(f"--best-frame needs a driving video; {self.path} is one image")
        return 0, None
