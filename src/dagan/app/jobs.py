"""The job queue behind the animate page and the API: bounded, cancellable, and tidy on disk.

Each model has its own pool of `concurrency` worker threads; jobs wait in a queue of at most
`max_queue` jobs (all models together), beyond which `submit` raises QueueFull (the server answers
503 with Retry-After). Every job owns a folder under the queue's root holding its uploads and its
output; the folder is removed when the job fails or is cancelled, when its result is released, and
by a janitor for results nobody fetched (`result_ttl`) and for running jobs whose client stopped
asking for them (`abandon_after`).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dagan.app.models import ModelRegistry
from dagan.errors import DaganError
from dagan.inference.pipeline import AnimateOptions, AnimateResult

log = logging.getLogger("dagan.serve")


class QueueFull(Exception):
    """The queue holds `max_queue` waiting jobs already."""


class JobCancelled(Exception):
    """Raised inside the pipeline's progress callback to stop a cancelled job."""


@dataclass
class Job:
    """One animation: its files, its options and its progress (read by the status endpoint)."""

    id: str
    model: str
    precision: str
    options: AnimateOptions
    folder: Path
    source: Path
    driving: Path
    names: dict[str, str]  # path in `folder` → the name the client gave the file
    total: int
    fps: float
    max_frames: int | None = None
    state: str = "queued"  # queued → running → done | failed | cancelled
    done: int = 0
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    last_seen: float = field(default_factory=time.monotonic)
    error: str | None = None
    status_code: int = 400
    result: AnimateResult | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def output(self) -> Path:
        return self.folder / "result.mp4"

    def status(self) -> dict:
        """JSON-ready progress: frames done and total, frames/s, ETA in seconds, state, error."""
        elapsed = (self.finished or time.monotonic()) - self.started if self.started else 0.0
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        eta = (self.total - self.done) / rate if rate > 0 and self.total > self.done else None
        out = {"id": self.id, "state": self.state, "model": self.model, "frames": self.done, "total": self.total,
               "fps": round(rate, 2), "eta_s": None if eta is None else round(eta, 1),
               "elapsed_s": round(elapsed, 1), "error": self.error}
        if self.result is not None:
            out["messages"] = [self.clean(m) for m in self.result.messages]
            out["audio"] = self.result.audio
        return out

    def clean(self, message: str) -> str:
        """A message with the job's private file paths replaced by the client's file names."""
        for path, name in self.names.items():
            message = message.replace(path, repr(name))
        return message.replace(str(self.folder), "upload").replace("\n", " ")


class JobQueue:
    """Runs jobs on per-model worker threads; see the module docstring for the limits."""

    def __init__(self, registry: ModelRegistry, root: Path, *, concurrency: int = 1, max_queue: int = 16,
                 result_ttl: float = 600.0, abandon_after: float = 60.0):
        if concurrency < 1:
            raise DaganError(f"--concurrency must be at least 1, got {concurrency}")
        if max_queue < 0:
            raise DaganError(f"--max-queue must be ≥ 0, got {max_queue}")
        self.registry = registry
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.concurrency = concurrency
        self.max_queue = max_queue
        self.result_ttl = result_ttl
        self.abandon_after = abandon_after
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pools = {name: ThreadPoolExecutor(concurrency, thread_name_prefix=f"dagan-{name}")
                       for name in registry.names}
        self._active = dict.fromkeys(registry.names, 0)  # per model: jobs submitted and not yet ended
        self._stop = threading.Event()
        self._janitor = threading.Thread(target=self._sweep_loop, name="dagan-janitor", daemon=True)
        self._janitor.start()

    # ---------------------------------------------------------------- folders
    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its (created) folder."""
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def counts(self) -> dict:
        with self._lock:
            active = sum(self._active.values())
            running = sum(min(n, self.concurrency) for n in self._active.values())
        return {"running": running, "queued": active - running, "max_queue": self.max_queue,
                "concurrency": self.concurrency}

    # ---------------------------------------------------------------- life cycle
    def submit(self, job: Job) -> None:
        """Queue a job (its folder is removed if the queue is full)."""
        with self._lock:
            waiting = sum(max(0, n - self.concurrency) for n in self._active.values())
            if self._active[job.model] >= self.concurrency and waiting >= self.max_queue:
                shutil.rmtree(job.folder, ignore_errors=True)
                raise QueueFull(f"the queue is full ({self.max_queue} jobs waiting); try again later")
            self._active[job.model] += 1
            self.jobs[job.id] = job
        self._pools[job.model].submit(self._run, job)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is not None:
            job.last_seen = time.monotonic()
        return job

    def release(self, job: Job) -> None:
        """Forget a job and remove its folder; a job still queued or running is cancelled first."""
        job.cancel.set()
        with self._lock:
            self.jobs.pop(job.id, None)
        if job.ended.is_set() or job.state == "queued":
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Cancel everything, stop the workers and remove the root folder."""
        self._stop.set()
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            job.cancel.set()
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, job: Job) -> None:
        try:
            if job.cancel.is_set():
                job.state = "cancelled"
                return
            job.state, job.started = "running", time.monotonic()
            pipe = self.registry.pipeline(job.model, job.precision)

            def on_progress(frames: int) -> None:
                job.done = frames
                if job.cancel.is_set():
                    raise JobCancelled
                if job.max_frames is not None and frames > job.max_frames:
                    raise DaganError(f"the driving video is longer than this server's limit "
                                     f"({job.max_frames} frames, --max-seconds)")

            job.result = pipe.run(job.source, job.driving, job.output, job.options, on_progress=on_progress)
            job.total = max(job.total, job.result.frames)
            job.state = "done"
        except JobCancelled:
            job.state = "cancelled"
        except DaganError as exc:
            job.state, job.error = "failed", job.clean(str(exc))
        except Exception as exc:  # a bug: logged in full here, one line for the client
            log.exception("job %s failed", job.id)
            job.state, job.error, job.status_code = "failed", f"internal error ({type(exc).__name__})", 500
        finally:
            job.finished = time.monotonic()
            if job.state != "done" or job.cancel.is_set():
                shutil.rmtree(job.folder, ignore_errors=True)
            with self._lock:
                self._active[job.model] -= 1
            job.ended.set()

    # ---------------------------------------------------------------- janitor
    def sweep(self) -> None:
        """Cancel abandoned jobs, remove expired results and stray folders."""
        now = time.monotonic()
        with self._lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            if job.ended.is_set():
                if now - (job.finished or now) > self.result_ttl:
                    self.release(job)
            elif now - job.last_seen > self.abandon_after:
                log.info("job %s: nobody asked for it for %.0f s; cancelled", job.id, self.abandon_after)
                self.release(job)
        with self._lock:
            known = {j.folder.name for j in self.jobs.values()}
        for folder in self.root.iterdir():
            if folder.name not in known and now - folder.stat().st_mtime > self.abandon_after:
                shutil.rmtree(folder, ignore_errors=True)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self.sweep()
            except OSError:
                log.exception("janitor")
