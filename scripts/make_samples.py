"""Build the bundled demo inputs in src/dagan/assets/ from face photos shipped by installed packages.

* sample_source.png  — Grace Hopper (matplotlib's sample_data/grace_hopper.jpg), resized to 384×450.
* sample_driving.mp4 — the astronaut (scikit-image's `data.astronaut()`, Eileen Collins, public
  domain), cropped around the face and moved by a smooth synthetic head motion (rotation,
  translation, scale), 3 s at 25 fps, 256×256 H.264, with a synthesized speech-like AAC track.

Deterministic: the same package versions give byte-identical files (single-threaded x264, bitexact
muxing). Usage: python scripts/make_samples.py [--out DIR]
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import av
import matplotlib
import numpy as np
import skimage.data
from av.codec.context import Flags
from PIL import Image

from dagan.inference.face import crop_box_from_face, detect_largest_face

SIZE = 256
FPS = 25
SECONDS = 3
AUDIO_RATE = 22050


def source_image() -> Image.Image:
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    # 384×450: the face crop stays larger than the 256×256 network input; the file stays small.
    return Image.open(path).convert("RGB").resize((384, 450), Image.Resampling.LANCZOS)


def driving_frames() -> list[np.ndarray]:
    """75 frames of 256×256×3 uint8: the astronaut's head nodding, turning and leaning."""
    photo = skimage.data.astronaut()  # 512×512×3 uint8
    face, _ = detect_largest_face(photo, source="skimage astronaut")
    crop = crop_box_from_face(face, (photo.shape[1], photo.shape[0]))
    cx, cy = crop.center
    image = Image.fromarray(photo)
    frames = []
    for i in range(FPS * SECONDS):
        t = i / FPS
        env = min(1.0, t / 0.4)  # ease in from the rest pose
        angle = env * math.radians(7.0) * math.sin(2 * math.pi * 0.5 * t)
        scale = 1.0 + env * 0.05 * math.sin(2 * math.pi * 0.33 * t + 1.0)
        dx = env * 0.04 * crop.width * math.sin(2 * math.pi * 0.4 * t)
        dy = env * 0.03 * crop.width * math.sin(2 * math.pi * 0.7 * t + 0.5)
        # Output pixel (u, v) → source point: centre + R(angle)·(u − 128, v − 128)·side/256/scale.
        k = crop.width / SIZE / scale
        ca, sa = math.cos(angle) * k, math.sin(angle) * k
        ox, oy = cx + dx, cy + dy
        half = SIZE / 2
        coeffs = (ca, -sa, ox - ca * half + sa * half, sa, ca, oy - sa * half - ca * half)
        frame = image.transform((SIZE, SIZE), Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC)
        frames.append(np.asarray(frame))
    return frames


def speech_like_audio() -> np.ndarray:
    """1×N float32 mono: a gliding harmonic tone with a ~4 Hz syllable envelope, N = 3 s."""
    n = AUDIO_RATE * SECONDS
    t = np.arange(n) / AUDIO_RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)  # pitch contour (Hz)
    phase = 2 * np.pi * np.cumsum(f0) / AUDIO_RATE
    voice = sum(np.sin(h * phase) / h for h in range(1, 6))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    fade = np.clip(np.minimum(t, SECONDS - t) / 0.05, 0, 1)
    return (0.25 * voice * syllables * fade).astype(np.float32)[None]


def write_driving(path: Path, frames: list[np.ndarray], audio: np.ndarray) -> None:
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart", "fflags": "+bitexact"}) as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": "slow", "threads": "1"})
        video.width = video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.codec_context.flags |= Flags.bitexact
        sound = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        sound.bit_rate = 32000
        sound.codec_context.flags |= Flags.bitexact
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for start in range(0, audio.shape[1], 1024):
            samples = np.ascontiguousarray(audio[:, start : start + 1024])
            block = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            block.sample_rate, block.pts = AUDIO_RATE, start
            out.mux(sound.encode(block))
        out.mux(sound.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src" / "dagan" / "assets")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    source_image().save(args.out / "sample_source.png", optimize=True)
    write_driving(args.out / "sample_driving.mp4", driving_frames(), speech_like_audio())
    for name in ("sample_source.png", "sample_driving.mp4"):
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
