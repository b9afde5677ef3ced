"""The stages of the animation pipeline, each one job: read → track → crop → networks → compose → write.

`AnimationPipeline.run` chains them over a whole video; a live mode (one webcam frame at a time,
driven by the caller) or a batch job reuses them directly:

    source = prepare_source(runtime, photo, "photo.jpg", crop=True, messages=[])
    motion = MotionTransfer(runtime, source.state)
    compose = Composer(source, runtime.config.image_size)
    for crop in driving_crops:                     # S×S×3 float32 from `crop_frame`
        out = motion([crop])                       # networks: Animated with B = 1
        frame = compose(out, 0, crop)              # H×W×3 uint8, ready for a writer

Frames and crops are numpy H×W×3 (uint8 frames from video, float32 crops in [0, 1]); tensors only
exist inside `MotionTransfer`, which talks to the networks through `Runtime` alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dagan.geometry import Keypoints, normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.inference.face import Box, OneEuroFilter, crop_and_resize, crop_box_from_face, detect_largest_face
from dagan.inference.paste import even_size, paste_back
from dagan.inference.profile import Profile
from dagan.inference.runtime import Runtime
from dagan.inference.tracking import CorrelationFollower, FaceTracker, TrackReport
from dagan.inference.visualize import colorize_depth, draw_keypoints
from dagan.io import iter_frames, iter_frames_with_preview, to_uint8

__all__ = [
    "SourceFace",
    "Animated",
    "frames_to_tensor",
    "crop_source",
    "prepare_source",
    "read_frames",
    "track_faces",
    "driving_crops",
    "crop_frame",
    "MotionTransfer",
    "Composer",
    "batched",
]


@dataclass(frozen=True)
class SourceFace:
    """The photo, prepared once per run.

    Attributes:
        photo: H×W×3 as read (uint8 or float in [0, 1]).
        crop: S×S×3 float32 in [0, 1], the face crop the networks see.
        box: the crop's box in photo pixels (where paste-back puts the result).
        state: the runtime's source state (depth, encoder features, `.keypoints`).
    """

    photo: np.ndarray
    crop: np.ndarray
    box: Box
    state: Any


@dataclass(frozen=True)
class Animated:
    """One batch out of the networks.

    Attributes:
        frames: B×S×S×3 float32 in [0, 1], the generated frames.
        depth: B×1×S×S float32, the driving depth (for the side-by-side panel).
        keypoints: the driving keypoints as detected (B×K×2, smoothed when smoothing is on).
    """

    frames: np.ndarray
    depth: torch.Tensor
    keypoints: Keypoints


def frames_to_tensor(frames: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """B S×S×3 float crops → B×3×S×S float32 on `device`."""
    arr = np.stack([np.asarray(f, dtype=np.float32) for f in frames])  # B×S×S×3
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous().to(device)


# ------------------------------------------------------------------------------------ source


def crop_source(photo: np.ndarray, size: int, *, crop: bool, name: str, messages: list[str]) -> tuple[np.ndarray, Box]:
    """The photo's face crop (S×S×3 float32) and its box; with `crop=False` the whole photo, stretched."""
    h, w = photo.shape[:2]
    if not crop:
        if abs(h - w) > 0.05 * max(h, w):
            messages.append(f"{name} is {w}×{h}, not square; --no-crop stretches it to {size}²")
        return crop_and_resize(photo, Box(0, 0, w, h), size), Box(0, 0, w, h)
    face, count = detect_largest_face(to_uint8(photo), source=name)
    if count > 1:
        messages.append(f"{count} faces in {name}; animating the largest")
    box = crop_box_from_face(face, (w, h))
    return crop_and_resize(photo, box, size), box


def prepare_source(runtime: Runtime, photo: np.ndarray, name: str, *, crop: bool, messages: list[str]) -> SourceFace:
    """Crop the photo and run the networks' once-per-photo part on it."""
    face, box = crop_source(photo, runtime.config.image_size, crop=crop, name=name, messages=messages)
    state = runtime.prepare_source(frames_to_tensor([face], runtime.device))
    return SourceFace(photo, face, box, state)


