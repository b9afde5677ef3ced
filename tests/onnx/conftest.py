"""Shared ONNX exports (each export costs tens of seconds on 2 cores, so every one is made once per session)."""

import contextlib
import io
import json
import os
import time
from pathlib import Path

import onnxruntime  # noqa: F401  the ONNX tests fail, not skip, without the dagan[onnx] extra
import pytest

from dagan.cli.main import main


def run_cli_export(root: Path) -> dict:
    """`dagan export` over an existing directory (refused), then again with --force."""
    out = root / "demo"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("mine")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        refused = main(["export", "-o", str(out)])
    kept = (out / "keep.txt").read_text()
    forced = main(["export", "-o", str(out), "--force"])
    return dict(root=str(root), out=str(out), refused=refused, refused_err=err.getvalue(), kept=kept, forced=forced)


@pytest.fixture(scope="session")
def cli_export(tmp_path_factory):
    """`dagan export` of the bundled demo model (the default --model), run as a user would: first
    over an existing directory (refused), then again with --force. What each step did is returned
    for tests/onnx/test_onnx_export.py to check; the exported directory serves every ONNX test.

    Under pytest-xdist the workers share one export: the first to get here makes it, the others wait.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return {**run_cli_export(tmp_path_factory.mktemp("onnx")), "shared": False}
    shared = tmp_path_factory.getbasetemp().parent  # the same for every worker of this session
    done, lock = shared / "onnx_demo_export.json", shared / "onnx_demo_export.lock"
    try:
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        for _ in range(6000):  # another worker is exporting: wait for it, at most ~10 minutes
            if done.exists():
                return {**json.loads(done.read_text()), "shared": True}
            time.sleep(0.1)
        raise TimeoutError("the other pytest-xdist worker never finished the shared ONNX export") from None
    try:
        result = run_cli_export(shared / "onnx")
    except BaseException as exc:  # tell the waiting worker instead of leaving it to time out
        result = dict(root="", out="", refused=None, refused_err="", kept="", forced=f"failed: {exc!r}")
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.rename(done)
    return {**result, "shared": True}


@pytest.fixture(scope="session")
def demo_export(cli_export):
    """The bundled demo model, exported by `dagan export --force`."""
    assert cli_export["forced"] == 0, f"dagan export of the demo model failed ({cli_export['forced']})"
    return Path(cli_export["out"])
