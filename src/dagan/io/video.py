"""Video reading (probe, streaming upright RGB frames) and writing (H.264 mp4 with audio, GIF, PNG dir).

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
from PIL import Image

from dagan.errors import DaganError
from dagan.io._files import commit, discard, reserve_temp_dir, reserve_temp_file
from dagan.io.image import to_uint8

__all__ = [
    "VideoInfo",
    "VideoDecodeWarning",
    "probe_video",
    "iter_frames",
    "iter_frames_with_preview",
    "display_orientation",
    "apply_display_matrix",
    "FrameWriter",
    "VideoWriter",
    "GifWriter",
    "FrameDirWriter",
    "open_writer",
    "VIDEO_SUFFIXES",
]

VIDEO_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
_REMUX_AUDIO_CODECS = {"aac", "mp3"}  # copied bit-exactly into mp4/mov; anything else → AAC
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
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
    return _decode(p, container, rotate, lambda frame: frame.to_ndarray(format="rgb24"))


def iter_frames_with_preview(
    path: str | os.PathLike, max_side: int, rotate: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Like `iter_frames`, with each frame also reduced so its longer side is at most `max_side`.

    The reduced copy (for face detection and tracking) is scaled by swscale straight from the
    decoded YUV picture, which costs a fraction of resizing the full RGB frame. Frames already small
    enough come back as the same array twice.

    Yields:
        (H×W×3, h×w×3) uint8 RGB pairs, both upright; h/H = w/W up to rounding.
    """
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16, got {max_side}")
    p, container = _open_input(path)

    def convert(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray]:
        full = frame.to_ndarray(format="rgb24")  # H×W×3
        scale = max_side / max(frame.width, frame.height)
        if scale >= 1.0:
            return full, full
        size = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        small = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="BILINEAR")
        return full, small.to_ndarray()  # h×w×3

    return _decode(p, container, rotate, convert)


def _decode(p: Path, container: av.container.InputContainer, rotate: bool, convert) -> Iterator:
    """Decode the first video stream, `convert` each frame to an array (or a tuple of arrays)."""
    count = 0
    # The display matrix is read from the first frame only: it is constant within a stream, and
    # reading `frame.side_data` leaves that frame in a reference cycle. Freeing such a cycle in a
    # forked child (a DataLoader worker) can deadlock FFmpeg, so it is collected here, once per video.
    matrix, read_side_data = None, False
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        expected = int(stream.frames or 0)
        frames = container.decode(stream)
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
        if read_side_data:
            del frame
            gc.collect()


def _upright(item, matrix):
    """`apply_display_matrix` on a frame, or on both of a (full, preview) pair."""
    if not isinstance(item, tuple):
        return apply_display_matrix(item, matrix)
    full, small = item
    upright = apply_display_matrix(full, matrix)
    return upright, (upright if small is full else apply_display_matrix(small, matrix))


# --------------------------------------------------------------------------------------------
# Writing


def _as_fraction(fps: float | Fraction) -> Fraction:
    """Exact frame rate; NTSC-style rates (29.97, 23.976, 59.94) map to n·1000/1001."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        value = float(fps)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        rate = Fraction(value).limit_denominator(1001)
        for base in (24, 30, 48, 60, 120):
            if abs(value - base * 1000 / 1001) < 5e-3:
                rate = Fraction(base * 1000, 1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return rate


def _check_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Validate an H×W×3 frame against size=(w, h) and convert it to uint8."""
    arr = np.asarray(frame)
    w, h = size
    if arr.shape != (h, w, 3):
        raise ValueError(f"expected a frame of shape {(h, w, 3)} (H×W×3), got {arr.shape}")
    return np.ascontiguousarray(to_uint8(arr))


