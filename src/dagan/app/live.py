"""Live webcam animation: one camera frame in, one animated frame out, through the `Runtime` calls.

Per frame: crop the face (detected every `detect_every` frames on a downscaled copy, followed by
the fast pipeline's correlation follower in between, the crop smoothed), then the pipeline's
`MotionTransfer` stage: `runtime.driving_keypoints`, `normalize_keypoints` relative to the neutral
pose, `runtime.generate`. The neutral pose is the first frame after start or after
`set_neutral()`: relative motion needs a reference frame, and live it is the user's own pose.

`LatestFrame` is the hand-off between the socket reader and the worker: it holds one frame, so a
frame that arrives while the model is busy replaces the waiting one (counted as dropped) and the
latency stays bounded by one frame's work instead of growing with a queue.

Kept apart from the server: `LiveSession.process` is the only per-frame call it makes.
"""

from __future__ import annotations

import asyncio
import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dagan.errors import DaganError
from dagan.inference.face import Box, crop_box_from_face, detect_faces
from dagan.inference.runtime import Runtime
from dagan.inference.stages import MotionTransfer, crop_frame, prepare_source
from dagan.inference.tracking import CorrelationFollower
from dagan.io import to_uint8

MAX_CAMERA_SIDE = 1280


def decode_jpeg(data: bytes, what: str = "camera frame", max_side: int = MAX_CAMERA_SIDE) -> np.ndarray:
    """JPEG/PNG/WebP bytes → H×W×3 uint8 RGB; a DaganError for anything else or anything huge."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if max(im.size) > max_side:
                raise DaganError(f"{what} is {im.size[0]}×{im.size[1]}; at most {max_side} pixels a side")
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):
        raise DaganError(f"{what} is not a readable image") from None


def encode_jpeg(frame: np.ndarray, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class CropTracker:
    """Square face crop for a camera stream, one frame at a time.

    dlib detection every `detect_every` frames on a copy of at most `max_side` pixels; dlib's
    `CorrelationFollower` follows the face in between, size included (someone at a webcam leans in
    and out; a lost face is detected again on that frame). The crop (centre, side) is smoothed
    exponentially against jitter. Until a face is found the centred square is used.
    """

    def __init__(self, detect_every: int = 10, smoothing: float = 0.5, max_side: int = 320):
        self.detect_every = max(1, detect_every)
        self.smoothing = smoothing
        self.max_side = max_side
        self.follower = CorrelationFollower()
        self.count = 0
        self.following = False
        self.crop: np.ndarray | None = None  # (cx, cy, side)

    def _face(self, frame: np.ndarray) -> Box | None:
        if self.following and self.count % self.detect_every:
            face = self.follower.update(frame)
            if face is not None:
                return face
        boxes = detect_faces(frame, max_side=self.max_side, upsample=0)
        self.following = bool(boxes)
        if boxes:
            self.follower.start(frame, boxes[0])
        return boxes[0] if boxes else None

    def __call__(self, frame: np.ndarray) -> Box:
        h, w = frame.shape[:2]
        face = self._face(frame)
        self.count += 1
        if face is not None:
            box = crop_box_from_face(face, (w, h))
            target = np.array([*box.center, box.width])
            self.crop = target if self.crop is None else self.smoothing * self.crop + (1 - self.smoothing) * target
        if self.crop is None:
            return Box.square(w / 2, h / 2, min(w, h))
        return Box.square(*self.crop)


class LiveSession:
    """A source photo animated by camera frames; `process(frame)` is one frame of work.

    Built from the file pipeline's stages: `prepare_source` crops the photo and runs the networks'
    once-per-photo part, `MotionTransfer` moves the source keypoints by the driving motion relative
    to its initial (here: neutral) keypoints and generates.
    """

    def __init__(self, runtime: Runtime, photo: np.ndarray, *, relative: bool = True, adapt_scale: bool = True,
                 detect_every: int = 10):
        self.size = runtime.config.image_size
        self.source = prepare_source(runtime, photo, "the source photo", crop=True, messages=[])
        self.motion = MotionTransfer(runtime, self.source.state, relative=relative, adapt_movement_scale=adapt_scale)
        self.tracker = CropTracker(detect_every)

    def set_neutral(self) -> None:
        """The next frame becomes the reference pose of relative motion (and of the movement scale)."""
        self.motion.reset()

    @torch.no_grad()
    def process(self, frame: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 camera frame → S×S×3 uint8 animated source."""
        crop = crop_frame(frame, self.tracker(frame), self.size)  # S×S×3 float32
        return to_uint8(self.motion([crop]).frames[0])


class LatestFrame:
    """A one-frame mailbox: `put` replaces what is waiting (a drop), `get` waits for the next frame."""

    def __init__(self):
        self._item = None
        self._event = asyncio.Event()
        self.dropped = 0

    def put(self, item) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self._event.set()

    async def get(self):
        await self._event.wait()
        self._event.clear()
        item, self._item = self._item, None
        return item
