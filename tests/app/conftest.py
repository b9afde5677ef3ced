"""Fixtures for the app tests: a `dagan serve` subprocess, in-process servers with other limits,
headless Debian chromium (Playwright) with a fake camera, and short media made from the samples."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from app_helpers import CHROMIUM_ARGS, INSTALL_HINT, ROOT, Served, chromium_path, free_port, wait_healthy

from dagan import assets
from dagan.io import iter_frames, open_writer

@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """`dagan serve` as a subprocess on a free loopback port (1 MB upload limit, 4 s video limit)."""
    work = tmp_path_factory.mktemp("serve-work")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="2")
    cmd = [sys.executable, "-m", "dagan", "serve", "--port", str(port), "--device", "cpu", "--work-dir", str(work),
           "--max-upload-mb", "1", "--max-seconds", "4"]
    log = (work / "server.log").open("w")  # a file, not a pipe nobody drains
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, log_path=work / "server.log")
        yield Served(base, work, proc.pid)
    finally:
        log.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def registry():
    from dagan.app.models import ModelRegistry

    return ModelRegistry(device="cpu")


@pytest.fixture
def app_server(registry, tmp_path):
    """Factory: an in-process server (uvicorn in a thread) for a ServeConfig's keyword arguments."""
    import uvicorn

    from dagan.app.server import ServeConfig, create_app

    servers = []

    def start(**config) -> Served:
        work = tmp_path / f"work{len(servers)}"
        work.mkdir()
        app = create_app(ServeConfig(device="cpu", work_dir=str(work), **config), registry=registry)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        served = Served(f"http://127.0.0.1:{port}", work)
        wait_healthy(served.base, timeout=30)
        return served

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory) -> Path:
    """The sample driving video's first 8 frames, with its audio (0.32 s at 25 fps)."""
    path = tmp_path_factory.mktemp("media") / "short.mp4"
    frames = iter_frames(assets.sample_driving())
    with open_writer(path, Fraction(25), (256, 256), audio_from=assets.sample_driving()) as writer:
        for _, frame in zip(range(8), frames):
            writer.write(frame)
    frames.close()
    return path


@pytest.fixture(scope="session")
def fake_camera(tmp_path_factory) -> Path:
    """A 640×480 .y4m of the sample driving video (the face centred, 1.5× up) for Chromium's fake camera."""
    path = tmp_path_factory.mktemp("camera") / "camera.y4m"
    from PIL import Image

    with path.open("wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F25:1 Ip A1:1 C420jpeg\n")
        for frame in iter_frames(assets.sample_driving()):
            canvas = np.full((480, 640, 3), 128, np.uint8)
            face = np.asarray(Image.fromarray(frame).resize((384, 384), Image.Resampling.BILINEAR))
            canvas[48:432, 128:512] = face
            yuv = av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuvj420p").to_ndarray()
            out.write(b"FRAME\n" + np.ascontiguousarray(yuv).tobytes())  # (H·3/2)×W planes Y, U, V
    return path


@pytest.fixture(scope="session")
def browser(tmp_path_factory, fake_camera):
    """Headless Debian chromium (a fresh profile) with the fake camera, or the reason there is none.

    Tests call `need(browser)`, which FAILS them (never skips) with a one-line install hint.
    """
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        yield "playwright is missing: pip install 'dagan[app]'"
        return
    if executable is None:
        yield INSTALL_HINT
        return
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, accept_downloads=True,
            viewport={"width": 1200, "height": 900},
            args=CHROMIUM_ARGS + [f"--use-file-for-fake-video-capture={fake_camera}"])
        try:
            yield context
        finally:
            context.close()
