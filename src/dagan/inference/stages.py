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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dagan.geometry import Keypoints, normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.errors import DaganError
from dagan.inference.face import Box, OneEuroFilter, crop_and_resize, crop_box_from_face, detect_faces, \
    detect_largest_face
from dagan.inference.group import select_faces
from dagan.inference.paste import PasteBack, PasteFaces, even_size
from dagan.inference.profile import Profile
from dagan.inference.runtime import Runtime
from dagan.inference.follow import FourierFollower
from dagan.inference.tracking import FaceTracker, Follower, TrackReport
from dagan.inference.visualize import colorize_depth, draw_keypoints
from dagan.io import iter_frames, iter_frames_with_preview, to_uint8
from dagan.io.yuv import YuvFrame

__all__ = [
    "SourceFace",
    "Animated",
    "frames_to_tensor",
    "crop_source",
    "prepare_source",
    "prepare_faces",
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
        number: the face's number in the photo (1-based, left to right; 1 without detection).
    """

    photo: np.ndarray
    crop: np.ndarray
    box: Box
    state: Any
    number: int = 1


@dataclass(frozen=True)
class Animated:
    """One batch out of the networks.

    Attributes:
        frames: B×S×S×3 float32 in [0, 1], the generated frames.
        depth: B×1×S×S float32, the driving depth (for the side-by-side panel).
        keypoints: the driving keypoints as detected (B×K×2, smoothed when smoothing is on).
        faces: F×B×S×S×3, every face's frames when several faces are animated (frames = faces[0]).
    """

    frames: np.ndarray
    depth: torch.Tensor | None  # None when the motion came from a motion file
    keypoints: Keypoints
    faces: np.ndarray | None = None

    @property
    def per_face(self) -> np.ndarray:
        """F×B×S×S×3 (F = 1 for a single face)."""
        return self.faces if self.faces is not None else self.frames[None]


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


def prepare_faces(runtime: Runtime, photo: np.ndarray, name: str, *, crop: bool, faces: str | tuple[int, ...],
                  messages: list[str]) -> list[SourceFace]:
    """The selected faces of a (group) photo, each cropped and prepared once, in face-number order.

    `faces` is a `parse_faces` result ("largest", "all" or 1-based numbers, left to right).
    """
    if faces == "largest":
        if not crop:
            return [prepare_source(runtime, photo, name, crop=False, messages=messages)]
        found = detect_faces(to_uint8(photo))
        chosen = select_faces(found, faces, name)
        if len(found) > 1:
            messages.append(f"{len(found)} faces in {name}; animating the largest (face {chosen[0][0]}; "
                            "--faces all animates every face)")
    elif not crop:
        raise DaganError("--faces needs face detection and cannot be combined with --no-crop")
    else:
        chosen = select_faces(detect_faces(to_uint8(photo)), faces, name)
    h, w = photo.shape[:2]
    prepared = []
    for number, face in chosen:
        box = crop_box_from_face(face, (w, h))
        face_crop = crop_and_resize(photo, box, runtime.config.image_size)
        state = runtime.prepare_source(frames_to_tensor([face_crop], runtime.device))
        prepared.append(SourceFace(photo, face_crop, box, state, number))
    return prepared


# ------------------------------------------------------------------------------------ driving


def read_frames(path: str, preview_side: int | None = None) -> Iterator:
    """Read: the driving video's upright H×W×3 uint8 frames, decoded one at a time.

    With `preview_side`, (frame, reduced copy) pairs instead: the copy, h×w gray, has its longer
    side at most `preview_side`, scaled by swscale from the luma plane (for detection and following),
    and the frame is kept as its YUV planes (`YuvFrame`) where it can be, for `crop_frame` to convert
    only the crop to RGB.
    """
    if preview_side is None:
        return iter_frames(path)
    return iter_frames_with_preview(path, preview_side, gray=True, planar=True)


def track_faces(path: str, detect_every: int, *, follow: bool = True,
                follower: Callable[[], Follower] = FourierFollower) -> FaceTracker:
    """Track: the face tracker for a driving video (detect every N frames, follow in between).

    The default follower is `FourierFollower` (position only, the size from the last detection):
    on the 1080p benchmark scene tracking cost 1.8 ms of CPU per frame with it and 4.3 with dlib's
    `CorrelationFollower`, at a similar distance from per-frame detection
    (`benchmarks/tracking_accuracy.py`; the size gap is larger: it waits for the next detection).
    """
    return FaceTracker(source=path, detect_every=detect_every, follower=follower if follow else None)


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


def crop_frame(frame: np.ndarray | YuvFrame, box: Box | None, size: int) -> np.ndarray:
    """Crop: the `box` of a full frame (RGB or YUV planes; None: the whole frame) resized to S×S×3 float32."""
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
    """Networks: driving crops (or keypoints) → generated frames, with the source's motion normalisation.

    Keeps the per-video state: the initial driving keypoints (the first frame seen, unless given),
    the movement scale computed from them once per face, and the optional One-Euro keypoint smoother.
    Several sources (the faces of a group photo) are driven by the same keypoints and run as one
    generator batch of F·B rows where the runtime offers `stack_states`.

    Args:
        runtime: the networks.
        source_state: `runtime.prepare_source(...)` of the photo, or a list of them (one per face).
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
        self.states = list(source_state) if isinstance(source_state, (list, tuple)) else [source_state]
        self.state = self.states[0]
        self.relative = relative
        self.adapt = relative and adapt_movement_scale
        self.initial = initial
        self.smoother = smoother
        self.scales: list[float] | None = None
        self._stacked: dict[int, Any] = {}

    @property
    def scale(self) -> float | None:
        """The first face's movement scale (None until the initial frame is known)."""
        return None if self.scales is None else self.scales[0]

    def reset(self) -> None:
        """Forget the initial frame and the movement scales: the next frame becomes the reference."""
        self.initial = None
        self.scales = None

    def keypoints(self, crops: list[np.ndarray]) -> tuple[torch.Tensor, Keypoints]:
        """Depth B×1×S×S and keypoints of B crops (S×S×3), as the runtime returns them."""
        with self.profile.stage("depth+keypoints"):
            return self.runtime.driving_keypoints(frames_to_tensor(crops, self.runtime.device))

    def generate_faces(self, kp: Keypoints) -> np.ndarray:
        """Driving keypoints (B×K×2) → F×B×S×S×3 float32 frames; fixes the initial frame on first use."""
        if self.initial is None:
            self.initial = kp[0:1]
        if self.scales is None:
            self.scales = [movement_scale(s.keypoints, self.initial) if self.adapt else 1.0 for s in self.states]
        norms = [normalize_keypoints(s.keypoints, kp, self.initial, relative=self.relative, scale=scale)
                 for s, scale in zip(self.states, self.scales, strict=True)]
        faces, b = len(norms), kp.value.shape[0]
        with self.profile.stage("generator"):
            if faces == 1:
                out = self.runtime.generate(self.state, norms[0])
            elif hasattr(self.runtime, "stack_states"):
                if b not in self._stacked:
                    self._stacked[b] = self.runtime.stack_states(self.states, b)
                out = self.runtime.generate(self._stacked[b], Keypoints.cat(norms))  # (F·B)×3×S×S, face-major
            else:
                out = torch.cat([self.runtime.generate(s, k) for s, k in zip(self.states, norms, strict=True)])
            out = out.permute(0, 2, 3, 1).cpu().numpy()  # (F·B)×S×S×3
        return out.reshape(faces, b, *out.shape[1:])

    def generate(self, kp: Keypoints) -> np.ndarray:
        """Driving keypoints (B×K×2) → B×S×S×3 float32 frames of the first face."""
        return self.generate_faces(kp)[0]

    def animate(self, depth: torch.Tensor | None, kp: Keypoints) -> Animated:
        """Networks from driving keypoints on (a motion file has no depth): smoothing, then generation."""
        if self.smoother is not None:
            kp = smooth_keypoints(self.smoother, kp)
        faces = self.generate_faces(kp)
        return Animated(faces[0], depth, kp, faces if len(faces) > 1 else None)

    def __call__(self, crops: list[np.ndarray]) -> Animated:
        return self.animate(*self.keypoints(crops))


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
    """Compose: generated frames → the output frames (crops, pasted into the photo, or panels).

    Args:
        source: the prepared photo's face, or its faces (a group photo).
        size: the networks' side S.
        paste: blend every face back into the full photo (output: the photo's size, rounded even).
        side_by_side: source | driving | result | depth | keypoints panels (output: 5S × S).
        even: round the pasted size down to even numbers (what H.264 needs; not for a picture).

    Pasted, a frame is one output; otherwise each face is its own output stream (`streams`).
    """

    def __init__(self, source: SourceFace | list[SourceFace], size: int, *, paste: bool = False,
                 side_by_side: bool = False, even: bool = True):
        if paste and side_by_side:
            raise ValueError("paste and side_by_side cannot be combined")
        self.faces = list(source) if isinstance(source, (list, tuple)) else [source]
        self.source = self.faces[0]
        self.paste = paste
        self.side_by_side = side_by_side
        photo = self.source.photo
        self.paster = None
        if paste:
            boxes = [f.box for f in self.faces]
            self.paster = PasteBack(photo, boxes[0]) if len(boxes) == 1 else PasteFaces(photo, boxes)
            h, w = photo.shape[:2]
            self.output_size = even_size(w, h) if even else (w, h)
        elif side_by_side:
            self.output_size = (5 * size, size)
        else:
            self.output_size = (size, size)

    @property
    def streams(self) -> int:
        """Output frames per input frame: 1 pasted, else one per face."""
        return 1 if self.paste else len(self.faces)

    def outputs(self, animated: Animated, i: int, driving_crop: np.ndarray | None) -> list[np.ndarray]:
        """Frame `i` of a batch → `streams` H×W×3 uint8 frames of `output_size` (w, h)."""
        preds = animated.per_face[:, i]  # F×S×S×3
        if self.paster is not None:
            w, h = self.output_size
            pasted = self.paster(preds[0]) if len(self.faces) == 1 else self.paster(list(preds))
            return [pasted[:h, :w]]
        if not self.side_by_side:
            return [to_uint8(p) for p in preds]
        driving_u8 = to_uint8(driving_crop)
        depth = colorize_depth(animated.depth[i, 0].float().cpu().numpy())
        keypoints = draw_keypoints(driving_u8, animated.keypoints.value[i].cpu().numpy())
        return [np.concatenate([to_uint8(f.crop), driving_u8, to_uint8(p), depth, keypoints], axis=1)  # S×5S×3
                for f, p in zip(self.faces, preds, strict=True)]

    def __call__(self, animated: Animated, i: int, driving_crop: np.ndarray | None) -> np.ndarray:
        """Frame `i` of a batch → the first output's H×W×3 uint8 frame."""
        return self.outputs(animated, i, driving_crop)[0]
