"""Batch jobs: many photos × many driving videos, resumable, split into deterministic shards.

    jobs = read_jobs_csv("jobs.csv", default_options)        # or cross_jobs(sources_dir, driving, ...)
    mine = shard_jobs(jobs, *resolve_shard("0/4"))          # a Slurm array task / torchrun rank's part
    run_batch(pipeline, mine, outdir)                       # outputs + outdir/batch_report.json

Each photo is prepared once (the pipeline keeps prepared photos) and each driving video's motion is
extracted once into OUTDIR/.motion/ and reused by every job that uses it. Each output is written
atomically, so an output that exists is finished: a rerun skips it and a killed batch resumes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dagan.errors import DaganError
from dagan.inference.group import face_output_path, parse_faces
from dagan.inference.motion import is_motion_file, runtime_model_id
from dagan.inference.outputs import IMAGE_SUFFIXES, is_image_path
from dagan.inference.pipeline import AnimateOptions, AnimationPipeline
from dagan.io.video import VIDEO_SUFFIXES

REPORT_NAME = "batch_report.json"
MOTION_DIR = ".motion"
VIDEO_INPUTS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif")


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _best_frame(text: str):
    value = text.strip().lower()
    return value if value == "auto" else int(value)


def _faces(text: str) -> str:
    parse_faces(text)
    return text.strip()


# CSV column (also accepted with '-' for '_') → (AnimateOptions field, parser of the cell)
OPTION_COLUMNS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "relative": ("relative", _bool),
    "adapt_scale": ("adapt_movement_scale", _bool),
    "best_frame": ("best_frame", _best_frame),
    "smooth_keypoints": ("smooth_keypoints", float),
    "crop": ("crop", _bool),
    "paste_back": ("paste_back", _bool),
    "faces": ("faces", _faces),
    "side_by_side": ("side_by_side", _bool),
    "audio": ("audio", _bool),
    "audio_file": ("audio_file", str),
    "batch_size": ("batch_size", int),
    "detect_every": ("detect_every", int),
}


@dataclass(frozen=True)
class Job:
    """One animation: paths as given (resolved against the CSV's folder), output relative to OUTDIR."""

    source: str
    driving: str
    output: str
    options: AnimateOptions = field(default_factory=AnimateOptions)
    line: int | None = None  # CSV line number, for messages

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"{Path(self.source).name} × {Path(self.driving).name}"


def default_output(source: str, driving: str, suffix: str = ".mp4") -> str:
    """SOURCE-STEM__DRIVING-STEM + suffix (.png when the driving is an image)."""
    ext = ".png" if is_image_path(driving) else suffix
    return f"{Path(source).stem}__{Path(driving).stem}{ext}"


def _check_output_name(output: str, where: str) -> str:
    p = Path(output)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise DaganError(f"{where}: output {output!r} must be a path inside OUTDIR (relative, no '..')")
    return p.as_posix()


def _check_unique(jobs: list[Job]) -> list[Job]:
    seen: dict[str, Job] = {}
    for job in jobs:
        key = os.path.normcase(job.output)
        if key in seen:
            raise DaganError(f"{job.where}: output {job.output} is the same as {seen[key].where}'s; give each job "
                             "its own output")
        seen[key] = job
    return jobs


def read_jobs_csv(path: str | os.PathLike, defaults: AnimateOptions | None = None, suffix: str = ".mp4") -> list[Job]:
    """Jobs from a CSV with columns source, driving, optional output and animate options (OPTION_COLUMNS).

    Relative source/driving paths are taken from the CSV's folder. Every problem (missing column,
    unknown option, bad value, duplicate output) is refused here, before any work, with its line.
    """
    p = Path(path)
    defaults = defaults or AnimateOptions()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DaganError(f"cannot read {p}: {exc.strerror or exc}") from None
    rows = csv.reader(text.splitlines())
    header = [h.strip().lower().replace("-", "_") for h in next(rows, [])]
    for required in ("source", "driving"):
        if required not in header:
            raise DaganError(f"{p} line 1: missing column {required!r} (the header needs source,driving)")
    unknown = [h for h in header if h not in ("source", "driving", "output") and h not in OPTION_COLUMNS]
    if unknown:
        raise DaganError(f"{p} line 1: unknown column {unknown[0]!r}; options are {', '.join(OPTION_COLUMNS)}")
    jobs = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise DaganError(f"{p} line {line}: {len(row)} cells but the header has {len(header)} columns")
        cells = dict(zip(header, (c.strip() for c in row)))
        jobs.append(_job_from_row(p, line, cells, defaults, suffix))
    if not jobs:
        raise DaganError(f"{p} lists no jobs")
    return _check_unique(jobs)


def _job_from_row(p: Path, line: int, cells: dict[str, str], defaults: AnimateOptions, suffix: str) -> Job:
    source, driving = cells.get("source", ""), cells.get("driving", "")
    if not source or not driving:
        raise DaganError(f"{p} line {line}: source and driving must both be given")
    source, driving = (str(p.parent / x) if not os.path.isabs(x) else x for x in (source, driving))
    changes = {}
    for column, (name, parse) in OPTION_COLUMNS.items():
        value = cells.get(column, "")
        if not value:
            continue
        try:
            changes[name] = parse(value)
        except (ValueError, DaganError) as exc:
            raise DaganError(f"{p} line {line}: column {column}: {exc}") from None
    where = f"{p} line {line}"
    output = _check_output_name(cells.get("output") or default_output(source, driving, suffix), where)
    return Job(source, driving, output, dataclasses.replace(defaults, **changes), line)


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in suffixes)