class FrameWriter:
    """Base class: a context manager that commits on clean exit and discards on exception.

    Attributes:
        path: the final output path.
        fps: the exact frame rate.
        size: (width, height).
        frames_written: number of frames accepted so far.
        writes_audio: whether the output will carry an audio track.
    """

    writes_audio = False

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, size: tuple[int, int]):
        self.path = Path(path)
        self.fps = _as_fraction(fps)
        w, h = (int(v) for v in size)
        if w <= 0 or h <= 0:
            raise ValueError(f"size must be positive (w, h), got {size}")
        self.size = (w, h)
        self.frames_written = 0
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        """Append one H×W×3 frame (uint8, or float in [0, 1])."""
        if self._closed:
            raise ValueError(f"writer for {self.path} is closed")
        self._write(_check_frame(frame, self.size))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file and move it into place. Writing zero frames is a DaganError."""
        if self._closed:
            return
        self._closed = True
        if self.frames_written == 0:
            self._discard()
            raise DaganError(f"no frames were written to {self.path}")
        try:
            self._finish()
        except BaseException:
            self._discard()
            raise

    def abort(self) -> None:
        """Discard everything written so far; any pre-existing output is left untouched."""
        if not self._closed:
            self._closed = True
            self._discard()

    def _write(self, frame: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _discard(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class VideoWriter(FrameWriter):
    """H.264 (yuv420p, BT.601 tagged) mp4/mov writer with optional audio copied from another video.

    The output has exactly as many frames as were written, at constant `fps` (an exact Fraction time
    base, so 29.97 is 30000/1001). The moov atom is placed at the front (`+faststart`).

    Audio: when `audio_from` names a file with an audio stream, its first audio stream is copied
    without re-encoding if it is AAC or MP3, otherwise re-encoded to AAC, and interleaved with the
    video as frames are written. It is aligned so that the source's first video frame is time 0
    and trimmed to the output video's duration (exactly for re-encoded audio; for copied audio to
    the last packet that starts before the end, i.e. at most one 1024-sample AAC frame longer). A file without audio
    simply gives a silent output (`writes_audio` is False).

    Args:
        path: output file, .mp4/.m4v/.mov.
        fps: frame rate (float or Fraction).
        size: (width, height); both must be even (yuv420p), callers round with `even_size`.
        audio_from: optional video whose audio track to copy.
        crf: x264 constant rate factor (0 lossless … 51 worst; 18 ≈ visually lossless).
        preset: x264 speed/size preset.

    Raises:
        ValueError: odd or non-positive size, bad fps, frame of the wrong shape (programming errors).
        DaganError: output not writable, unsupported suffix, `audio_from` unreadable.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | Fraction,
        size: tuple[int, int],
        audio_from: str | os.PathLike | None = None,
        crf: int = 18,
        *,
        preset: str = "medium",
    ):
        super().__init__(path, fps, size)
        w, h = self.size
        if w % 2 or h % 2:
            raise ValueError(f"H.264 yuv420p needs even width and height, got {w}×{h}; use even_size()")
        fmt = VIDEO_SUFFIXES.get(self.path.suffix.lower())
        if fmt is None:
            raise DaganError(f"cannot write {self.path}: unsupported video suffix (use .mp4 or .mov)")
        self._audio = None
        self._out = None
        self._tmp = reserve_temp_file(self.path)
        audio_src = None
        try:
            if audio_from is not None:
                audio_src = _AudioSource.open(audio_from)
            self._out = av.open(str(self._tmp), mode="w", format=fmt, options={"movflags": "+faststart"})
            stream = self._out.add_stream(
                "libx264", rate=self.fps, options={"crf": str(int(crf)), "preset": preset}
            )
            stream.width, stream.height = w, h
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = 1 / self.fps
            stream.codec_context.colorspace = 6  # SMPTE 170M = BT.601, what swscale's RGB→YUV uses
            stream.codec_context.color_primaries = 6
            stream.codec_context.color_trc = 6
            stream.thread_type = "AUTO"
            self._video = stream
            if audio_src is not None:
                self._audio = audio_src.attach(self._out)
                self.writes_audio = True
        except BaseException as exc:
            if audio_src is not None and self._audio is None:
                audio_src.close()
            self._discard()
            if isinstance(exc, av.FFmpegError):
                raise DaganError(f"cannot write {self.path}: {_reason(exc)}") from None
            raise

    def _write(self, frame: np.ndarray) -> None:
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts = self.frames_written
        vf.time_base = 1 / self.fps
        try:
            self._out.mux(self._video.encode(vf))
            if self._audio is not None:
                self._audio.write_until(self._out, float((self.frames_written + 1) / self.fps))
        except (av.FFmpegError, OSError) as exc:
            raise DaganError(f"cannot write {self.path} at frame {self.frames_written}: {_reason(exc)}") from None

    def _finish(self) -> None:
        try:
            self._out.mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.write_until(self._out, float(self.frames_written / self.fps), final=True)
                self._audio.close()
                self._audio = None
            self._out.close()
            self._out = None
        except (av.FFmpegError, OSError) as exc:
            raise DaganError(f"cannot write {self.path}: {_reason(exc)}") from None
        commit(self._tmp, self.path)

    def _discard(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # the file is being thrown away; a broken muxer must not mask the cause
                pass
            self._out = None
        discard(self._tmp)


class _AudioSource:
    """Streams the first audio track of a video into an output container (copy or AAC re-encode).

    Output time 0 is the source's first video frame, so audio/video sync of the source carries over.
    """

    def __init__(self, path: Path, container: av.container.InputContainer, stream):
        self.path = path
        self.container = container
        self.stream = stream
        self.copy = stream.codec_context.name in _REMUX_AUDIO_CODECS
        self.offset = 0.0  # seconds: the source's first video timestamp
        if container.streams.video:
            v = container.streams.video[0]
            if v.start_time is not None and v.time_base is not None:
                self.offset = float(v.start_time * v.time_base)
        self._packets = container.demux(stream)
        self._out_stream = None
        self._done = False
        self._pending = None  # copy mode: the first packet not yet muxed
        self._queue: list[np.ndarray] = []  # re-encode mode: C×N planar float blocks, in output order
        self._resampler = None
        self._rate = 0
        self._started = False  # re-encode mode: the first decoded frame has fixed the alignment
        self._to_skip = 0  # re-encode mode: source samples before output time 0
        self._eof = False
        self._samples_written = 0

    @classmethod
    def open(cls, path: str | os.PathLike) -> _AudioSource | None:
        p = Path(path)
        if not p.is_file():
            raise DaganError(f"audio source not found: {p}")
        try:
            container = av.open(str(p), mode="r")
        except av.FFmpegError as exc:
            raise DaganError(f"cannot read audio from {p}: {_reason(exc)}") from None
        if not container.streams.audio:
            container.close()
            return None
        return cls(p, container, container.streams.audio[0])

    def attach(self, out: av.container.OutputContainer) -> _AudioSource:
        if self.copy:
            self._out_stream = out.add_stream_from_template(self.stream)
        else:
            rate = self.stream.codec_context.sample_rate or 48000
            self._rate = rate if rate in _AAC_RATES else 48000
            layout = "mono" if self.stream.codec_context.channels == 1 else "stereo"
            self._out_stream = out.add_stream("aac", rate=self._rate, layout=layout)
            self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=self._rate)
        return self

    def close(self) -> None:
        self.container.close()

    def write_until(self, out: av.container.OutputContainer, t_end: float, final: bool = False) -> None:
        """Mux the audio for output time [.., t_end); with `final`, trim there and flush the encoder."""
        if not self._done:
            try:
                if self.copy:
                    self._copy_until(out, t_end)
                else:
                    self._encode_until(out, t_end)
            except av.FFmpegError as exc:
                # A damaged audio track must not cost the user their video: keep what we have.
                warnings.warn(
                    f"{self.path}: audio stopped early ({_reason(exc)})", VideoDecodeWarning, stacklevel=3
                )
                self._done = True
        if final and not self.copy and self._out_stream is not None:
            out.mux(self._out_stream.encode(None))
            self._out_stream = None
        if final:
            self._done = True

    def _next_packet(self):
        for packet in self._packets:
            if packet.size > 0 and packet.pts is not None:
                return packet
        return None

    def _copy_until(self, out, t_end: float) -> None:
        tb = self.stream.time_base
        shift = round(self.offset / tb)
        while True:
            packet = self._pending if self._pending is not None else self._next_packet()
            self._pending = None
            if packet is None:
                self._done = True
                return
            if float((packet.pts - shift) * tb) >= t_end:
                self._pending = packet
                return
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._out_stream
            out.mux(packet)

    def _fill(self) -> bool:
        """Decode + resample until at least one block is queued; False at end of stream."""
        while not self._queue and not self._eof:
            packet = self._next_packet()
            if packet is None:
                self._eof = True
                frames = self._resampler.resample(None)
            else:
                frames = [f for raw in self.stream.decode(packet) for f in self._resampler.resample(raw)]
            for frame in frames:
                if not self._started:
                    self._started = True
                    start = round(((frame.time or 0.0) - self.offset) * self._rate)
                    if start > 0:  # audio begins after the first video frame: pad with silence
                        self._queue.append(np.zeros((len(frame.layout.channels), start), np.float32))
                    else:
                        self._to_skip = -start
                data = frame.to_ndarray()  # C×N planar float
                drop = min(self._to_skip, data.shape[1])
                self._to_skip -= drop
                if data.shape[1] > drop:
                    self._queue.append(data[:, drop:])
        return bool(self._queue)

    def _encode_until(self, out, t_end: float) -> None:
        end = round(t_end * self._rate)
        while self._samples_written < end and self._fill():
            data = self._queue[0]
            take = min(data.shape[1], end - self._samples_written)
            if take < data.shape[1]:
                self._queue[0] = data[:, take:]
            else:
                self._queue.pop(0)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data[:, :take], dtype=np.float32),
                format="fltp",
                layout="mono" if data.shape[0] == 1 else "stereo",
            )
            frame.sample_rate = self._rate
            frame.pts = self._samples_written
            out.mux(self._out_stream.encode(frame))
            self._samples_written += take
        if self._eof and not self._queue:
            self._done = True


