"""The two pages in a real browser (headless Debian chromium via Playwright) against `dagan serve`.

With DAGAN_SCREENSHOTS=1 the screenshots go to docs/images/serve_*.png (else to a temp dir). The live test prints its latency and frames/s and, with
DAGAN_BENCH_OUT=FILE, writes them there as JSON (the README's numbers come from that run).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from app_helpers import ROOT, need

from dagan.io import probe_video

IMAGES = ROOT / "docs" / "images"


def _screenshot(page, name: str, tmp_path: Path) -> None:
    """The page as PNG: into docs/images with DAGAN_SCREENSHOTS=1 (the README's), else a temp dir."""
    folder = IMAGES if os.environ.get("DAGAN_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)
    assert (folder / name).stat().st_size > 10_000


def test_animate_page_runs_the_samples_and_downloads_the_video(served, browser, tmp_path):
    page = need(browser).new_page()
    try:
        page.goto(served.base + "/")
        page.wait_for_selector("#model option[value=demo]", state="attached")
        page.click("#example-both")
        page.wait_for_selector("#driving-preview.shown")
        page.click("#run")
        page.wait_for_function("document.getElementById('progress-text').textContent.includes('frames/s')",
                               timeout=120_000)
        page.wait_for_selector("#download:not(.hidden)", timeout=180_000)
        assert page.text_content("#error") == ""
        assert "75 / 75 frames" in page.text_content("#progress-text")
        page.wait_for_function("document.getElementById('result').readyState >= 2", timeout=30_000)
        page.evaluate("() => new Promise(done => { const v = document.getElementById('result');"
                      " v.onseeked = done; v.currentTime = 1.5; })")  # a frame mid-motion, playable
        page.wait_for_function("document.getElementById('result').readyState === 4", timeout=30_000)
        page.wait_for_timeout(500)
        _screenshot(page, "serve_animate.png", tmp_path)
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "download.mp4"
        download.value.save_as(saved)
        info = probe_video(saved)
        assert info.num_frames == 75
        assert info.has_audio and info.audio_codec == "aac"
        assert "with audio" in page.text_content("#result-info")
        assert len(served.job_folders()) == 1  # the result, kept for the page
    finally:
        page.close()
    deadline = time.monotonic() + 30
    while served.job_folders() and time.monotonic() < deadline:  # leaving the page deletes its job
        time.sleep(0.2)
    assert served.job_folders() == []


def test_animate_page_shows_a_readable_error_for_a_text_file_as_the_photo(served, browser, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a photo\n")
    page = need(browser).new_page()
    try:
        page.goto(served.base + "/")
        page.set_input_files("#source", str(text))
        page.click("#example-driving")
        page.wait_for_selector("#driving-preview.shown")
        page.click("#run")
        page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
        message = page.text_content("#error")
        assert message == "not a readable image: 'notes.txt'"
        assert page.is_hidden("#download")
    finally:
        page.close()


def test_animate_page_takes_a_webcam_snapshot_and_recording(served, browser, tmp_path):
    """The fake camera as both inputs; the browser's WebM (no duration) comes back at its real rate."""
    page = need(browser).new_page()
    try:
        page.goto(served.base + "/")
        page.click("#snap-start")
        page.wait_for_function("document.getElementById('snap-video').videoWidth > 0", timeout=30_000)
        page.click("#snap")
        page.wait_for_selector("#source-preview.shown")
        page.click("#rec-start")
        page.wait_for_function("document.getElementById('rec-video').videoWidth > 0", timeout=30_000)
        page.wait_for_timeout(1500)
        page.click("#rec-stop")
        page.wait_for_selector("#driving-preview.shown")
        page.click("#run")
        page.wait_for_function("!document.getElementById('download').classList.contains('hidden')"
                               " || document.getElementById('error').textContent", timeout=180_000)
        assert page.text_content("#error") == ""
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "webcam.mp4"
        download.value.save_as(saved)
        info = probe_video(saved)
        assert info.num_frames >= 2 and 1 <= info.fps <= 60  # not the WebM's 1000 "fps" time base
    finally:
        page.close()


def test_live_page_animates_the_fake_camera_and_reports_latency(served, browser, tmp_path):
    page = need(browser).new_page()
    try:
        page.goto(served.base + "/live")
        page.wait_for_selector("#model option[value=demo]", state="attached")
        page.click("#start")
        page.wait_for_function("window.liveStats.frames >= 10", timeout=120_000)
        page.click("#neutral")
        before = page.evaluate("window.liveStats.frames")
        page.wait_for_function(f"window.liveStats.frames >= {before + 30}", timeout=120_000)
        page.wait_for_timeout(600)  # one refresh of the numbers on the page
        stats = page.evaluate("({lat: window.liveStats.latencies, fps: window.liveStats.fps,"
                              " dropped: window.liveStats.dropped, frames: window.liveStats.frames})")
        assert page.text_content("#error") == ""
        assert float(page.text_content("#fps")) > 0
        assert int(page.text_content("#latency")) > 0 and int(page.text_content("#latency95")) > 0
        assert page.evaluate("document.getElementById('output').naturalWidth") == 128
        _screenshot(page, "serve_live.png", tmp_path)
        page.click("#stop")
    finally:
        page.close()
    latencies = sorted(stats["lat"][10:])  # after the warm-up frames
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    result = {"frames": stats["frames"], "median_ms": round(statistics.median(latencies), 1),
              "p95_ms": round(p95, 1), "fps": stats["fps"], "dropped_by_server": stats["dropped"]}
    print(f"\nlive: {json.dumps(result)}")
    if os.environ.get("DAGAN_BENCH_OUT"):
        Path(os.environ["DAGAN_BENCH_OUT"]).write_text(json.dumps(result, indent=1) + "\n")
