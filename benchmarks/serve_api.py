"""HTTP API throughput and server memory: `dagan serve` in a subprocess, the bundled 3-second clip.

    PYTHONPATH=src python benchmarks/serve_api.py [--requests 20] [--concurrency 1] [--device cpu]

Sends the bundled photo and 3-second driving video (75 frames, 25 fps, with audio) to
POST /api/animate one request at a time and reports seconds per request, video frames/s through
the whole API (upload, decode, face tracking, animation, encoding, download), and the server's
resident memory (VmRSS) after requests 1, 5 and the last (allocator pools and worker threads settle
in the first few requests; after that it must stay flat).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from dagan import assets


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1, help="server --concurrency")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    port = _port()
    work = tempfile.mkdtemp(prefix="serve-bench-")
    cmd = [sys.executable, "-m", "dagan", "serve", "--port", str(port), "--device", args.device,
           "--concurrency", str(args.concurrency), "--work-dir", work]
    server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        files = {"source": ("source.png", assets.sample_source().read_bytes()),
                 "driving": ("driving.mp4", assets.sample_driving().read_bytes())}
        seconds, rss = [], []
        for i in range(args.requests):
            start = time.perf_counter()
            r = httpx.post(base + "/api/animate", files=files, timeout=600)
            r.raise_for_status()
            seconds.append(time.perf_counter() - start)
            rss.append(_rss_mb(server.pid))
            print(f"request {i + 1}: {seconds[-1]:.2f} s, {int(r.headers['x-dagan-frames'])} frames, "
                  f"server RSS {rss[-1]:.0f} MB", flush=True)
        frames = int(r.headers["x-dagan-frames"])
        leftovers = [p for p in Path(work).rglob("*") if p.is_file()]
        result = {"requests": args.requests, "median_s_per_request": round(statistics.median(seconds), 2),
                  "frames_per_s": round(frames / statistics.median(seconds), 2),
                  "rss_mb_after_1": round(rss[0]), "rss_mb_after_5": round(rss[min(4, len(rss) - 1)]),
                  f"rss_mb_after_{args.requests}": round(rss[-1]),
                  "rss_ratio": round(rss[-1] / rss[0], 3), "files_left_in_work_dir": len(leftovers)}
        print(json.dumps(result))
    finally:
        server.terminate()
        server.wait(timeout=30)
        if os.path.isdir(work):
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
