"""Helpers shared by the app tests (the fixtures are in conftest.py): ports, health waits, servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DAGAN_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = "Debian chromium is missing: run `apt-get install -y chromium` as root (or `make test`)"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen | None = None, timeout: float = 120.0,
                 log_path: Path | None = None) -> None:
    """Poll /api/health until it answers (200, or 401 behind a token)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            log = log_path.read_text() if log_path else ""
            raise RuntimeError(f"dagan serve exited with {proc.returncode}: {log}")
        try:
            if httpx.get(base + "/api/health", timeout=2).status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server at {base} did not come up")


class Served:
    """A running server: its base URL, its work folder and (for a subprocess) its pid."""

    def __init__(self, base: str, work_dir: Path, pid: int | None = None):
        self.base, self.work_dir, self.pid = base, work_dir, pid

    def job_folders(self) -> list[Path]:
        """Every job folder under the server's upload root (dagan-serve-*/<job>)."""
        return [job for root in self.work_dir.glob("dagan-serve-*") for job in root.iterdir()]

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def chromium_path() -> str | None:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def need(browser):
    """The browser context, or a test failure saying how to install what is missing."""
    if isinstance(browser, str):
        pytest.fail(browser, pytrace=False)
    return browser
