"""Temporally smooth face-crop tracking for videos: detect now and then, follow in between.

`FaceTracker` streams (frame, crop box) with bounded memory. Full detection (dlib HOG) runs every
`detect_every` frames; between detections a follower seeded from the last box follows the face
(`dagan.inference.follow.FourierFollower`, the pipeline's, or `CorrelationFollower`, dlib's
correlation tracker), and a drop in its confidence triggers a detection on that very frame.
Without a follower, crops between detections are interpolated.

Frames may come with a reduced copy for detection and following (`iter_frames_with_preview`):
then no full-size frame is ever resized, and boxes are mapped back to full-frame pixels.
Coordinates follow `dagan.inference.face`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from dagan.errors import DaganError
from dagan.inference.face import DEFAULT_LIFT, DEFAULT_MARGIN, Box, crop_box_from_face, detect_faces, largest_face

if TYPE_CHECKING:
    from dagan.io.yuv import YuvFrame

__all__ = ["TrackedFrame", "TrackReport", "Follower", "CorrelationFollower", "FaceTracker", "track_crops"]


class Follower(Protocol):
    """Follows one face box from frame to frame (all boxes in the pixels of the images given)."""

    def start(self, image: np.ndarray, box: Box) -> None: ...

    def update(self, image: np.ndarray) -> Box | None: ...


class CorrelationFollower:
    """dlib's correlation tracker (DSST: position and scale), with a confidence check.

    `update` returns None (lost: the caller should detect again) when the tracker's
    peak-to-sidelobe ratio falls below `min_psr` (≈ 15–25 while it holds a face; < 7 means the
    correlation peak is no longer distinct), or when the box jumps by more than `max_jump` × its
    side in one frame (centre shift or change of side).

    Args:
        min_psr: lowest peak-to-sidelobe ratio still trusted.
        max_jump: largest plausible change between consecutive frames, as a fraction of the side.
    """

    def __init__(self, min_psr: float = 7.0, max_jump: float = 0.25):
        self.min_psr, self.max_jump = min_psr, max_jump
        self._tracker = None
        self._box: Box | None = None
        self.psr = 0.0

    def start(self, image: np.ndarray, box: Box) -> None:
        import dlib

        self._tracker = dlib.correlation_tracker()
        self._tracker.start_track(np.ascontiguousarray(image), dlib.drectangle(box.x0, box.y0, box.x1, box.y1))
        self._box = box

    def update(self, image: np.ndarray) -> Box | None:
        if self._tracker is None:
            return None
        self.psr = float(self._tracker.update(np.ascontiguousarray(image)))
        p = self._tracker.get_position()
        box = Box(p.left(), p.top(), p.right(), p.bottom(), self.psr)
        previous, self._box = self._box, box
        side = max(previous.width, previous.height)
        shift = math.dist(box.center, previous.center)
        grew = abs(max(box.width, box.height) - side)
        if self.psr < self.min_psr or shift > self.max_jump * side or grew > self.max_jump * side:
            self._tracker = None
            return None
        return box


@dataclass(frozen=True)
class TrackedFrame:
    """One frame with its smoothed crop.

    Attributes:
        index: frame number from 0.
        frame: the original (full-size) frame, as given (an array, or a `YuvFrame`).
        crop_box: smoothed square crop box in frame pixels (may extend beyond the frame).
        face_box: the face found in this frame, in frame pixels: detected, or followed from the
            last detection when `followed`; None where neither ran or the face was missed.
        followed: `face_box` comes from the follower, not the detector.
    """

    index: int
    frame: np.ndarray | YuvFrame
    crop_box: Box
    face_box: Box | None
    followed: bool = False


@dataclass
class TrackReport:
    """What happened while tracking, for the CLI to print (`messages()`) and for profiles."""

    source: str
    frames: int = 0
    detector_runs: int = 0
    misses: int = 0
    multi_face_frames: int = 0
    first_multi_face_frame: int | None = None
    max_faces: int = 0
    followed: int = 0  # frames whose face came from the follower
    lost: int = 0  # times the follower lost confidence (each followed by a detection)

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
    followed: bool = False


class _NoFaceYet(Exception):
    """Internal: too many frames buffered before the first detection."""


def _views(item) -> tuple[np.ndarray, np.ndarray, float]:
    """(full frame, image to detect/follow on, full pixels per view pixel) of a frame or a pair."""
    if isinstance(item, tuple):
        full, view = item
        return full, view, full.shape[1] / view.shape[1]
    return item, item, 1.0


@dataclass
class FaceTracker:
    """Streaming face-crop tracker for videos, with bounded memory.

    Detection runs every `detect_every` frames (and on every frame after a miss, or until the first
    face). In between, with a `follower` (a factory such as `CorrelationFollower`), the face is
    followed from the last box, and detection runs again as soon as the follower loses confidence;
    without one, crops are interpolated linearly between detections. A scheduled detection that
    misses takes the follower's box if it still holds, else the last crop is held; frames before
    the first detection use the first one. Crops (centre and side) are smoothed with a centred
    Gaussian of `smooth_sigma` frames, truncated at `lookahead = ceil(2 × smooth_sigma)` frames,
    so output lags input by at most `lookahead` frames with a follower (`detect_every + lookahead`
    without) and only that many frames are held in memory.

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
        detect: detector replacing `detect_faces` (image → boxes), e.g. for tests.
        follower: zero-argument factory of a `Follower`, or None to interpolate.
    """

    source: str = "video"
    detect_every: int = 1
    margin: float = DEFAULT_MARGIN
    lift: float = DEFAULT_LIFT
    smooth_sigma: float = 2.0
    max_pending: int = 250
    max_side: int = 640
    detect: Callable[[np.ndarray], list[Box]] | None = None
    follower: Callable[[], Follower] | None = None
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

    def track(self, frames: Iterable | Callable[[], Iterable]) -> Iterator[TrackedFrame]:
        """Yield every frame with its smoothed crop box, in order.

        Args:
            frames: H×W×3 frames, or (full, reduced) pairs as `iter_frames_with_preview` yields
                (detection and following then run on the reduced copy); or a zero-argument callable
                returning a fresh iterable of either (e.g. `lambda: iter_frames(path)`), which lifts
                the `max_pending` limit.

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

    def _detect(self, item, previous: Box | None, index: int, expected: Box | None = None) -> Box | None:
        """The face on this frame, or None. `expected`: where the face is thought to be (full pixels)."""
        full, view, scale = _views(item)
        if self.detect is not None:
            boxes = self.detect(view)
        else:
            side = None if expected is None else max(expected.width, expected.height) / scale
            boxes = detect_faces(view, max_side=self.max_side, expected_side=side)
        boxes = [b.scaled(scale) for b in boxes] if scale != 1.0 else boxes
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

    def _scan_for_first_face(self, iterator: Iterator, start: int) -> tuple[int, np.ndarray]:
        index = start - 1
        for index, item in enumerate(iterator, start=start):
            face = self._detect(item, None, index)
            if face is not None:
                return index, self._crop(face, _views(item)[0])
        raise DaganError(f"no face found in any of the {index + 1} frames of {self.source}")

    def _run(self, iterator: Iterator, known_first: tuple[int, np.ndarray] | None):
        L = self.lookahead
        unresolved: deque[_Entry] = deque()  # frames after the last detection, crop not yet known
        resolved: deque[_Entry] = deque()  # crop known: up to L emitted ones (history) + pending
        emitted_in_resolved = 0
        last: tuple[int, np.ndarray] | None = None  # (index, crop) of the last detection
        last_face: Box | None = None
        last_attempt = -(10**9)
        index = -1
        follow = _Following(self.follower)

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
                e = resolved[k]
                yield TrackedFrame(e.index, e.frame, self._smoothed(resolved, k), e.face, e.followed)
                e.frame = None  # the history only needs the crop
                emitted_in_resolved += 1
                while emitted_in_resolved > L:
                    resolved.popleft()
                    emitted_in_resolved -= 1

        for index, item in enumerate(iterator):
            self.report.frames += 1
            frame = _views(item)[0]
            entry = _Entry(index, frame, None)
            if known_first is not None and last is None:
                if index < known_first[0]:  # before the first face, found by an earlier scan
                    entry.crop = known_first[1]
                    resolved.append(entry)
                    yield from emit(False)
                    continue
                last = known_first  # from here on, a miss holds the scanned crop
            was_following, followed = follow.update(item, self.report)
            missed_before = last is not None and last_attempt > last[0]
            attempt = last is None or missed_before or index - last_attempt >= self.detect_every
            if attempt or (was_following and followed is None):  # lost: detect on this very frame
                # a scheduled check of a face still held: its size is known, the search can be cheaper
                expected = followed if attempt and not missed_before and last is not None else None
                attempt, last_attempt = True, index
                entry.face = self._detect(item, last_face, index, expected)
            if entry.face is not None:
                follow.start(item, entry.face)
            elif followed is not None:
                entry.face, entry.followed = followed, True
                self.report.followed += 1
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


class _Following:
    """The tracker's follower state: seeded at each detection, stepped on every frame."""

    def __init__(self, factory: Callable[[], Follower] | None):
        self.factory = factory
        self.follower: Follower | None = None
        self.active = False

    def start(self, item, face: Box) -> None:
        if self.factory is None:
            return
        _, view, scale = _views(item)
        self.follower = self.follower or self.factory()
        self.follower.start(view, face.scaled(1.0 / scale))
        self.active = True

    def update(self, item, report: TrackReport) -> tuple[bool, Box | None]:
        """(a face was being followed, its box in this frame in full-frame pixels or None if lost)."""
        if not self.active:
            return False, None
        _, view, scale = _views(item)
        box = self.follower.update(view)
        if box is None:
            self.active = False
            report.lost += 1
            return True, None
        return True, box.scaled(scale)


def _close(iterator) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def track_crops(frames: Iterable | Callable[[], Iterable], **tracker_options) -> Iterator[TrackedFrame]:
    """Shorthand for `FaceTracker(**tracker_options).track(frames)` (when the report is not needed)."""
    return FaceTracker(**tracker_options).track(frames)