class GifWriter(FrameWriter):
    """Animated GIF (no audio), looping forever, streamed to disk frame by frame.

    Each frame is palette-quantised by Pillow (its own 256-colour palette) and encoded by FFmpeg's
    GIF encoder, which keeps every frame (Pillow's own GIF writer would merge identical consecutive
    frames, changing the frame count). GIF delays are whole 1/100 s, so per-frame delays alternate
    (e.g. 30/40 ms at 30 fps) to keep the total duration exact.
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, size: tuple[int, int]):
        super().__init__(path, fps, size)
        self._out = None
        self._last_pts = -1
        self._tmp = reserve_temp_file(self.path)
        try:
            self._out = av.open(str(self._tmp), mode="w", format="gif")
            self._stream = self._out.add_stream("gif", rate=self.fps)
            self._stream.width, self._stream.height = self.size
            self._stream.pix_fmt = "pal8"
            self._stream.codec_context.time_base = Fraction(1, 100)
        except BaseException as exc:
            self._discard()
            if isinstance(exc, av.FFmpegError):
                raise DaganError(f"cannot write {self.path}: {_reason(exc)}") from None
            raise

    def _write(self, frame: np.ndarray) -> None:
        quantised = Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE)
        rgb = np.frombuffer(bytes(quantised.getpalette() or []), np.uint8).reshape(-1, 3)[:256]
        palette = np.zeros((256, 4), np.uint8)  # ARGB
        palette[:, 0] = 255
        palette[: len(rgb), 1:] = rgb
        vf = av.VideoFrame.from_ndarray((np.asarray(quantised), palette), format="pal8")
        # Timestamps in 1/100 s, rounded from the exact frame times, strictly increasing.
        self._last_pts = max(round(self.frames_written * 100 / self.fps), self._last_pts + 1)
        vf.pts, vf.time_base = self._last_pts, Fraction(1, 100)
        try:
            self._out.mux(self._stream.encode(vf))
        except (av.FFmpegError, OSError) as exc:
            raise DaganError(f"cannot write {self.path} at frame {self.frames_written}: {_reason(exc)}") from None

    def _finish(self) -> None:
        try:
            self._out.mux(self._stream.encode(None))
            self._out.close()
            self._out = None
        except (av.FFmpegError, OSError) as exc:
            raise DaganError(f"cannot write {self.path}: {_reason(exc)}") from None
        commit(self._tmp, self.path)

    def _discard(self) -> None:
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # the file is being thrown away; a broken muxer must not mask the cause
                pass
            self._out = None
        discard(self._tmp)


class FrameDirWriter(FrameWriter):
    """A directory of numbered PNG frames (000000.png, 000001.png, ...), no audio.

    Frames go to a hidden temp directory beside `path`, renamed to `path` on success. To never
    delete user files, `path` must not exist or be an empty directory (checked up front).
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, size: tuple[int, int]):
        super().__init__(path, fps, size)
        if self.path.exists():
            if not self.path.is_dir():
                raise DaganError(f"cannot write frames to {self.path}: it is an existing file")
            if any(self.path.iterdir()):
                raise DaganError(f"cannot write frames to {self.path}: directory is not empty")
        self._tmp = reserve_temp_dir(self.path)

    def _write(self, frame: np.ndarray) -> None:
        try:
            Image.fromarray(frame).save(self._tmp / f"{self.frames_written:06d}.png", compress_level=1)
        except OSError as exc:
            raise DaganError(f"cannot write frame {self.frames_written} to {self.path}: {exc}") from None

    def _finish(self) -> None:
        try:
            if self.path.is_dir():
                self.path.rmdir()  # empty, checked at construction
            os.replace(self._tmp, self.path)
        except OSError as exc:
            raise DaganError(f"cannot write frames to {self.path}: {exc.strerror or exc}") from None

    def _discard(self) -> None:
        discard(self._tmp)


