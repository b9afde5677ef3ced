"""Video reading: probe, and streaming upright RGB frames (writing lives in `dagan.io.writers`).

Reading never holds more than a few decoded frames in memory. Writers check the output path and
reserve a temp file beside it before any work, write there, and rename on success only; an
exception inside the `with` block discards the temp file and leaves an existing output untouched.

Design decisions a caller may rely on:

* **Rotation.** Phone videos store sensor-oriented frames plus a display matrix. `iter_frames`
  applies it (rotations by multiples of 90° and mirrors; other angles snap to the nearest right
  angle), so portrait clips come out upright, like `ffmpeg`'s autorotate.
* **Broken files.** A file that cannot be opened, has no video stream, or whose first frame cannot
  be decoded raises `DaganError`. If decoding breaks *after* at least one frame, `iter_frames`
  warns (`VideoDecodeWarning`, naming the file and frame index) and stops, keeping the frames
  decoded so far: a truncated phone recording is still usable as a driving video. The same warning
  is issued when the container promised clearly more frames than could be decoded (more than
  2 frames and 1% short: edit lists may legitimately hide a frame or two).
"""

from __future__ import annotations

import gc
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from dagan.errors import DaganError
from dagan.io.yuv import YuvFrame, yuv_frame

__all__ = [
    "VideoInfo",
    "VideoDecodeWarning",
    "probe_video",
    "iter_frames",
    "iter_frames_with_preview",
    "display_orientation",
    "apply_display_matrix",
    "VIDEO_SUFFIXES",
]

VIDEO_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
_DEFAULT_FPS = 25.0  # used only when a container carries no usable rate at all


class VideoDecodeWarning(UserWarning):
    """Decoding stopped early; the frames decoded before the problem are still returned."""


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns about a video file.

    Attributes:
        path: the probed file.
        width, height: size of the frames `iter_frames(rotate=True)` yields, i.e. after rotation.
        fps: average frame rate (frames / duration, so variable-frame-rate clips get their mean);
            falls back to the guessed/base rate, then to 25.
        frame_rate: the same rate as an exact Fraction (30000/1001 stays exact), for writers.
        num_frames: frame count from the container header (exact for mp4/mov); when the container
            has none (some mkv/webm/avi), estimated as round(duration × fps) and
            `frames_estimated` is True.
        rotation: clockwise degrees (0, 90, 180, 270) the stored frames are turned for display,
            the convention of the legacy `rotate` tag (portrait iPhone clips: 90).
        mirrored: the display matrix also mirrors the picture.
        has_audio: the file has at least one audio stream.
        duration: seconds, from the video stream, else the container, else num_frames / fps.
        codec, audio_codec: decoder names (audio_codec is None without audio).
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_rate: Fraction
    num_frames: int
    frames_estimated: bool
    rotation: int
    mirrored: bool
    has_audio: bool
    duration: float
    codec: str
    audio_codec: str | None


# --------------------------------------------------------------------------------------------
# Display matrix (rotation side data)


def display_orientation(matrix: Sequence[int] | None) -> tuple[bool, bool, bool]:
    """Reduce an FFmpeg display matrix to array operations that show the frame upright.

    Args:
        matrix: 9 int32 values in FFmpeg's `AV_FRAME_DATA_DISPLAYMATRIX` layout (16.16 fixed point;
            display point (x', y') = (a·x + c·y, b·x + d·y) with a, b, c, d = m[0], m[1], m[3], m[4],
            in image coordinates with y pointing down), or None for "no side data".

    Returns:
        (transpose, flip_x, flip_y), to apply in that order: swap the two image axes, then reverse
        columns, then reverse rows. Non-right-angle rotations snap to the nearest right angle.
    """
    if matrix is None:
        return False, False, False
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    if abs(a) + abs(d) >= abs(b) + abs(c):
        return False, a < 0, d < 0
    return True, c < 0, b < 0


def _orientation_degrees(transpose: bool, flip_x: bool, flip_y: bool) -> tuple[int, bool]:
    """(transpose, flip_x, flip_y) → (clockwise rotation in degrees, mirrored)."""
    table = {
        (False, False, False): (0, False),
        (False, True, True): (180, False),
        (True, True, False): (90, False),
        (True, False, True): (270, False),
        (False, True, False): (0, True),
        (False, False, True): (180, True),
        (True, False, False): (90, True),
        (True, True, True): (270, True),
    }
    return table[(transpose, flip_x, flip_y)]


def apply_display_matrix(image: np.ndarray, matrix: Sequence[int] | None) -> np.ndarray:
    """Turn an H×W×C frame upright according to its display matrix (see `display_orientation`)."""
    transpose, flip_x, flip_y = display_orientation(matrix)
    out = image
    if transpose:
        out = out.swapaxes(0, 1)
    if flip_x:
        out = out[:, ::-1]
    if flip_y:
        out = out[::-1]
    return np.ascontiguousarray(out) if out is not image else image