# ------------------------------------------------------------------------------------ driving


def read_frames(path: str, preview_side: int | None = None) -> Iterator:
    """Read: the driving video's upright H×W×3 uint8 frames, decoded one at a time.

    With `preview_side`, (frame, reduced copy) pairs instead: the copy's longer side is at most
    `preview_side`, scaled by swscale while converting from YUV (for detection and following).
    """
    return iter_frames(path) if preview_side is None else iter_frames_with_preview(path, preview_side)


def track_faces(path: str, detect_every: int, *, follow: bool = True) -> FaceTracker:
    """Track: the face tracker for a driving video (detect every N frames, follow in between)."""
    return FaceTracker(source=path, detect_every=detect_every, follower=CorrelationFollower if follow else None)


def driving_crops(
    path: str,
    size: int,
    *,
    crop: bool,
    detect_every: int,
    messages: list[str],
    profile: Profile | None = None,
) -> Iterator[np.ndarray]:
    """read → track → crop: the driving video's S×S×3 float32 face crops, in order, streamed.

    With `crop=False` every whole frame is resized. Tracking messages (misses, several faces) are
    appended to `messages` once the video has been read to the end; with `profile`, each stage's
    time is added to it.
    """
    clock = profile if profile is not None else Profile()
    if not crop:
        for frame in clock.iterate("decode", read_frames(path)):
            with clock.stage("crop"):
                face = crop_frame(frame, None, size)
            yield face
        return
    tracker = track_faces(path, detect_every)
    frames = lambda: clock.iterate("decode", read_frames(path, tracker.max_side))  # noqa: E731
    for tracked in clock.iterate("detect/track", tracker.track(frames)):
        with clock.stage("crop"):
            face = crop_frame(tracked.frame, tracked.crop_box, size)
        yield face
    messages.extend(tracker.report.messages())
    clock.notes.append(tracking_note(tracker.report))


def tracking_note(report: TrackReport) -> str:
    """One line on how often full detection ran, for the profile."""
    return (f"face detector ran on {report.detector_runs} of {report.frames} frames; the tracker followed "
            f"{report.followed} and lost the face {report.lost} time(s)")


def crop_frame(frame: np.ndarray, box: Box | None, size: int) -> np.ndarray:
    """Crop: the `box` of a full frame (None: the whole frame) resized to S×S×3 float32."""
    if box is None:
        h, w = frame.shape[:2]
        box = Box(0, 0, w, h)
    return crop_and_resize(frame, box, size)


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ------------------------------------------------------------------------------------ networks


