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
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from dagan.app.jobs import Job, JobQueue
from dagan.app.options import FILE_FIELDS, OPTION_FIELDS, parse_options
from dagan.errors import DaganError
from dagan.io import probe_video, read_image


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
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                scope = dict(scope, dagan_body_error=self._error())
        received = 0

        async def limited():
            nonlocal received
            if "dagan_body_error" in scope:
                raise scope["dagan_body_error"]
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


def _check_inputs(job: Job, max_seconds: float | None) -> None:
    read_image(job.source)
    info = probe_video(job.driving)
    job.total, job.fps = info.num_frames, info.fps
    if max_seconds is not None:
        if info.duration > max_seconds + 0.5 / info.fps:
            raise DaganError(f"the driving video is {info.duration:.1f} s long; this server accepts at most "
                             f"{max_seconds:g} s (--max-seconds)")
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
