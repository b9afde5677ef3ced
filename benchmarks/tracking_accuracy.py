"""Crops of detect-every-N + following against per-frame detection, on the bundled sample and a 1080p scene.

    python benchmarks/tracking_accuracy.py [--every 10 25 40]

For each video and N: how often the HOG detector ran, how often the follower lost the face, and the
gap between the crop boxes and those of detection on every frame (|Δ centre x|, |Δ centre y|,
|Δ side|), max and mean over frames and the three, as a fraction of the mean crop side. Per-frame
detection is itself noisy (HOG boxes come in steps of 6/5 in size), so it is a reference, not truth.
This is what the default `--detect-every` was chosen from.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from dagan import assets
from dagan.inference.stages import read_frames, track_faces


def crop_boxes(path: str, every: int):
    tracker = track_faces(path, every)
    boxes = [t.crop_box for t in tracker.track(lambda: read_frames(path, tracker.max_side))]
    return boxes, tracker.report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every", type=int, nargs="+", default=[10, 25, 40])
    args = p.parse_args()
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from pipeline_speed import make_1080p_driving

    with tempfile.TemporaryDirectory() as tmp:
        videos = {"bundled sample": str(assets.sample_driving()),
                  "1080p scene": str(make_1080p_driving(Path(tmp) / "d.mp4", assets.sample_driving(), 75))}
        print(f"{'video':16s} {'N':>3s} {'detections':>10s} {'lost':>4s} {'max gap':>8s} {'mean gap':>8s}")
        for name, path in videos.items():
            reference, report = crop_boxes(path, 1)
            side = np.mean([b.width for b in reference])
            for every in args.every:
                boxes, report = crop_boxes(path, every)
                gap = np.array([[abs(a.center[0] - b.center[0]), abs(a.center[1] - b.center[1]), abs(a.width - b.width)]
                                for a, b in zip(reference, boxes, strict=True)]) / side
                print(f"{name:16s} {every:3d} {report.detector_runs:4d} of {report.frames:<3d} {report.lost:4d} "
                      f"{100 * gap.max():7.1f}% {100 * gap.mean():7.1f}%")


if __name__ == "__main__":
    main()
