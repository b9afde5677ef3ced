"""Face crops from 1080p frames: RGB conversion then crop, against cropping the YUV planes, in one run.

    python benchmarks/crop_speed.py [--frames 75] [--size 128]

The driving video is `pipeline_speed.py`'s 1920×1080 scene. Per frame, after decoding:
(a) the RGB way: swscale converts the whole frame to RGB (one reused context), then
    `crop_and_resize` cuts and resamples the face box;
(b) the planar way (what `dagan animate` does): `yuv_frame` copies the planes, then
    `crop_yuv_and_resize` resamples Y, U, V at their own resolution and converts only the crop.
Reported: CPU ms per frame for each, and each one's PSNR against an exact reference: the frame
converted in float by the ITU formula (chroma repeated, as swscale's unscaled path does), then
cropped by `crop_and_resize`.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_speed import FACE_SIDE, face_position, make_1080p_driving  # noqa: E402

from dagan.inference.face import Box, crop_and_resize, crop_yuv_and_resize  # noqa: E402
from dagan.io.video import rgb_converter  # noqa: E402
from dagan.io.yuv import yuv_frame  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "dagan" / "assets" / "sample_driving.mp4"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def face_box(i: int, n: int) -> Box:
    """A square crop box around the face patch of frame i, off the pixel grid as tracked boxes are."""
    x, y = face_position(i, n)
    side = FACE_SIDE * 1.15
    return Box.square(x + FACE_SIDE / 2 + 0.37, y + FACE_SIDE / 2 - 0.61, side)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=75)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    to_rgb = rgb_converter()
    cpu = {"rgb": 0.0, "planes": 0.0}
    quality: dict[str, list[float]] = {"rgb": [], "planes": [], "rgb vs planes": []}
    with tempfile.TemporaryDirectory() as tmp:
        video = make_1080p_driving(Path(tmp) / "scene.mp4", SAMPLE, args.frames)
        with av.open(str(video)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                box = face_box(i, args.frames)
                t0 = time.process_time()
                rgb_crop = crop_and_resize(to_rgb(frame), box, args.size)
                t1 = time.process_time()
                planes = yuv_frame(frame)
                planar_crop = crop_yuv_and_resize(planes, box, args.size)
                t2 = time.process_time()
                cpu["rgb"] += t1 - t0
                cpu["planes"] += t2 - t1
                exact = crop_and_resize(planes.to_rgb(), box, args.size)
                quality["rgb"].append(psnr(rgb_crop, exact))
                quality["planes"].append(psnr(planar_crop, exact))
                quality["rgb vs planes"].append(psnr(rgb_crop, planar_crop))
        n = i + 1
    print(f"{n} frames of 1920×1080 (yuv420p, {frame.colorspace=}), crops {args.size}² from "
          f"{face_box(0, n).width:.0f}² boxes")
    for way in ("rgb", "planes"):
        print(f"{way:>7}: {1e3 * cpu[way] / n:5.2f} ms CPU per frame, PSNR vs exact "
              f"{np.mean(quality[way]):.1f} dB (min {min(quality[way]):.1f})")
    print(f"rgb vs planes: {np.mean(quality['rgb vs planes']):.1f} dB")


if __name__ == "__main__":
    main()
