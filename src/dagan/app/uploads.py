"""Request bodies in, jobs out: the upload size limit and the checks every submission passes.

`BodyLimit` counts the bytes of every request body as they arrive (a Content-Length over the limit
is refused before reading anything) and stops the request with 413. `read_submission` turns a
multipart form into a `Job`: files saved into the job's folder, options parsed, the photo and the
video opened once so a wrong file is a 400 now rather than a failed job later.
"""

from __future__ import annotations

import math
import re
import shutil
from fractions import Fraction
from pathlib import Path

import av

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from dagan.app.jobs import Job, JobQueue
from dagan.app.options import FILE_FIELDS, OPTION_FIELDS, parse_options
from dagan.errors import DaganError
from dagan.io import iter_frames, open_writer, probe_video, read_image


class ApiError(Exception):
    """An HTTP error with a one-line message, answered as {"error": message}."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class BodyLimit:
    """ASGI middleware: request bodies over `max_bytes` get 413 (see the module docstring)."""

    def __init__(self, app, max_bytes: int | None):
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> ApiError:
        return ApiError(413, f"the upload is larger than this server's limit of {self.max_bytes / 2**20:g} MB "
                             "(--max-upload-mb)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.max_bytes is None:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        refuse_now = declared.isdigit() and int(declared) > self.max_bytes
        received = 0

        async def limited():
            nonlocal received
            if refuse_now:
                raise self._error()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, limited, send)


def _suffix(filename: str | None) -> str:
    """A safe file suffix from the client's file name (readers sniff content; this only helps humans)."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


async def read_form(request: Request) -> tuple[dict[str, UploadFile], dict[str, str]]:
    """The multipart form as (files, text fields); malformed, duplicated or missing parts are 400s."""
    try:
        form = await request.form(max_files=len(FILE_FIELDS), max_fields=len(OPTION_FIELDS) + len(FILE_FIELDS))
    except HTTPException as exc:
        raise ApiError(400, f"bad multipart body: {exc.detail}") from None
    files: dict[str, UploadFile] = {}
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if name in files or name in fields:
            raise ApiError(400, f"field {name!r} is given more than once")
        if isinstance(value, UploadFile):
            if name not in FILE_FIELDS:
                raise ApiError(400, f"field {name!r} must be a text field, not a file")
            files[name] = value
        elif name in FILE_FIELDS:
            raise ApiError(400, f"field {name!r} must be a file upload")
        else:
            fields[name] = value
    for name, what in FILE_FIELDS.items():
        if name not in files:
            raise ApiError(400, f"missing file field {name!r} ({what})")
    return files, fields


def _too_long(seconds: float, max_seconds: float) -> DaganError:
    return DaganError(f"the driving video is {seconds:.1f} s long; this server accepts at most {max_seconds:g} s "
                      "(--max-seconds)")


def _timestamps_rate(path: Path) -> tuple[Fraction, int]:
    """(frame rate, frame count) from the video packets' timestamps (demuxed, not decoded)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        base = stream.time_base
    if len(pts) < 2 or base is None or pts[-1] == pts[0]:
        return Fraction(25), len(pts)
    rate = Fraction((len(pts) - 1) / float((pts[-1] - pts[0]) * base)).limit_denominator(1)
    return min(max(rate, Fraction(1)), Fraction(60)), len(pts)


def normalize_recording(path: Path, max_seconds: float | None = None) -> Path:
    """A browser recording (WebM without frame count or duration) rewritten as a constant-rate mp4.

    MediaRecorder files carry no duration, so their frame rate reads as the 1/1000 s time base;
    animated as they are, the result would play 40× too fast. The rate is measured from the packet
    timestamps instead and the clip re-encoded at it, keeping the audio. Other files pass through.
    """
    info = probe_video(path)
    if not info.frames_estimated:
        return path
    rate, count = _timestamps_rate(path)
    if count == 0:
        raise DaganError(f"video has no frames: {path}")
    if max_seconds is not None and count / rate > max_seconds:
        raise _too_long(float(count / rate), max_seconds)
    out = path.with_name(path.stem + "-normalized.mp4")
    with open_writer(out, rate, (info.width - info.width % 2, info.height - info.height % 2),
                     audio_from=path if info.has_audio else None) as writer:
        for frame in iter_frames(path):
            writer.write(frame[: info.height - info.height % 2, : info.width - info.width % 2])
    path.unlink()
    return out


def _check_inputs(job: Job, max_seconds: float | None) -> None:
    read_image(job.source)
    normalized = normalize_recording(job.driving, max_seconds)
    if normalized != job.driving:
        job.names[str(normalized)] = job.names.pop(str(job.driving))
        job.driving = normalized
    info = probe_video(job.driving)
    job.total, job.fps = info.num_frames, info.fps
    if max_seconds is not None:
        if info.duration > max_seconds + 0.5 / info.fps:
            raise _too_long(info.duration, max_seconds)
        job.max_frames = math.ceil(max_seconds * info.fps) + 1


async def read_submission(request: Request, queue: JobQueue, max_seconds: float | None) -> Job:
    """A checked, not yet submitted Job from a multipart request (its folder removed on any error)."""
    files, fields = await read_form(request)
    parsed = parse_options(fields)
    model = queue.registry.get(parsed.model).name
    await run_in_threadpool(queue.registry.pipeline, model, parsed.precision)  # precision vs device
    job_id, folder = queue.new_folder()
    try:
        paths = {}
        for name, upload in files.items():
            paths[name] = folder / (name + _suffix(upload.filename))
            with paths[name].open("wb") as out:
                await run_in_threadpool(shutil.copyfileobj, upload.file, out, 1 << 20)
            await upload.close()
        names = {str(paths[n]): files[n].filename or n for n in files}
        job = Job(job_id, model, parsed.precision, parsed.options, folder, paths["source"], paths["driving"],
                  names, total=0, fps=0.0)
        try:
            await run_in_threadpool(_check_inputs, job, max_seconds)
        except DaganError as exc:
            raise DaganError(job.clean(str(exc))) from None
        return job
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