def cross_jobs(sources: str | os.PathLike, driving: str | os.PathLike, defaults: AnimateOptions | None = None,
               suffix: str = ".mp4") -> list[Job]:
    """Every photo in `sources` × every driving video, motion file or image in `driving` (a folder or one file)."""
    src_dir, drv = Path(sources), Path(driving)
    if not src_dir.is_dir():
        raise DaganError(f"--sources {src_dir} is not a directory")
    photos = _files(src_dir, IMAGE_SUFFIXES)
    if not photos:
        raise DaganError(f"--sources {src_dir} holds no photos ({', '.join(IMAGE_SUFFIXES)})")
    if drv.is_dir():
        drivings = _files(drv, VIDEO_INPUTS + (".npz",) + IMAGE_SUFFIXES)
        if not drivings:
            raise DaganError(f"--driving {drv} holds no videos, motion files or images")
    elif drv.is_file():
        drivings = [drv]
    else:
        raise DaganError(f"--driving {drv} does not exist")
    defaults = defaults or AnimateOptions()
    jobs = [Job(str(s), str(d), default_output(str(s), str(d), suffix), defaults) for s in photos for d in drivings]
    return _check_unique(jobs)


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' → (I, N) with 0 ≤ I < N."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise DaganError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise DaganError(f"--shard {text}: need 0 ≤ I < N")
    return index, count


def resolve_shard(shard: str | None, env: dict | None = None) -> tuple[int, int]:
    """This process's part: --shard I/N, split further by torchrun's RANK/WORLD_SIZE when set.

    With both, part I of N is split among the W ranks: global part I·W + RANK of N·W.
    """
    env = os.environ if env is None else env
    index, count = parse_shard(shard) if shard else (0, 1)
    world = int(env.get("WORLD_SIZE", "1") or 1)
    rank = int(env.get("RANK", "0") or 0)
    if world > 1:
        index, count = index * world + rank, count * world
    return index, count


def shard_jobs(jobs: list[Job], index: int, count: int) -> list[Job]:
    """Part `index` of `count` contiguous, disjoint parts (neighbouring jobs usually share a photo)."""
    n = len(jobs)
    return jobs[index * n // count:(index + 1) * n // count]


def job_outputs(job: Job, outdir: Path) -> list[Path]:
    """The files a job writes: one, or one per face without paste-back (numbers unknown for `all`)."""
    out = outdir / job.output
    spec = parse_faces(job.options.faces)
    if job.options.paste_back or spec == "largest":
        return [out]
    if spec == "all":
        return []
    return [face_output_path(out, n) for n in spec]


class Report:
    """OUTDIR/batch_report.json, shared by every shard: updated under a file lock, written atomically."""

    def __init__(self, outdir: Path):
        self.path = outdir / REPORT_NAME
        self._lock = outdir / f".{REPORT_NAME}.lock"

    @contextlib.contextmanager
    def _locked(self):
        import fcntl

        with open(self._lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"jobs": {}}

    def entry(self, output: str) -> dict | None:
        return self._read()["jobs"].get(output)

    def update(self, output: str, entry: dict) -> None:
        with self._locked():
            data = self._read()
            data["jobs"][output] = entry
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)


