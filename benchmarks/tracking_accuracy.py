"""Crops of detect-every-N + following against per-frame detection, on the bundled sample and a 1080p scene.

    python benchmarks/tracking_accuracy.py [--every 10 25 40] [--follower fourier dlib]

For each video, follower and N: how often the HOG detector ran, how often the follower lost the
face, the gap between the crop boxes and those of detection on every frame (|Δ centre x|,
|Δ centre y|, |Δ side|; max and mean over frames and the three, and the mean of each, as a
fraction of the mean crop side), and the CPU time of tracking per frame (detection and following
on frames decoded beforehand). Per-frame detection is itself noisy (HOG boxes come in steps of
6/5 in size), so it is a reference, not truth. This is what the default `--detect-every` and
follower were chosen from. Followers: `fourier` (`FourierFollower`, the default: position only)
and `dlib` (`CorrelationFollower`: dlib's correlation tracker, position and scale).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dagan import assets
from dagan.inference.follow import FourierFollower
from dagan.inference.stages import read_frames, track_faces
from dagan.inference.tracking import CorrelationFollower

FOLLOWERS = {"fourier": FourierFollower, "dlib": CorrelationFollower}


def crop_boxes(path: str, frames: list, every: int, follower=FourierFollower):
    """(crop boxes, tracking report, CPU seconds) of tracking pre-decoded `frames` of `path`."""
    tracker = track_faces(path, every, follower=follower)
    start = time.process_time()
    boxes = [t.crop_box for t in tracker.track(lambda: iter(frames))]
    return boxes, tracker.report, time.process_time() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every", type=int, nargs="+", default=[10, 25, 40])
    p.add_argument("--follower", nargs="+", choices=sorted(FOLLOWERS), default=["fourier", "dlib"])
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from pipeline_speed import make_1080p_driving

    with tempfile.TemporaryDirectory() as tmp:
        videos = {"bundled sample": str(assets.sample_driving()),
                  "1080p scene": str(make_1080p_driving(Path(tmp) / "d.mp4", assets.sample_driving(), 75))}
        print(f"{'video':15s} {'follower':8s} {'N':>3s} {'detections':>10s} {'lost':>4s} {'max gap':>8s} "
              f"{'mean gap':>8s}  {'mean x / y / side':17s} {'ms/frame':>8s}")
        for name, path in videos.items():
            frames = list(read_frames(path, 640))
            reference, _, _ = crop_boxes(path, frames, 1)
            side = np.mean([b.width for b in reference])
            for follower in args.follower:
                for every in args.every:
                    boxes, report, cpu = crop_boxes(path, frames, every, FOLLOWERS[follower])
                    gap = np.array([[abs(a.center[0] - b.center[0]), abs(a.center[1] - b.center[1]),
                                     abs(a.width - b.width)] for a, b in zip(reference, boxes, strict=True)]) / side
                    parts = " / ".join(f"{100 * g:.1f}" for g in gap.mean(0))
                    print(f"{name:15s} {follower:8s} {every:3d} {report.detector_runs:4d} of {report.frames:<3d} "
                          f"{report.lost:4d} {100 * gap.max():7.1f}% {100 * gap.mean():7.1f}%  {parts + ' %':17s} "
                          f"{1e3 * cpu / report.frames:8.2f}")


if __name__ == "__main__":
    main()
