"""Renderer speed of `dagan synth`: seconds per rendered frame, and its ratio to a bare z-buffer pass.

    python benchmarks/synth_speed.py [--size 128] [--frames 5] [--supersample 2]

`render_head` (posing, shading, texturing, landmarks, depth) is timed next to `rasterize` alone on
the same posed mesh at the same (supersampled) resolution, measured in the same run, so the ratio
says how much the renderer adds to its unavoidable core on any machine. The former unit-test
target was 0.2 s per 128² frame on the 2-core CI machine (moved here: a wall-clock bound inside
a test flakes on a loaded machine). Not a test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dagan.data.synth import _builtin_face, head_framing
from dagan.data.head_mesh import build_head
from dagan.data.raster import intrinsics_matrix, pose_matrix, project, rasterize
from dagan.data.synth_render import render_head


def best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=5, help="timed repeats (the best is reported)")
    p.add_argument("--supersample", type=int, default=2)
    args = p.parse_args()
    head = build_head(*_builtin_face("astronaut"))
    k = intrinsics_matrix(args.size)
    pose = np.r_[0.2, 0.1, 0.0, head_framing(head, k, args.size)]
    render = best_seconds(lambda: render_head(head, pose, k, args.size, mouth_open=0.5,
                                              supersample=args.supersample), args.frames)
    cam = head.posed_vertices(0.5) @ pose_matrix(*pose[:3]).T + pose[3:]  # N×3 (neck pose ignored: timing only)
    hs = args.size * args.supersample
    core = best_seconds(lambda: rasterize(project(cam, k) * args.supersample, cam[:, 2], head.faces, hs, hs),
                        args.frames)
    print(f"render_head {args.size}² (supersample {args.supersample}): {render:.3f} s/frame ({1 / render:.1f} frames/s)")
    print(f"rasterize alone at {hs}²: {core:.3f} s; render / rasterize = {render / core:.2f}")


if __name__ == "__main__":
    main()