class MotionTransfer:
    """Networks: driving crops → generated frames, with the source's motion normalisation.

    Keeps the per-video state: the initial driving keypoints (the first frame seen, unless given),
    the movement scale computed from them once, and the optional One-Euro keypoint smoother.

    Args:
        runtime: the networks.
        source_state: `runtime.prepare_source(...)` of the photo.
        relative: relative motion against the initial driving frame (else absolute keypoints).
        adapt_movement_scale: scale relative motion by the keypoint hull-area ratio.
        initial: keypoints of the initial driving frame (1×K×2), e.g. a chosen best frame.
        smoother: One-Euro filter applied to each frame's flattened keypoints and jacobians.
        profile: adds the time of "depth+keypoints" and "generator" to it.
    """

    def __init__(
        self,
        runtime: Runtime,
        source_state: Any,
        *,
        relative: bool = True,
        adapt_movement_scale: bool = True,
        initial: Keypoints | None = None,
        smoother: OneEuroFilter | None = None,
        profile: Profile | None = None,
    ):
        self.runtime = runtime
        self.profile = profile if profile is not None else Profile()
        self.state = source_state
        self.relative = relative
        self.adapt = relative and adapt_movement_scale
        self.initial = initial
        self.smoother = smoother
        self.scale: float | None = None

    def keypoints(self, crops: list[np.ndarray]) -> tuple[torch.Tensor, Keypoints]:
        """Depth B×1×S×S and keypoints of B crops (S×S×3), as the runtime returns them."""
        with self.profile.stage("depth+keypoints"):
            return self.runtime.driving_keypoints(frames_to_tensor(crops, self.runtime.device))

    def generate(self, kp: Keypoints) -> np.ndarray:
        """Driving keypoints (B×K×2) → B×S×S×3 float32 frames; fixes the initial frame on first use."""
        source_kp = self.state.keypoints
        if self.initial is None:
            self.initial = kp[0:1]
        if self.scale is None:
            self.scale = movement_scale(source_kp, self.initial) if self.adapt else 1.0
        kp_norm = normalize_keypoints(source_kp, kp, self.initial, relative=self.relative, scale=self.scale)
        with self.profile.stage("generator"):
            return self.runtime.generate(self.state, kp_norm).permute(0, 2, 3, 1).cpu().numpy()  # B×S×S×3

    def __call__(self, crops: list[np.ndarray]) -> Animated:
        depth, kp = self.keypoints(crops)
        if self.smoother is not None:
            kp = smooth_keypoints(self.smoother, kp)
        return Animated(self.generate(kp), depth, kp)


def smooth_keypoints(smoother: OneEuroFilter, kp: Keypoints) -> Keypoints:
    """Run each frame's keypoints (and jacobians), flattened, through a One-Euro filter, in order."""
    values, jacs = [], []
    for i in range(kp.value.shape[0]):
        parts = [kp.value[i].reshape(-1)]
        if kp.jacobian is not None:
            parts.append(kp.jacobian[i].reshape(-1))
        flat = torch.cat(parts).cpu().numpy().astype(np.float64)
        smoothed = torch.from_numpy(smoother(flat)).to(kp.value)
        n = kp.value[i].numel()
        values.append(smoothed[:n].view_as(kp.value[i]))
        if kp.jacobian is not None:
            jacs.append(smoothed[n:].view_as(kp.jacobian[i]))
    return Keypoints(torch.stack(values), torch.stack(jacs) if jacs else None)


# ------------------------------------------------------------------------------------ compose


class Composer:
    """Compose: one generated frame → the output frame (crop, pasted into the photo, or panels).

    Args:
        source: the prepared photo.
        size: the networks' side S.
        paste: blend the result back into the full photo (output: the photo's size, rounded even).
        side_by_side: source | driving | result | depth | keypoints panels (output: 5S × S).
    """

    def __init__(self, source: SourceFace, size: int, *, paste: bool = False, side_by_side: bool = False):
        if paste and side_by_side:
            raise ValueError("paste and side_by_side cannot be combined")
        self.source = source
        self.paste = paste
        self.side_by_side = side_by_side
        self.source_u8 = to_uint8(source.crop)
        if paste:
            self.output_size = even_size(source.photo.shape[1], source.photo.shape[0])
        elif side_by_side:
            self.output_size = (5 * size, size)
        else:
            self.output_size = (size, size)

    def __call__(self, animated: Animated, i: int, driving_crop: np.ndarray) -> np.ndarray:
        """Frame `i` of a batch → H×W×3 uint8 of `output_size` (w, h)."""
        pred = animated.frames[i]
        if self.paste:
            w, h = self.output_size
            return to_uint8(paste_back(self.source.photo, pred, self.source.box)[:h, :w])
        if not self.side_by_side:
            return to_uint8(pred)
        driving_u8 = to_uint8(driving_crop)
        depth = colorize_depth(animated.depth[i, 0].float().cpu().numpy())
        keypoints = draw_keypoints(driving_u8, animated.keypoints.value[i].cpu().numpy())
        return np.concatenate([self.source_u8, driving_u8, to_uint8(pred), depth, keypoints], axis=1)  # S×5S×3
