"""The FastAPI app: two pages, the job API behind them, the one-shot animate API and the live socket.

    GET  /                      the animate page          GET  /live      the live page
    GET  /api/health            status, models, queue     GET  /login     the token form (with --token)
    POST /api/animate           multipart → video/mp4 (waits; the job is cancelled if the client leaves)
    POST /api/jobs              multipart → 202 {"id"}; GET /api/jobs/{id} progress; GET …/result video;
                                DELETE /api/jobs/{id} (the animate page uses these for its progress bar)
    GET  /api/samples/{name}    the bundled sample photo and driving video
    WS   /api/live              camera frames in, animated frames out (see dagan.app.live_socket)

Every error is JSON {"error": "one line"} with a 4xx status (5xx only for bugs, logged here, never
a traceback to the client). No CDN, no external fonts, no analytics: the pages are files in static/.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from dagan import __version__, assets
from dagan.app import live_socket
from dagan.app.auth import COOKIE, TokenMiddleware, token_ok
from dagan.app.jobs import Job, JobQueue, QueueFull
from dagan.app.models import ModelRegistry
from dagan.app.options import multipart_schema
from dagan.app.uploads import ApiError, BodyLimit, read_submission
from dagan.errors import DaganError

STATIC = Path(__file__).resolve().parent / "static"
SAMPLES = {"source.png": (assets.sample_source, "image/png"), "driving.mp4": (assets.sample_driving, "video/mp4")}
log = logging.getLogger("dagan.serve")


@dataclass
class ServeConfig:
    """Everything `dagan serve` lets a user set."""

    models: tuple[str, ...] = ()
    device: str = "cpu"
    token: str | None = None
    concurrency: int = 1
    max_queue: int = 16
    max_upload_mb: float = 50.0
    max_seconds: float | None = 60.0
    max_live: int = 2
    work_dir: str | None = None
    result_ttl: float = 600.0
    abandon_after: float = 60.0


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_, exc: ApiError):
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(DaganError)
    async def dagan_error(_, exc: DaganError):
        return _error(400, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_, exc: HTTPException):
        return _error(exc.status_code, exc.detail if isinstance(exc.detail, str) else "bad request", exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def internal_error(_, exc: Exception):
        log.exception("unhandled error")
        return _error(500, f"internal error ({type(exc).__name__})")


def _retry_after(queue: JobQueue) -> dict[str, str]:
    counts = queue.counts()
    return {"Retry-After": str(max(5, 5 * (counts["queued"] + counts["running"]) // queue.concurrency))}


async def _submit(request: Request) -> Job:
    state = request.app.state
    job = await read_submission(request, state.queue, state.config.max_seconds)
    try:
        state.queue.submit(job)
    except QueueFull as exc:
        raise ApiError(503, str(exc), _retry_after(state.queue)) from None
    return job


def _job(request: Request, job_id: str) -> Job:
    job = request.app.state.queue.get(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id!r} (finished results are kept for a while, then removed)")
    return job


def _safe_next(target: str) -> str:
    parsed = urlparse(target)
    return target if target.startswith("/") and not target.startswith("//") and not parsed.netloc else "/"


def _add_pages(app: FastAPI, config: ServeConfig) -> None:
    @app.get("/", include_in_schema=False)
    async def animate_page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/live", include_in_schema=False)
    async def live_page():
        return FileResponse(STATIC / "live.html", media_type="text/html")

    def login_page(error: str = "", status: int = 200) -> HTMLResponse:
        html = (STATIC / "login.html").read_text().replace("<!--error-->", error)
        return HTMLResponse(html, status_code=status)

    @app.get("/login", include_in_schema=False)
    async def login_form():
        return login_page()

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = await request.form(max_files=0, max_fields=2)
        given, target = str(form.get("token", "")), _safe_next(str(form.get("next", "/")))
        if config.token is None:
            return RedirectResponse(target, status_code=303)
        if not token_ok(config.token, given):
            return login_page('<p class="error">Wrong token.</p>', 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
        return response


def _add_api(app: FastAPI) -> None:
    body = {"requestBody": multipart_schema()}
    video = {200: {"content": {"video/mp4": {}}, "description": "the animated video"}}

    @app.get("/api/health", summary="Server status, the model names and the queue")
    async def health(request: Request):
        state = request.app.state
        return {"status": "ok", "version": __version__, "models": state.registry.names,
                "model_info": state.registry.describe(), "queue": state.queue.counts()}

    @app.post("/api/animate", summary="Animate a photo with a driving video; answers the mp4",
              openapi_extra=body, responses=video, response_class=Response)
    async def animate(request: Request):
        queue = request.app.state.queue
        job = await _submit(request)
        try:
            while not job.ended.is_set():
                if await request.is_disconnected():
                    log.info("job %s: client disconnected; cancelled", job.id)
                    return Response(status_code=499)
                await asyncio.sleep(0.1)
                queue.get(job.id)  # keeps the janitor from taking it for abandoned
            if job.state != "done":
                return _error(job.status_code, job.error or f"job {job.state}")
            data = await asyncio.to_thread(job.output.read_bytes)
        finally:
            queue.release(job)
        headers = {"Content-Disposition": 'attachment; filename="dagan.mp4"', "X-Dagan-Frames": str(job.result.frames)}
        return Response(data, media_type="video/mp4", headers=headers)

    @app.post("/api/jobs", status_code=202, summary="Start an animation job (the page's progress bar polls it)",
              openapi_extra=body)
    async def create_job(request: Request):
        job = await _submit(request)
        return {"id": job.id, "total": job.total, "fps": job.fps}

    @app.get("/api/jobs/{job_id}", summary="A job's progress: frames, total, frames/s, ETA, state, error")
    async def job_status(request: Request, job_id: str):
        return _job(request, job_id).status()

    @app.get("/api/jobs/{job_id}/result", summary="A finished job's video", responses=video,
             response_class=FileResponse)
    async def job_result(request: Request, job_id: str, download: bool = False):
        job = _job(request, job_id)
        if job.state != "done":
            raise ApiError(409, f"job {job_id} is {job.state}, not done")
        disposition = "attachment" if download else "inline"
        return FileResponse(job.output, media_type="video/mp4", content_disposition_type=disposition,
                            filename="dagan.mp4")

    @app.delete("/api/jobs/{job_id}", summary="Cancel a job or delete its result")
    async def delete_job(request: Request, job_id: str):
        request.app.state.queue.release(_job(request, job_id))
        return {"deleted": job_id}

    @app.get("/api/samples/{name}", summary="The bundled samples: source.png and driving.mp4")
    async def sample(name: str):
        if name not in SAMPLES:
            raise ApiError(404, f"no sample {name!r}; the samples are: {', '.join(SAMPLES)}")
        path, media = SAMPLES[name]
        return FileResponse(path(), media_type=media)


def create_app(config: ServeConfig | None = None, registry: ModelRegistry | None = None) -> FastAPI:
    """The app for a config; `registry` may be passed to share loaded models (tests)."""
    config = config or ServeConfig()
    registry = registry or ModelRegistry(list(config.models), device=config.device)
    root = Path(tempfile.mkdtemp(prefix="dagan-serve-", dir=config.work_dir))
    queue = JobQueue(registry, root, concurrency=config.concurrency, max_queue=config.max_queue,
                     result_ttl=config.result_ttl, abandon_after=config.abandon_after)

    @asynccontextmanager
    async def lifespan(_):
        yield
        await asyncio.to_thread(queue.close)

    app = FastAPI(title="dagan", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="DaGAN talking-head animation: a photo and a driving video in, a video out.")
    app.state.config, app.state.registry, app.state.queue = config, registry, queue
    app.state.live_sessions = 0
    _install_error_handlers(app)
    _add_pages(app, config)
    _add_api(app)
    live_socket.add_route(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    max_bytes = None if config.max_upload_mb is None else int(config.max_upload_mb * 2**20)
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    app.add_middleware(TokenMiddleware, token=config.token)
    return app
