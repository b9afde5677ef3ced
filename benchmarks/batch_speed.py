"""Batch throughput: `dagan batch` on 4 photos × 2 driving videos vs the same 8 jobs as separate
`dagan animate` calls, in one run (same model, frames, options and threads).

    python benchmarks/batch_speed.py [--frames 24] [--model DIR] [--threads 2] [--keep DIR]

Each separate call pays Python/torch start-up, model loading, the photo's preparation and the
driving video's decode + face tracking + keypoints again; the batch prepares each photo once and
extracts each driving video's motion once (motion files), in one process. Prints frames/s of both
and their ratio (target ≥ 1.5×).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"


def make_inputs(root: Path, frames: int) -> tuple[Path, Path]:
    """4 photos (the sample face as is, mirrored, and on two larger canvases) and 2 clips of `frames`
    frames (the sample driving video, forwards and mirrored)."""
    from dagan import assets
    from dagan.io import iter_frames, open_writer, probe_video

    photos, drivers = root / "photos", root / "drivers"
    photos.mkdir()
    drivers.mkdir()
    face = np.asarray(Image.open(assets.sample_source()).convert("RGB"))
    variants = {"a": face, "b": face[:, ::-1]}
    for name, pad in (("c", 60), ("d", 140)):
        canvas = np.full((face.shape[0] + 2 * pad, face.shape[1] + 2 * pad, 3), 110, np.uint8)
        canvas[pad:pad + face.shape[0], pad:pad + face.shape[1]] = face[:, ::-1] if name == "d" else face
        variants[name] = canvas
    for name, img in variants.items():
        Image.fromarray(np.ascontiguousarray(img)).save(photos / f"{name}.png")
    info = probe_video(assets.sample_driving())
    clip = [f for _, f in zip(range(frames), iter_frames(assets.sample_driving()))]
    for name, seq in (("fwd", clip), ("mirror", [f[:, ::-1] for f in clip])):
        with open_writer(drivers / f"{name}.mp4", info.frame_rate, (info.width, info.height)) as w:
            for f in seq:
                w.write(np.ascontiguousarray(f))
    return photos, drivers


def dagan(args: list[str], threads: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dagan", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"dagan {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24, help="frames per driving clip (default 24)")
    ap.add_argument("--model", default=None, help="model directory (default: the bundled demo model)")
    ap.add_argument("--threads", type=int, default=2, help="OMP threads of every process (default 2)")
    ap.add_argument("--keep", default=None, help="write inputs and outputs here instead of a temp folder")
    args = ap.parse_args()
    sys.path.insert(0, str(SRC))
    model = ["--model", args.model] if args.model else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        photos, drivers = make_inputs(root, args.frames)
        jobs = [(p, d) for p in sorted(photos.glob("*.png")) for d in sorted(drivers.glob("*.mp4"))]
        total = len(jobs) * args.frames
        (root / "separate").mkdir(exist_ok=True)
        separate = 0.0
        for p, d in jobs:
            out = root / "separate" / f"{p.stem}__{d.stem}.mp4"
            separate += dagan(["animate", "--quiet", *model, "--source", str(p), "--driving", str(d), "-o", str(out)],
                              args.threads)
        batch = dagan(["batch", *model, "--sources", str(photos), "--driving", str(drivers), "-o", str(root / "batch")],
                      args.threads)
        made = sorted(f.name for f in (root / "batch").glob("*.mp4"))
        assert made == sorted(f"{p.stem}__{d.stem}.mp4" for p, d in jobs), made
    print(f"{len(jobs)} jobs (4 photos × 2 drivings), {args.frames} frames each, {total} frames, "
          f"OMP_NUM_THREADS={args.threads}")
    print(f"separate `dagan animate` calls: {separate:7.1f} s  {total / separate:6.2f} frames/s")
    print(f"one `dagan batch`:              {batch:7.1f} s  {total / batch:6.2f} frames/s")
    print(f"speed-up: {separate / batch:.2f}× (target ≥ 1.5×)")


if __name__ == "__main__":
    main()
