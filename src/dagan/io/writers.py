"""Video writing: H.264 mp4/mov with the driving audio, GIF, and PNG frame folders.

Writers check the output path and reserve a temp file beside it before any work, write there, and
rename on success only; an exception inside the `with` block discards the temp file and leaves an
existing output untouched.
"""

from __future__ import annotations

import math
import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from dagan.errors import DaganError
from dagan.io._files import commit, discard, reserve_temp_dir, reserve_temp_file
from dagan.io.image import to_uint8
from dagan.io.video import VIDEO_SUFFIXES, VideoDecodeWarning, _reason

__all__ = ["FrameWriter", "VideoWriter", "GifWriter", "FrameDirWriter", "open_writer"]

_REMUX_AUDIO_CODECS = {"aac", "mp3"}  # copied bit-exactly into mp4/mov; anything else → AAC
# Frames up to this many pixels are encoded by one x264 thread: at 128², 150 frames, x264's own
# threads cost 1.44 ms of CPU per frame against 1.04 ms for one, at the same wall time (measured on
# the 2-core Intel Xeon), and the CPU they waste is the networks'. Larger frames keep x264's threads.
SINGLE_THREAD_PIXELS = 256 * 256
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


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
            options = {"crf": str(int(crf)), "preset": preset}
            if w * h <= SINGLE_THREAD_PIXELS:
                options["threads"] = "1"
            stream = self._out.add_stream("libx264", rate=self.fps, options=options)
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
