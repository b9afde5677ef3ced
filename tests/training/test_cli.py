"""The `dagan train` / `dagan train-depth` commands: argument errors, SIGKILL mid-run then --resume,
and a 2-process gloo DDP run of both stages under torchrun."""

import os
import signal
import time

import pytest
import torch

from dagan.cli.main import main
from dagan.models import DaGAN
from dagan.training import load_depth
from dagan.training.checkpoint import find_latest_checkpoint, list_checkpoints
from dagan.training.logging import read_metrics

FAST = ["loss_weights.perceptual=[0,0,0,0,0]"]  # no VGG needed: the subprocess cannot take an injected one


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--config", "tiny", "--data", "{tmp}/nope", "--depth", "{depth}", "--out", "{tmp}/r"],
         "data directory {tmp}/nope does not exist"),
        (["train", "--config", "nope", "--data", "{data}", "--depth", "{depth}", "--out", "{tmp}/r"],
         "unknown preset 'nope'"),
        (["train", "--config", "tiny", "--data", "{data}", "--depth", "{depth}", "--out", "{tmp}/r", "--set", "x=1"],
         "config has no key 'x'"),
        (["train", "--config", "tiny", "--data", "{data}", "--out", "{tmp}/r"], "a depth network is required"),
        (["train-depth", "--config", "tiny", "--data", "{data}", "--out", "{tmp}/r", "--max-steps", "0"],
         "--max-steps must be ≥ 1"),
        (["train-depth", "--config", "tiny", "--data", "{tmp}", "--out", "{tmp}/r"], "dataset split"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, data_dir, depth_dir, capsys, argv, message):
    fill = dict(tmp=tmp_path, data=data_dir, depth=depth_dir)
    rc = main([a.format(**fill) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message.format(**fill) in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_sigkill_mid_run_then_resume(tmp_path, data_dir, depth_dir, dagan_cli):
    run = tmp_path / "run"
    base = ["train", "--config", "tiny", "--data", str(data_dir), "--depth", str(depth_dir), "--out", str(run),
            "--set", "checkpoint_every=3", *FAST]
    proc = dagan_cli([*base, "--max-steps", "1000"], wait=False)
    deadline = time.monotonic() + 120
    try:
        while not list_checkpoints(run):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = find_latest_checkpoint(run, "dagan")[1]["step"]
    target = killed_at + 4
    result = dagan_cli([*base, "--resume", "--max-steps", str(target)], timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resumed from step {killed_at}" in result.stdout
    assert [m["step"] for m in read_metrics(run / "metrics.jsonl")] == list(range(1, target + 1))
    assert find_latest_checkpoint(run, "dagan")[1]["step"] == target
    assert not list((run / "checkpoints").glob("*.tmp"))
    DaGAN.from_pretrained(run / "model")


def test_torchrun_two_process_gloo_both_stages(tmp_path, data_dir, dagan_cli, monkeypatch):
    depth_run, run = tmp_path / "depth", tmp_path / "run"
    result = dagan_cli(["train-depth", "--config", "tiny", "--data", str(data_dir), "--out", str(depth_run),
                      "--max-steps", "2"], torchrun=2, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "global batch 4 (2 per process × 2 processes)" in result.stdout
    load_depth(depth_run / "model")
    result = dagan_cli(["train", "--config", "tiny", "--data", str(data_dir), "--depth", str(depth_run / "model"),
                      "--out", str(run), "--max-steps", "2", "--set", "allow_random_vgg=true"],
                     torchrun=2, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("global batch 4 (2 per process × 2 processes)") == 1  # rank-0 printing
    metrics = read_metrics(run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]  # rank 0 logs, once per step
    assert {"perceptual", "discriminator_gan", "equivariance_jacobian"} <= set(metrics[0])
    state = find_latest_checkpoint(run, "dagan")[1]
    assert state["step"] == 2 and len(state["rng"]) == 2  # every rank's RNG state
    assert not any(k.startswith("module.") for k in state["models"]["model"])
    model = DaGAN.from_pretrained(run / "model")
    depth = load_depth(depth_run / "model")
    assert all(torch.equal(v, model.depth.state_dict()[k]) for k, v in depth.state_dict().items())
    # DDP's first step against one-process runs of each rank's share of the same global batch and
    # seed (each rank's batch, BatchNorm statistics and random draws; CPU has no SyncBatchNorm, so
    # one process with batch 4 is not the same computation): the logged losses are their mean
    shares = [_one_rank_first_step(tmp_path / f"rank{r}", r, data_dir, depth_run / "model", monkeypatch)
              for r in range(2)]
    for key, value in metrics[0].items():
        if key in shares[0] and key in LOSS_TERMS:
            expected = (shares[0][key] + shares[1][key]) / 2
            assert value == pytest.approx(expected, rel=1e-3, abs=1e-6), (key, value, shares[0][key], shares[1][key])
    assert any(shares[0][k] != shares[1][k] for k in LOSS_TERMS if k in shares[0]), "both ranks saw the same data"


LOSS_TERMS = ("perceptual", "generator_gan", "feature_matching", "equivariance_value", "equivariance_jacobian",
              "keypoint_distance", "discriminator_gan")


def _one_rank_first_step(out, rank, data_dir, depth_dir, monkeypatch):
    """Step 1 of `dagan train` in this process as rank `rank` of 2 (sampler share, per-rank seed), no collectives."""
    from dagan.training import distributed

    with monkeypatch.context() as patch:
        patch.setattr(distributed, "rank", lambda: rank)
        patch.setattr(distributed, "world_size", lambda: 2)
        patch.setattr(distributed, "is_main", lambda: True)
        patch.setattr(distributed, "wrap", lambda module, device, **kw: module)  # no process group to wrap in
        assert main(["train", "--config", "tiny", "--data", str(data_dir), "--depth", str(depth_dir), "--out", str(out),
                     "--max-steps", "1", "--set", "allow_random_vgg=true"]) == 0
    return read_metrics(out / "metrics.jsonl")[0]
