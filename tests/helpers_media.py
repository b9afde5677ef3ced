"""Media made on the fly for the I/O and face tests: clips written with PyAV directly (so readers are
tested independently of `VideoWriter`), 16-bit PNGs written by hand, and synthetic moving faces."""

from __future__ import annotations

import functools
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import skimage.data


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """H×W×3 uint8 frame with four coloured quadrants (orientation is visible) and a moving bar."""
    img = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    img[:h2, :w2] = (220, 40, 40)
    img[:h2, w2:] = (40, 220, 40)
    img[h2:, :w2] = (40, 40, 220)
    img[h2:, w2:] = (230, 230, 60)
    x = (index * 4) % width
    img[:, x : x + 2] = 255
    return img


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """C×N float32 sine."""
    t = np.arange(round(seconds * rate)) / rate
    return np.repeat((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None], channels, axis=0)


def make_clip(
    path: Path,
    num_frames: int = 10,
    size: tuple[int, int] = (64, 48),
    fps: Fraction | int = 25,
    *,
    audio: str | None = "aac",
    audio_seconds: float | None = None,
    audio_rate: int = 16000,
    rotation: float | None = None,
    faststart: bool = False,
    video: bool = True,
    draw=pattern,
) -> Path:
    """Write a test clip with PyAV.

    Args:
        size: (w, h) of the stored frames (before any display rotation).
        audio: audio codec ("aac", "pcm_s16le", ...) or None.
        audio_seconds: audio length; default the video length.
        rotation: PyAV `set_display_rotation` degrees (counter-clockwise).
        video: False makes an audio-only file.
        draw: draw(index, w, h) → H×W×3 uint8 frame (default: the coloured-quadrant `pattern`).
    """
    fps = Fraction(fps)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        vs = None
        if video:
            vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "10"})
            vs.width, vs.height = size
            vs.pix_fmt = "yuv420p"
            if rotation is not None:
                vs.set_display_rotation(rotation)
        aus = None
        if audio is not None:
            layout = "mono"
            aus = out.add_stream(audio, rate=audio_rate, layout=layout)
        if vs is not None:
            for i in range(num_frames):
                frame = av.VideoFrame.from_ndarray(draw(i, *size), format="rgb24")
                frame.pts, frame.time_base = i, 1 / fps
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
        if aus is not None:
            seconds = audio_seconds if audio_seconds is not None else num_frames / fps
            samples = tone(float(seconds), audio_rate)
            fmt = "fltp" if audio == "aac" else "s16"
            for start in range(0, samples.shape[1], 1024):
                block = samples[:, start : start + 1024]
                if fmt == "s16":
                    block = (block * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format=fmt, layout="mono")
                frame.sample_rate, frame.pts = audio_rate, start
                out.mux(aus.encode(frame))
            out.mux(aus.encode(None))
    return path


def audio_seconds(path: Path) -> float:
    """Duration of the first audio stream as players see it (edit list applied)."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return float(s.duration * s.time_base)


def write_png16(path: Path, data: np.ndarray) -> Path:
    """Hand-rolled 16-bit PNG (Pillow cannot write 16-bit RGB): H×W, H×W×3 or H×W×4 uint16."""
    h, w = data.shape[:2]
    channels = 1 if data.ndim == 2 else data.shape[2]
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + data[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


@functools.cache
def astronaut_face() -> np.ndarray:
    """The astronaut's head and shoulders, 200×200×3 uint8 (face ≈ 87 px, detectable by HOG)."""
    return np.ascontiguousarray(skimage.data.astronaut()[30:230, 120:320])


def face_on_background(cx: float, cy: float, size: tuple[int, int] = (360, 300)) -> np.ndarray:
    """H×W×3 uint8: a plain textured background with the astronaut patch centred at (cx, cy)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([90 + 40 * np.sin(xx / 23.0), 110 + 30 * np.cos(yy / 17.0), 100 + 0 * xx], axis=2)
    img = bg.astype(np.uint8)
    patch = astronaut_face()
    ph, pw = patch.shape[:2]
    x0, y0 = round(cx - pw / 2), round(cy - ph / 2)
    img[y0 : y0 + ph, x0 : x0 + pw] = patch
    return img


def group_photo(path: Path) -> Path:
    """A made-up two-person photo, 624×450: the packaged sample face (face 1, the larger, on the left)
    beside the astronaut (face 2) on a grey background, saved as PNG."""
    from PIL import Image

    sample = np.asarray(Image.open(Path(__file__).parents[1] / "src/dagan/assets/sample_source.png").convert("RGB"))
    canvas = np.full((450, 624, 3), 128, np.uint8)
    canvas[:, :384] = sample
    canvas[125:325, 404:604] = astronaut_face()
    Image.fromarray(canvas).save(path)
    return path


def write_frames(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """H×W×3 uint8 frames → an H.264 clip (yuv420p, no audio), written with PyAV directly."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "12"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