def _frame_display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    try:
        side = frame.side_data.get("DISPLAYMATRIX")
    except (KeyError, ValueError):
        side = None
    if side is None:
        return None
    values = np.frombuffer(bytes(side), dtype=np.int32)
    return values if values.size == 9 else None


# --------------------------------------------------------------------------------------------
# Reading


def _open_input(path: str | os.PathLike) -> tuple[Path, av.container.InputContainer]:
    p = Path(path)
    if not p.exists():
        raise DaganError(f"video not found: {p}")
    if p.is_dir():
        raise DaganError(f"expected a video file but {p} is a directory")
    if p.stat().st_size == 0:
        raise DaganError(f"not a readable video: {p} is empty (0 bytes)")
    try:
        container = av.open(str(p), mode="r")
    except av.FFmpegError as exc:
        raise DaganError(f"not a readable video: {p} ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise DaganError(f"no video stream in {p}")
    return p, container


def _reason(exc: BaseException) -> str:
    """A short human reason from an FFmpeg error (strip the errno/filename decoration)."""
    msg = getattr(exc, "strerror", None) or str(exc)
    return str(msg).strip() or type(exc).__name__


def _is_positive(rate: Fraction | None) -> bool:
    return rate is not None and rate > 0 and math.isfinite(float(rate))


def _frame_rate(stream: av.video.stream.VideoStream, duration: float | None) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if _is_positive(rate) and 1 <= float(rate) <= 1000:
            return Fraction(rate)
    if duration and stream.frames > 1:
        return Fraction(stream.frames / duration).limit_denominator(1001)
    return Fraction(_DEFAULT_FPS)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Describe a video file; decodes only its first frame (to read rotation and check it decodes).

    Raises:
        DaganError: missing, empty, not a video, no video stream, or the first frame does not decode.
    """
    p, container = _open_input(path)
    with container:
        stream = container.streams.video[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        rate = _frame_rate(stream, duration)
        num_frames, estimated = int(stream.frames or 0), False
        if num_frames <= 0:
            num_frames, estimated = max(1, round((duration or 0.0) * float(rate))), True
        if duration is None or duration <= 0:
            duration = num_frames / float(rate)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise DaganError(f"cannot decode frame 0 of {p}: {_reason(exc)}") from None
        if first is None:
            raise DaganError(f"video has no frames: {p}")
        transpose, flip_x, flip_y = display_orientation(_frame_display_matrix(first))
        rotation, mirrored = _orientation_degrees(transpose, flip_x, flip_y)
        width, height = (first.height, first.width) if transpose else (first.width, first.height)
        del first  # in a reference cycle since its side data was read: free it while it is young (see _decode)
        gc.collect(1)
        audio = container.streams.audio
        return VideoInfo(
            path=p,
            width=width,
            height=height,
            fps=float(rate),
            frame_rate=rate,
            num_frames=num_frames,
            frames_estimated=estimated,
            rotation=rotation,
            mirrored=mirrored,
            has_audio=bool(audio),
            duration=duration,
            codec=stream.codec_context.name,
            audio_codec=audio[0].codec_context.name if audio else None,
        )


def iter_frames(path: str | os.PathLike, rotate: bool = True) -> Iterator[np.ndarray]:
    """Stream the frames of a video as upright RGB arrays.

    The file is opened (and checked) immediately; frames are decoded lazily, one at a time.
    Closing the iterator (or letting it be garbage-collected) closes the file.

    Args:
        path: any container/codec FFmpeg decodes.
        rotate: apply the display matrix so phone videos come out upright.

    Yields:
        H×W×3 uint8 RGB frames.

    Raises:
        DaganError: (on the call) missing / empty / not a video / no video stream;
            (while iterating) frame 0 cannot be decoded or the video has no frames.

    Warns:
        VideoDecodeWarning: decoding broke after some frames (see the module docstring).
    """
    p, container = _open_input(path)
    return _decode(p, container, rotate, rgb_converter())


def rgb_converter():
    """frame → H×W×3 uint8 RGB through one swscale context reused for every frame.

    `frame.to_ndarray(format="rgb24")` sets up a new context per frame, which for 1080p costs
    about three times the conversion itself.
    """
    reformatter = VideoReformatter()
    return lambda frame: reformatter.reformat(frame, format="rgb24").to_ndarray()


def iter_frames_with_preview(
    path: str | os.PathLike, max_side: int, rotate: bool = True, gray: bool = False, planar: bool = False
) -> Iterator[tuple[np.ndarray | YuvFrame, np.ndarray]]:
    """Like `iter_frames`, with each frame also reduced so its longer side is at most `max_side`.

    The reduced copy (for face detection and tracking) is scaled by swscale straight from the
    decoded YUV picture, which costs a fraction of resizing the full RGB frame. Frames already small
    enough come back as the same array twice (RGB) or with their luma (gray). With `gray`, the copy
    is the luma plane alone: a third of the conversion, and what dlib's detector and correlation
    tracker reduce RGB to anyway. With `planar`, the full frame is a `YuvFrame` (its planes, never
    converted whole: crop it with `dagan.inference.face.crop_and_resize`) wherever the video is
    8-bit planar Y'CbCr in a known colorspace, and an RGB array otherwise.

    Yields:
        (H×W×3 or `YuvFrame`, h×w×3) uint8 pairs (h×w with `gray`), both upright; h/H = w/W up to
        rounding.
    """
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16, got {max_side}")
    p, container = _open_input(path)
    to_rgb, shrink = rgb_converter(), VideoReformatter()
    preview_format = "gray" if gray else "rgb24"

    def convert(frame: av.VideoFrame) -> tuple[np.ndarray | YuvFrame, np.ndarray]:
        full = yuv_frame(frame) if planar else None
        if full is None:
            full = to_rgb(frame)  # H×W×3
        scale = min(1.0, max_side / max(frame.width, frame.height))
        if scale == 1.0 and not gray and isinstance(full, np.ndarray):
            return full, full
        size = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        small = shrink.reformat(frame, width=size[0], height=size[1], format=preview_format,
                                interpolation="BILINEAR")
        return full, small.to_ndarray()  # h×w×3 or h×w

    return _decode(p, container, rotate, convert)


def _handed_over(container: av.container.InputContainer, stream) -> Iterator[av.VideoFrame]:
    """`container.decode(stream)`, keeping no reference to a frame once it is yielded (PyAV's own
    generator holds each packet's frames until the next packet), so the caller owns its lifetime."""
    for packet in container.demux(stream):
        frames = packet.decode()
        while frames:
            yield frames.pop(0)


def _decode(p: Path, container: av.container.InputContainer, rotate: bool, convert) -> Iterator:
    """Decode the first video stream, `convert` each frame to an array (or a tuple of arrays)."""
    count = 0
    # The display matrix is read from the first frame only: it is constant within a stream.
    matrix, read_side_data = None, False
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        expected = int(stream.frames or 0)
        frames = _handed_over(container, stream)
        while True:
            try:
                frame = next(frames, None)
            except av.FFmpegError as exc:
                if count == 0:
                    raise DaganError(f"cannot decode frame 0 of {p}: {_reason(exc)}") from None
                warnings.warn(
                    f"{p}: decoding failed at frame {count} ({_reason(exc)}); "
                    f"using the {count} frames decoded before it",
                    VideoDecodeWarning,
                    stacklevel=2,
                )
                return
            if frame is None:
                break
            item = convert(frame)
            if rotate:
                if not read_side_data:
                    matrix, read_side_data = _frame_display_matrix(frame), True
                    # Reading `side_data` left the frame in a reference cycle (frame ↔ its side-data
                    # container) that only the garbage collector frees; freed at an arbitrary later
                    # point, in a forked child (a DataLoader worker), it can deadlock FFmpeg. Freed
                    # now: this is the last reference outside the cycle (see `_handed_over`) and the
                    # cycle is a few allocations old, so collecting the young generations finds it,
                    # in microseconds where a full gc.collect() takes ~80 ms with a model loaded
                    # (measured on the 2-core Intel Xeon).
                    del frame
                    gc.collect(1)
                item = _upright(item, matrix)
            count += 1
            yield item
        if count == 0:
            raise DaganError(f"video has no frames: {p}")
        # Edit lists can legitimately hide a frame or two of the header's count; more is damage.
        if expected - count > max(2, expected // 100):
            warnings.warn(
                f"{p}: the container lists {expected} frames but only {count} could be decoded "
                "(truncated file?); using those",
                VideoDecodeWarning,
                stacklevel=2,
            )
    finally:
        container.close()


def _upright(item, matrix):
    """`apply_display_matrix` on a frame, or on both of a (full, preview) pair."""
    if not isinstance(item, tuple):
        return _upright_one(item, matrix)
    full, small = item
    upright = _upright_one(full, matrix)
    return upright, (upright if small is full else apply_display_matrix(small, matrix))


def _upright_one(image: np.ndarray | YuvFrame, matrix):
    if isinstance(image, YuvFrame):
        return image if matrix is None else image.transformed(lambda plane: apply_display_matrix(plane, matrix))
    return apply_display_matrix(image, matrix)


# --------------------------------------------------------------------------------------------
# Writing


def __getattr__(name: str):
    """The writers moved to `dagan.io.writers`; their old import path keeps working."""
    if name in _WRITER_NAMES:
        from dagan.io import writers

        return getattr(writers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_WRITER_NAMES = {"FrameWriter", "VideoWriter", "GifWriter", "FrameDirWriter", "open_writer"}
