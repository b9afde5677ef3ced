"""Live mode's per-frame work without a browser: `LiveSession.process` on the sample driving frames.

    PYTHONPATH=src python benchmarks/live_session.py [--frames 30] [--threads 2] [--model DIR]

Reports the median and 95th-percentile milliseconds per frame (face crop, keypoints relative to the
neutral pose, generate) after 3 warm-up frames, at the given number of torch threads. The browser
test (tests/app/test_pages.py -k live) measures the same work end to end, camera to screen.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dagan import assets
from dagan.app.live import LiveSession
from dagan.app.models import ModelRegistry
from dagan.io import iter_frames, read_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="a model directory (default: the bundled demo model)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry = ModelRegistry([args.model] if args.model else [], device="cpu")
    name = registry.names[-1]
    session = LiveSession(registry.pipeline(name).runtime, read_image(assets.sample_source()))
    frames = iter_frames(assets.sample_driving())
    times = []
    for _, frame in zip(range(args.frames + 3), frames):
        start = time.perf_counter()
        session.process(frame)
        times.append(1000 * (time.perf_counter() - start))
    frames.close()
    times = sorted(times[3:])
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"model {name}, {args.threads} torch thread(s), {len(times)} frames: "
          f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms per frame")


if __name__ == "__main__":
    main()
