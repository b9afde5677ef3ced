"""Whole-pipeline speed on an uncropped 1080p driving video vs the same networks alone, in one run.

    python benchmarks/pipeline_speed.py [--model DIR] [--frames 75] [--batch-size 8] [--device cpu]
        [--precision fp32] [--detect-every 10]

The driving video is made from the bundled sample: each frame's face crop is enlarged to 512² and
placed, moving, into a 1920×1080 scene, then encoded as H.264 to a temp dir. Reported: frames/s of
(a) the networks alone on the same frames' face crops, same batch size (runtime.driving_keypoints +
runtime.generate, source prepared once), (b) `AnimationPipeline.run` end to end (decode, detect /
track, crop, networks, compose, encode) with the stages on background threads and (c) with every
stage on the calling thread, the ratio to (a) of the default, (b) (target ≥ 0.7), CPU
time per frame, and the `--profile` tables of (b) and (c).
Also called by `benchmarks/animate_speed.py --pipeline` as `run_pipeline_benchmark(model, args)`.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

import dagan  # noqa: F401  (before torch, as the `dagan` command: it limits OpenMP's idle spinning)
from dagan._openmp import spin_setting
from dagan.inference.stages import track_faces

SCENE = (1920, 1080)
FACE_SIDE = 512


def scene_background(size: tuple[int, int] = SCENE) -> np.ndarray:
    """H×W×3 uint8: a smooth, textured, face-free backdrop."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 110 + 50 * np.sin(xx / 97.0) * np.cos(yy / 131.0)
    g = 120 + 40 * np.cos(xx / 61.0 + yy / 173.0)
    b = 100 + 30 * np.sin((xx + yy) / 83.0)
    return np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8)


def face_position(i: int, n: int, size: tuple[int, int] = SCENE, side: int = FACE_SIDE) -> tuple[int, int]:
    """Top-left corner of the face patch in frame i of n: a slow left-right sweep with a vertical bob."""
    w, h = size
    t = i / max(n - 1, 1)
    x = (w - side) * (0.25 + 0.5 * t)
    y = (h - side) / 2 + 0.15 * (h - side) * math.sin(2 * math.pi * t)
    return round(x), round(y)


def make_1080p_driving(path: Path, source_video: Path, frames: int | None = None) -> Path:
    """Place the face clip `source_video`, enlarged to 512², moving, into 1920×1080 frames (H.264)."""
    background = scene_background()
    with av.open(str(source_video)) as src:
        clip = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
        rate = src.streams.video[0].average_rate
    if frames is not None:
        clip = [clip[i % len(clip)] for i in range(frames)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "20", "preset": "veryfast"})
        stream.width, stream.height = SCENE
        stream.pix_fmt = "yuv420p"
        for i, face in enumerate(clip):
            image = background.copy()
            patch = np.asarray(Image.fromarray(face).resize((FACE_SIDE, FACE_SIDE), Image.Resampling.BICUBIC))
            x, y = face_position(i, len(clip))
            image[y:y + FACE_SIDE, x:x + FACE_SIDE] = patch
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def networks_alone(pipe, source: Path, crops: list[np.ndarray], batch_size: int) -> tuple[float, float]:
    """(wall, CPU) seconds for the networks alone on `crops`: keypoints + generator per batch, source prepared once."""
    from dagan.inference.stages import MotionTransfer, batched, prepare_source
    from dagan.io import read_image

    face = prepare_source(pipe.runtime, read_image(source), str(source), crop=True, messages=[])
    motion = MotionTransfer(pipe.runtime, face.state)
    motion(crops[:batch_size])  # warm-up
    motion = MotionTransfer(pipe.runtime, face.state)
    start, cpu = time.perf_counter(), time.process_time()
    for batch in batched(crops, batch_size):
        motion(batch)
    return time.perf_counter() - start, time.process_time() - cpu


