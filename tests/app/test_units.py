"""The app's units without a server: option fields, the frame mailbox, the live session, the token,
the CLI's argument checks."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from dagan import assets
from dagan.app import live as live_module
from dagan.app.auth import COOKIE, presented_token, token_ok
from dagan.app.live import LatestFrame, LiveSession, decode_jpeg, encode_jpeg
from dagan.app.options import FILE_FIELDS, OPTION_FIELDS, multipart_schema, parse_options
from dagan.cli.main import main
from dagan.cli.serve import host_warning
from dagan.errors import DaganError
from dagan.inference.pipeline import AnimateOptions
from dagan.io import iter_frames, read_image


def test_no_fields_give_the_cli_defaults():
    request = parse_options({})
    assert request.options == AnimateOptions() and request.model is None and request.precision == "fp32"


def test_fields_named_as_the_cli_flags_set_the_options():
    request = parse_options({"absolute": "true", "no-adapt-scale": "1", "best_frame": "auto", "no_crop": "yes",
                             "side_by_side": "on", "no_audio": "true", "smooth_keypoints": "1.5",
                             "batch_size": "4", "precision": "bf16", "model": "demo"})
    assert request.options == AnimateOptions(relative=False, adapt_movement_scale=False, best_frame="auto", crop=False,
                                             side_by_side=True, smooth_keypoints=1.5, audio=False, batch_size=4)
    assert (request.model, request.precision) == ("demo", "bf16")
    assert parse_options({"best_frame": "3", "paste_back": "false"}).options.best_frame == 3


@pytest.mark.parametrize("fields, message", [
    ({"size": "3"}, "unknown field 'size'"),
    ({"paste_back": "maybe"}, "'paste_back' must be true or false"),
    ({"best_frame": "-1"}, "'best_frame' must be ≥ 0"),
    ({"best_frame": "middle"}, "'auto' or a frame number"),
    ({"smooth_keypoints": "fast"}, "must be a number Hz"),
    ({"smooth_keypoints": "-1"}, "between 0 and 100 Hz"),
    ({"batch_size": "0"}, "between 1 and 64"),
    ({"precision": "int8"}, "fp32, bf16, fp16"),
    ({"relative": "1", "absolute": "1"}, "cannot both be true"),
])
def test_bad_fields_are_one_line_errors(fields, message):
    with pytest.raises(DaganError, match=message):
        parse_options(fields)


def test_the_schema_lists_every_field_with_its_type():
    schema = multipart_schema()["content"]["multipart/form-data"]["schema"]
    assert set(schema["properties"]) == set(FILE_FIELDS) | set(OPTION_FIELDS)
    assert schema["properties"]["batch_size"]["type"] == "integer"
    assert schema["properties"]["precision"]["enum"] == ["fp32", "bf16", "fp16"]


def test_the_mailbox_keeps_only_the_newest_frame_and_counts_drops():
    async def scenario():
        box = LatestFrame()
        for i in range(3):
            box.put(i)
        first = await box.get()
        box.put(3)
        return first, await box.get(), box.dropped

    with ThreadPoolExecutor(1) as pool:  # a thread of its own: Playwright may hold this thread's loop
        assert pool.submit(asyncio.run, scenario()).result() == (2, 3, 2)


def test_jpeg_round_trip_and_bad_bytes():
    frame = np.zeros((24, 32, 3), np.uint8)
    assert decode_jpeg(encode_jpeg(frame)).shape == (24, 32, 3)
    with pytest.raises(DaganError, match="camera frame is not a readable image"):
        decode_jpeg(b"nope")
    with pytest.raises(DaganError, match="at most 16 pixels"):
        decode_jpeg(encode_jpeg(frame), max_side=16)


@pytest.fixture(scope="module")
def runtime():
    """The demo model's runtime, run on one torch thread: a 128² single frame gains nothing from two,
    and on a machine busy with other work two threads waiting for each other made it 10× slower."""
    from dagan.app.models import ModelRegistry

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield ModelRegistry(device="cpu").pipeline(None).runtime
    torch.set_num_threads(threads)


def _frames(n):
    frames = iter_frames(assets.sample_driving())
    out = [f for _, f in zip(range(n), frames)]
    frames.close()
    return out


def test_live_frames_are_the_model_size_and_detection_runs_every_n_frames(runtime, monkeypatch):
    calls = []
    real = live_module.detect_faces
    monkeypatch.setattr(live_module, "detect_faces", lambda *a, **k: calls.append(1) or real(*a, **k))
    session = LiveSession(runtime, read_image(assets.sample_source()), detect_every=2)
    calls.clear()
    outputs = [session.process(f) for f in _frames(5)]
    assert all(o.shape == (128, 128, 3) and o.dtype == np.uint8 for o in outputs)
    assert len(calls) == 3  # frames 0, 2 and 4; the follower in between


def test_set_neutral_makes_the_current_pose_the_reference(runtime):
    """Relative motion from a frame to itself is no motion: the output is the source reconstructed."""
    session = LiveSession(runtime, read_image(assets.sample_source()))
    with torch.no_grad():
        still = runtime.generate(session.source.state, session.source.state.keypoints)[0].permute(1, 2, 0).numpy()
    a, b = _frames(21)[::20]
    first = session.process(a)  # the first frame is the neutral pose
    session.process(b)
    session.set_neutral()
    after = session.process(b)
    expected = (np.clip(still, 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.abs(first.astype(int) - expected).max() <= 1
    assert np.abs(after.astype(int) - expected).max() <= 1


def test_live_session_needs_a_face_in_the_source(runtime):
    with pytest.raises(DaganError, match="no face found in the source photo"):
        LiveSession(runtime, np.full((100, 100, 3), 0.5, np.float32))


def _scope(headers):
    return {"headers": [(k.encode(), v.encode()) for k, v in headers.items()]}


def test_the_token_comes_from_the_bearer_header_or_the_login_cookie():
    assert presented_token(_scope({"Authorization": "Bearer abc"})) == "abc"
    assert presented_token(_scope({"Cookie": f"other=1; {COOKIE}=xyz"})) == "xyz"
    assert presented_token(_scope({})) is None
    assert token_ok("abc", "abc") and not token_ok("abc", "abd") and not token_ok("abc", None)


def test_serve_warns_for_a_public_host_without_a_token():
    assert host_warning("127.0.0.1", None) is None
    assert host_warning("0.0.0.0", "t") is None
    assert "without --token" in host_warning("0.0.0.0", None)


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "--port must be 0…65535"),
    (["--concurrency", "0"], "--concurrency must be at least 1"),
    (["--max-queue", "-1"], "--max-queue must be ≥ 0"),
    (["--token", " "], "--token must not be empty"),
    (["--threads", "0"], "--threads must be at least 1"),
])
def test_serve_rejects_bad_arguments_in_one_line(argv, message, capsys):
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_serve_refuses_a_models_entry_that_is_not_a_directory(tmp_path):
    from dagan.app.models import ModelRegistry

    with pytest.raises(DaganError, match="not a directory"):
        ModelRegistry([str(tmp_path / "missing")], device="cpu")
