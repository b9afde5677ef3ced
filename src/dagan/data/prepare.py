"""Turn raw videos into a training dataset of face-cropped clips (`dagan prepare`).

Each raw video is face-tracked with the same detector, smoothing and VoxCeleb-like framing as
`dagan animate`, cropped to size×size and written as `<split>/<identity>#<clip>.mp4`. Identities
come from the first folder level under the raw root (`raw/<identity>/<clip>.mp4`), or else from
the file name before `#`, or else the file stem. Raw `train/` and `test/` folders keep their split;
otherwise whole identities go to test with probability `test_fraction` (deterministic by name).
"""

from __future__ import annotations

import logging
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dagan.errors import DaganError

logger = logging.getLogger("dagan.data")
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".gif"}


@dataclass(frozen=True)
class PrepareJob:
    source: Path
    target: Path
    size: int
    detect_every: int


def _identity_and_clip(path: Path, root: Path) -> tuple[str, str, str | None]:
    rel = path.relative_to(root).parts
    split = rel[0] if rel[0] in ("train", "test") and len(rel) > 1 else None
    parts = rel[1:] if split else rel
    stem = Path(parts[-1]).stem
    if len(parts) >= 2:
        identity, clip = parts[0], "_".join(Path(p).stem for p in parts[1:])
    elif "#" in stem:
        identity, clip = stem.split("#", 1)
    else:
        identity, clip = stem, "000"
    safe = lambda s: s.replace("#", "_").replace("/", "_") or "x"  # noqa: E731
    return safe(identity), safe(clip), split


def plan(raw_dir: str | Path, out_dir: str | Path, *, size: int = 256, test_fraction: float = 0.2,
         detect_every: int = 1, seed: int = 0) -> list[PrepareJob]:
    raw, out = Path(raw_dir), Path(out_dir)
    if not raw.is_dir():
        raise DaganError(f"raw video folder {raw} does not exist")
    videos = sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DaganError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {raw}")
    jobs = []
    for video in videos:
        identity, clip, split = _identity_and_clip(video, raw)
        if split is None:
            h = zlib.crc32(f"{seed}:{identity}".encode()) / 2**32
            split = "test" if h < test_fraction else "train"
        jobs.append(PrepareJob(video, out / split / f"{identity}#{clip}.mp4", size, detect_every))
    return jobs


def prepare_one(job: PrepareJob) -> tuple[str, str | None]:
    """Crop one video; returns (source, error message or None)."""
    from dagan.inference.face import FaceTracker, crop_and_resize
    from dagan.io import VideoWriter, iter_frames, probe_video, to_uint8

    try:
        info = probe_video(job.source)
        tracker = FaceTracker(source=str(job.source), detect_every=job.detect_every)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        with VideoWriter(job.target, info.frame_rate, (job.size, job.size)) as writer:
            for tracked in tracker.track(lambda: iter_frames(job.source)):
                writer.write(to_uint8(crop_and_resize(tracked.frame, tracked.crop_box, job.size)))
        return str(job.source), None
    except DaganError as exc:
        return str(job.source), str(exc)


def prepare(raw_dir, out_dir, *, size: int = 256, test_fraction: float = 0.2, workers: int = 1,
            detect_every: int = 1, seed: int = 0, progress=None) -> dict:
    """Crop every raw video in parallel; unreadable or faceless videos are logged and skipped."""
    jobs = plan(raw_dir, out_dir, size=size, test_fraction=test_fraction, detect_every=detect_every, seed=seed)
    done, failed = [], []
    if workers <= 1:
        results = map(prepare_one, jobs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(prepare_one, jobs)
    try:
        for source, error in results:
            if error:
                logger.warning("skipped %s: %s", source, error)
                failed.append({"video": source, "error": error})
            else:
                done.append(source)
            if progress:
                progress(1)
    finally:
        if workers > 1:
            pool.shutdown()
    if not done:
        raise DaganError(f"no video under {raw_dir} could be prepared ({len(failed)} failed; first: {failed[0]['error']})")
    return {"prepared": len(done), "failed": failed}