def run_pipeline_benchmark(model, args) -> dict:
    """Whole pipeline vs networks alone on an uncropped 1080p driving video; prints and returns the figures.

    Args:
        model: a DaGAN, a Runtime or an object with `make_runtime` (as `AnimationPipeline` takes).
        args: namespace with frames, batch_size, device, precision, detect_every (missing: defaults).
    """
    import torch

    from dagan import assets
    from dagan.inference.pipeline import AnimateOptions, AnimationPipeline
    from dagan.inference.stages import driving_crops

    frames = getattr(args, "frames", None) or 75
    batch_size = getattr(args, "batch_size", 8)
    detect_every = getattr(args, "detect_every", None) or AnimateOptions.detect_every
    pipe = AnimationPipeline(model, device=getattr(args, "device", "cpu"), precision=getattr(args, "precision", "fp32"),
                             progress=False)
    default_overlap = pipe.overlap  # what `dagan animate` runs by default (--overlap on)
    source = assets.sample_source()
    options = AnimateOptions(batch_size=batch_size, detect_every=detect_every, audio=False)
    with tempfile.TemporaryDirectory() as tmp:
        video = make_1080p_driving(Path(tmp) / "driving_1080p.mp4", assets.sample_driving(), frames)
        crops = list(driving_crops(str(video), pipe.size, crop=True, detect_every=detect_every, messages=[]))
        with torch.no_grad():
            first = networks_alone(pipe, source, crops, batch_size)
            runs = {}
            for overlap in (True, False):
                pipe.overlap = overlap
                start, cpu = time.perf_counter(), time.process_time()
                result = pipe.run(source, video, Path(tmp) / "out.mp4", options)
                runs[overlap] = (time.perf_counter() - start, time.process_time() - cpu, result)
            second = networks_alone(pipe, source, crops, batch_size)
    t_net, c_net = (first[0] + second[0]) / 2, (first[1] + second[1]) / 2  # before and after: less drift
    (t_pipe, c_pipe, result), (t_serial, c_serial, serial) = runs[True], runs[False]
    n = result.frames
    ratio = t_net / (t_pipe if default_overlap else t_serial)
    print(f"driving: {n} frames, 1920×1080, face moving; networks at {pipe.size}², batch {batch_size}, "
          f"{pipe.precision} on {pipe.device}, torch threads {torch.get_num_threads()}, detect every {detect_every}, "
          f"follower {track_faces('', detect_every).follower.__name__}, OpenMP {spin_setting()}")
    print(f"networks alone (same crops, same batch size): {n / t_net:7.2f} frames/s (mean of a run before and after)")
    print(f"whole pipeline, stages on background threads: {n / t_pipe:7.2f} frames/s, "
          f"{t_net / t_pipe:.2f}x the networks")
    print(f"whole pipeline, every stage on one thread:    {n / t_serial:7.2f} frames/s, {t_net / t_serial:.2f}x")
    print(f"default ({'background threads' if default_overlap else 'one thread'}): "
          f"{ratio:.2f}x the networks (target >= 0.7x)")
    print(f"CPU time per frame (all threads): networks alone {1000 * c_net / n:.1f} ms, whole pipeline "
          f"{1000 * c_pipe / n:.1f} ms, one thread {1000 * c_serial / n:.1f} ms; networks / pipeline CPU = "
          f"{c_net / c_pipe:.2f} (what a saturated CPU would give; less sensitive to other load than frames/s)")
    print("\n--profile, stages on background threads:")
    print(result.profile.table())
    print("\n--profile with every stage on one thread (each stage's own cost, nothing overlapped):")
    print(serial.profile.table())
    return {"frames": n, "networks_fps": n / t_net, "pipeline_fps": n / t_pipe, "ratio": ratio,
            "serial_fps": n / t_serial, "cpu_ratio": c_net / c_pipe, "network_share": result.profile.network_share}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model directory (default: the bundled demo model)")
    p.add_argument("--frames", type=int, default=75)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--detect-every", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32")
    args = p.parse_args()
    from dagan import assets

    model, description = assets.resolve_model(args.model)
    print(f"model: {description}")
    run_pipeline_benchmark(model, args)


if __name__ == "__main__":
    main()
