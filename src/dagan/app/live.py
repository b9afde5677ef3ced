"""Live webcam animation: one camera frame in, one animated frame out, through the `Runtime` calls.

Per frame: crop the face (detected every `detect_every` frames on a downscaled copy, the crop
smoothed in between), `runtime.driving_keypoints`, `normalize_keypoints` relative to the neutral
pose, `runtime.generate`. The neutral pose is the first frame after start or after
`set_neutral()`: relative motion needs a reference frame, and live it is the user's own pose.

`LatestFrame` is the hand-off between the socket reader and the worker: it holds one frame, so a
frame that arrives while the model is busy replaces the waiting one (counted as dropped) and the
latency stays bounded by one frame's work instead of growing with a queue.

Kept apart from the file pipeline on purpose: the streaming stages of the fast pipeline can replace
`LiveSession.process` without touching the server.
"""

from __future__ import annotations

import asyncio
import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dagan.errors import DaganError
from dagan.geometry import normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.inference.face import Box, crop_and_resize, crop_box_from_face, detect_faces, detect_largest_face
from dagan.inference.runtime import Runtime
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


def _tensor(crop: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(crop).permute(2, 0, 1)[None].contiguous().to(device)  # 1×3×S×S


class CropTracker:
    """Square face crop for a camera stream: detect every N frames, exponential smoothing between."""

    def __init__(self, detect_every: int = 5, smoothing: float = 0.5, max_side: int = 320):
        self.detect_every = max(1, detect_every)
        self.smoothing = smoothing
        self.max_side = max_side
        self.count = 0
        self.crop: np.ndarray | None = None  # (cx, cy, side)
        self.face_found = False

    def __call__(self, frame: np.ndarray) -> Box:
        h, w = frame.shape[:2]
        if self.crop is None or not self.face_found or self.count % self.detect_every == 0:
            boxes = detect_faces(frame, max_side=self.max_side, upsample=0)
            if boxes:
                box = crop_box_from_face(boxes[0], (w, h))
                target = np.array([*box.center, box.width])
                first = not self.face_found or self.crop is None
                self.crop = target if first else self.smoothing * self.crop + (1 - self.smoothing) * target
                self.face_found = True
        self.count += 1
        if self.crop is None:  # no face yet: the centred square
            side = min(w, h)
            return Box.square(w / 2, h / 2, side)
        return Box.square(*self.crop)


class LiveSession:
    """A source photo animated by camera frames; `process(frame)` is one frame of work."""

    def __init__(self, runtime: Runtime, photo: np.ndarray, *, relative: bool = True, adapt_scale: bool = True,
                 detect_every: int = 5):
        self.runtime = runtime
        self.size = runtime.config.image_size
        self.relative = relative
        self.adapt_scale = adapt_scale
        face, _ = detect_largest_face(photo, source="the source photo")
        box = crop_box_from_face(face, (photo.shape[1], photo.shape[0]))
        self.source_crop = to_uint8(crop_and_resize(photo, box, self.size))
        with torch.no_grad():
            self.state = runtime.prepare_source(_tensor(self.source_crop.astype(np.float32) / 255, runtime.device))
        self.tracker = CropTracker(detect_every)
        self.neutral = None
        self.scale = 1.0

    def set_neutral(self) -> None:
        """The next frame becomes the reference pose of relative motion."""
        self.neutral = None

    @torch.no_grad()
    def process(self, frame: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 camera frame → S×S×3 uint8 animated source."""
        crop = crop_and_resize(frame, self.tracker(frame), self.size)  # S×S×3 float32
        _, kp = self.runtime.driving_keypoints(_tensor(crop, self.runtime.device))
        if self.neutral is None:
            self.neutral = kp
            self.scale = movement_scale(self.state.keypoints, kp) if self.adapt_scale else 1.0
        kp_norm = normalize_keypoints(self.state.keypoints, kp, self.neutral, relative=self.relative,
                                      scale=self.scale)
        out = self.runtime.generate(self.state, kp_norm)  # 1×3×S×S in [0, 1]
        return to_uint8(out[0].permute(1, 2, 0).cpu().numpy())


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
