"""The HTTP API against real servers: every bad request, concurrency, the queue limit, the token,
the upload limit, and the upload folder staying empty (also when a client disconnects mid-job)."""

from __future__ import annotations

import io
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from dagan import assets
from dagan.io import probe_video

SOURCE = assets.sample_source().read_bytes()


def _files(source=SOURCE, driving=None, source_name="photo.png", driving_name="driving.mp4"):
    return {"source": (source_name, source), "driving": (driving_name, driving)}


def _post(base, files, data=None, headers=None, timeout=120):
    return httpx.post(base + "/api/animate", files=files, data=data, headers=headers, timeout=timeout)


def _wait_empty(served, timeout=30.0) -> list:
    """Poll until the server's upload root is empty (cleanup may trail the response slightly)."""
    deadline = time.monotonic() + timeout
    while served.job_folders() and time.monotonic() < deadline:
        time.sleep(0.2)
    return served.job_folders()


def _no_face_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((200, 200, 3), 180, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_health_lists_the_models_and_the_schema_documents_animate(served):
    health = httpx.get(served.base + "/api/health").json()
    assert health["status"] == "ok" and health["models"] == ["demo"]
    schema = httpx.get(served.base + "/api/openapi.json").json()
    body = schema["paths"]["/api/animate"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["source", "driving"]
    assert {"paste_back", "best_frame", "smooth_keypoints", "precision", "model", "absolute"} <= set(body["properties"])
    assert httpx.get(served.base + "/docs").status_code == 404  # Swagger UI would load from a CDN


def test_a_valid_request_returns_the_video_with_audio(served, short_clip, tmp_path):
    r = _post(served.base, _files(driving=short_clip.read_bytes()), data={"paste_back": "true"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(r.content)
    info = probe_video(out)
    assert info.num_frames == 8 and info.has_audio
    assert (info.width, info.height) == (384, 450)  # pasted back into the full photo
    assert _wait_empty(served) == []


@pytest.mark.parametrize("case, expected", [
    ("missing driving", "missing file field 'driving'"),
    ("text as photo", "not a readable image: 'notes.txt'"),
    ("text as video", "'notes.txt'"),
    ("no face", "no face found in 'blank.png'"),
    ("unknown model", "unknown model 'nope'; the models are: demo"),
    ("unknown option", "unknown field 'colour'"),
    ("bad value", "field 'batch_size' must be an integer, got 'many'"),
    ("contradiction", "'paste_back' and 'side_by_side' cannot both be true"),
    ("fp16 on cpu", "fp16 is not supported on CPU"),
    ("too large", "larger than this server's limit of 1 MB"),
    ("not multipart", "missing file field 'source'"),
])
def test_every_bad_request_gets_a_4xx_with_a_one_line_json_error(served, short_clip, case, expected):
    clip = short_clip.read_bytes()
    requests = {
        "missing driving": lambda: _post(served.base, {"source": ("photo.png", SOURCE)}),
        "text as photo": lambda: _post(served.base, _files(b"hello", clip, source_name="notes.txt")),
        "text as video": lambda: _post(served.base, _files(driving=b"hello", driving_name="notes.txt")),
        "no face": lambda: _post(served.base, _files(_no_face_png(), clip, source_name="blank.png")),
        "unknown model": lambda: _post(served.base, _files(driving=clip), {"model": "nope"}),
        "unknown option": lambda: _post(served.base, _files(driving=clip), {"colour": "red"}),
        "bad value": lambda: _post(served.base, _files(driving=clip), {"batch_size": "many"}),
        "contradiction": lambda: _post(served.base, _files(driving=clip), {"paste_back": "1", "side_by_side": "1"}),
        "fp16 on cpu": lambda: _post(served.base, _files(driving=clip), {"precision": "fp16"}),
        "too large": lambda: _post(served.base, _files(driving=b"\0" * (1_200_000))),
        "not multipart": lambda: httpx.post(served.base + "/api/animate", json={"source": "x"}),
    }
    r = requests[case]()
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["error"] and expected in body["error"], body
    assert "\n" not in body["error"] and "Traceback" not in body["error"] and "/tmp" not in body["error"]
    if case == "too large":
        assert r.status_code == 413


def test_a_chunked_upload_over_the_limit_gets_413(served):
    def body():  # a multipart file part that never ends, sent without Content-Length
        yield b'--b\r\nContent-Disposition: form-data; name="source"; filename="a.png"\r\n\r\n'
        for _ in range(20):
            yield b"x" * 100_000

    r = httpx.post(served.base + "/api/animate", content=body(),
                   headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and "limit of 1 MB" in r.json()["error"]


def test_three_concurrent_requests_all_succeed_and_leave_no_files(served, short_clip):
    clip = short_clip.read_bytes()
    results = [None] * 3

    def send(i):
        results[i] = _post(served.base, _files(driving=clip), timeout=300)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200, 200, 200]
    assert all(r.headers["x-dagan-frames"] == "8" for r in results)
    assert _wait_empty(served) == []


def test_a_client_that_disconnects_mid_job_leaves_no_files(served):
    files = _files(driving=assets.sample_driving().read_bytes())
    with pytest.raises(httpx.ReadTimeout):
        _post(served.base, files, timeout=httpx.Timeout(30, read=2.0))
    assert _wait_empty(served) == []
    health = httpx.get(served.base + "/api/health").json()
    assert health["queue"]["running"] == 0 and health["queue"]["queued"] == 0


def test_a_full_queue_answers_503_with_retry_after_and_long_videos_are_refused(app_server, short_clip):
    server = app_server(max_queue=0, max_seconds=1.0)
    clip = short_clip.read_bytes()
    first = httpx.post(server.base + "/api/jobs", files=_files(driving=clip), timeout=60)
    assert first.status_code == 202
    busy = _post(server.base, _files(driving=clip))
    assert busy.status_code == 503 and int(busy.headers["retry-after"]) > 0
    assert "queue is full" in busy.json()["error"]
    long = _post(server.base, _files(driving=assets.sample_driving().read_bytes()))
    assert long.status_code == 400 and "3.0 s long; this server accepts at most 1 s" in long.json()["error"]
    job = first.json()["id"]
    while (status := httpx.get(f"{server.base}/api/jobs/{job}").json())["state"] in ("queued", "running"):
        time.sleep(0.2)
    assert status["state"] == "done" and status["frames"] == 8 and status["total"] == 8
    video = httpx.get(f"{server.base}/api/jobs/{job}/result")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert httpx.delete(f"{server.base}/api/jobs/{job}").status_code == 200
    assert httpx.get(f"{server.base}/api/jobs/{job}").status_code == 404
    assert _post(server.base, _files(driving=clip)).status_code == 200  # room again
    assert _wait_empty(server) == []


def test_the_token_is_enforced_on_the_api_and_the_pages(app_server):
    server = app_server(token="s3cret")
    base = server.base
    assert httpx.get(base + "/api/health").status_code == 401
    wrong = httpx.get(base + "/api/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "wrong token"}
    assert httpx.get(base + "/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.post(base + "/api/animate", files=_files(driving=b"x")).status_code == 401
    page = httpx.get(base + "/live")
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/live"
    assert httpx.post(base + "/login", data={"token": "nope"}).status_code == 401
    with httpx.Client(base_url=base) as browser_like:
        login = browser_like.post("/login", data={"token": "s3cret", "next": "/live"})
        assert login.status_code == 303 and login.headers["location"] == "/live"
        assert browser_like.get("/live").status_code == 200
        assert browser_like.get("/api/health").status_code == 200


def _live_client(registry, tmp_path, **config):
    from starlette.testclient import TestClient

    from dagan.app.server import ServeConfig, create_app

    return TestClient(create_app(ServeConfig(device="cpu", work_dir=str(tmp_path), **config), registry=registry))


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_live_socket_protocol_answers_frames_and_reports_errors(registry, tmp_path):
    import struct

    from dagan.app.live import encode_jpeg
    from dagan.io import iter_frames

    frames = iter_frames(assets.sample_driving())
    frame = encode_jpeg(next(frames))
    frames.close()
    with _live_client(registry, tmp_path) as client, client.websocket_connect("/api/live") as ws:
        ws.send_text("{not json")
        assert ws.receive_json() == {"type": "error", "error": "control messages must be JSON"}
        ws.send_text('{"type": "options", "model": "nope"}')
        assert "unknown model 'nope'" in ws.receive_json()["error"]
        ws.send_bytes(b"S" + _no_face_png())
        assert "no face found in the source photo" in ws.receive_json()["error"]
        ws.send_bytes(b"S" + SOURCE)
        assert ws.receive_json() == {"type": "ready", "model": "demo", "size": 128}
        ws.send_bytes(b"F" + struct.pack(">I", 7) + frame)
        answer = ws.receive_bytes()
        assert struct.unpack(">I", answer[:4]) == (7,) and struct.unpack(">I", answer[4:8])[0] > 0
        assert Image.open(io.BytesIO(answer[8:])).size == (128, 128)
        ws.send_bytes(b"F" + struct.pack(">I", 8) + b"garbage")
        while (message := ws.receive_json())["type"] == "stats":
            assert message["processed"] == 1
        assert message == {"type": "error", "error": "camera frame is not a readable image"}


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_live_socket_needs_the_token_and_is_limited_in_number(registry, tmp_path):
    from starlette.websockets import WebSocketDisconnect

    with _live_client(registry, tmp_path, token="t", max_live=1) as client:
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect("/api/live"):
                pass
        assert refused.value.code == 4401
        client.cookies.set("dagan_token", "t")
        with client.websocket_connect("/api/live"):
            with pytest.raises(WebSocketDisconnect) as busy:
                with client.websocket_connect("/api/live"):
                    pass
            assert busy.value.code == 1013