def open_writer(
    path: str | os.PathLike,
    fps: float | Fraction,
    size: tuple[int, int],
    audio_from: str | os.PathLike | None = None,
    **video_options,
) -> FrameWriter:
    """Pick a writer from the output path.

    * `.mp4` / `.m4v` / `.mov` → `VideoWriter` (H.264, audio copied from `audio_from`);
    * `.gif` → `GifWriter` (`audio_from` ignored);
    * an existing directory, a path ending in a separator, or a path without suffix →
      `FrameDirWriter` (numbered PNGs, `audio_from` ignored).

    `video_options` (crf, preset) go to `VideoWriter`. Check `writer.writes_audio` to learn whether
    the audio made it in.

    Raises:
        DaganError: unsupported suffix or unwritable location (before any work).
    """
    raw = os.fspath(path)
    p = Path(raw)
    suffix = p.suffix.lower()
    if p.is_dir() or raw.endswith(("/", os.sep)) or not suffix:
        return FrameDirWriter(p, fps, size)
    if suffix in VIDEO_SUFFIXES:
        return VideoWriter(p, fps, size, audio_from=audio_from, **video_options)
    if suffix == ".gif":
        return GifWriter(p, fps, size)
    raise DaganError(f"cannot write {p}: unsupported output type {suffix!r} (use .mp4, .mov, .gif or a directory)")