def _motion_key(pipe: AnimationPipeline, driving: str, options: AnimateOptions, landmarks: bool) -> str:
    stat = os.stat(driving)
    parts = [os.path.realpath(driving), stat.st_mtime_ns, stat.st_size, options.crop, options.detect_every,
             options.batch_size, landmarks, runtime_model_id(pipe.runtime)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def motion_for(pipe: AnimationPipeline, job: Job, outdir: Path, log: Callable[[str], None]) -> tuple[str, AnimateOptions]:
    """(driving to use, options) for a job: a video's motion file, extracted once and reused.

    Motion files carry no pixels or sound, so side-by-side jobs keep the video, and the video's
    audio is attached with `audio_file` as `dagan animate` would copy it.
    """
    driving, options = job.driving, job.options
    if is_motion_file(driving) or is_image_path(driving) or options.side_by_side:
        return driving, options
    drive = pipe.open_driving(driving, options, [])
    landmarks = options.best_frame == "auto"
    motion = outdir / MOTION_DIR / f"{Path(driving).stem}-{_motion_key(pipe, driving, options, landmarks)}.npz"
    if not motion.exists():
        motion.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        pipe.extract_motion(driving, motion, options, landmarks=landmarks)
        log(f"motion of {driving} extracted once ({time.perf_counter() - start:.1f} s)")
    holds_sound = Path(job.output).suffix.lower() in VIDEO_SUFFIXES
    if options.audio and drive.audio and not options.audio_file and holds_sound:
        options = dataclasses.replace(options, audio_file=drive.audio)
    return str(motion), options


def run_batch(pipe: AnimationPipeline, jobs: list[Job], outdir: str | os.PathLike,
              log: Callable[[str], None] = print, shard: tuple[int, int] = (0, 1)) -> dict:
    """Run `jobs` into `outdir`; failures are reported and skipped. Returns counts by status.

    Jobs run grouped by photo so each is prepared once; the report keeps every job's status
    ("ok", "failed", "skipped": finished before), seconds, frames, outputs and error.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out)
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    for job in sorted(jobs, key=lambda j: (j.source, j.driving, j.output)):
        entry = {"source": job.source, "driving": job.driving, "shard": f"{shard[0]}/{shard[1]}"}
        previous = report.entry(job.output)
        expected = job_outputs(job, out)
        done = previous and previous.get("status") in ("ok", "skipped") and all(
            (out / o).exists() for o in previous.get("outputs", []))
        if done or (expected and all(p.exists() for p in expected)):
            counts["skipped"] += 1
            report.update(job.output, {**(previous or entry), "status": "skipped"})
            continue
        start = time.perf_counter()
        try:
            driving, options = motion_for(pipe, job, out, log)
            (out / job.output).parent.mkdir(parents=True, exist_ok=True)
            result = pipe.run(job.source, driving, out / job.output, options)
        except Exception as exc:  # one bad job must not stop the others; the report keeps its reason
            seconds = time.perf_counter() - start
            message = str(exc) if isinstance(exc, DaganError) else f"{type(exc).__name__}: {exc}"
            counts["failed"] += 1
            log(f"job {job.where} failed: {message}")
            report.update(job.output, {**entry, "status": "failed", "seconds": round(seconds, 3), "error": message})
            continue
        seconds = time.perf_counter() - start
        written = [os.path.relpath(p, out) for p in result.outputs]  # relative to OUTDIR, wherever it moves
        counts["ok"] += 1
        report.update(job.output, {**entry, "status": "ok", "seconds": round(seconds, 3), "frames": result.frames,
                                   "outputs": written, "error": None})
        log(f"job {job.where}: wrote {', '.join(written)} "
            f"({result.frames} frames, {seconds:.1f} s)")
    return counts
