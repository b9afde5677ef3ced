"""Checkpoints: atomic writes, keep-last-K, skipping corrupt/partial files, RNG state round trip."""

import random

import numpy as np
import pytest
import torch

from dagan.training.checkpoint import (
    CheckpointError,
    capture_rng_state,
    checkpoint_dir,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _state(step: int, stage: str = "dagan") -> dict:
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    return {
        "stage": stage, "step": step, "epoch": 0, "position": step,
        "models": {"m": model.state_dict()}, "optimizers": {"m": opt.state_dict()},
        "schedulers": {"m": torch.optim.lr_scheduler.MultiStepLR(opt, [], 0.1).state_dict()},
        "sampler": {"epoch": 0, "start": step, "seed": 0, "num_replicas": 1},
        "rng": [capture_rng_state()], "config": {"seed": 0},
    }


def test_keep_last_and_latest(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, _state(step), keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]
    path, state = find_latest_checkpoint(tmp_path, "dagan")
    assert path.name == "step-00000004.pt" and state["step"] == 4
    assert not list(checkpoint_dir(tmp_path).glob("*.tmp"))


def test_corrupt_latest_is_skipped_and_tmp_ignored(tmp_path):
    save_checkpoint(tmp_path, _state(5), keep_last=3)
    good = checkpoint_dir(tmp_path) / "step-00000005.pt"
    data = good.read_bytes()
    (checkpoint_dir(tmp_path) / "step-00000009.pt").write_bytes(data[: len(data) // 2])  # torn file
    (checkpoint_dir(tmp_path) / "step-00000012.pt.123.tmp").write_bytes(b"partial")  # killed mid-write
    with pytest.warns(UserWarning, match="skipping .*step-00000009.pt is unreadable"):
        path, state = find_latest_checkpoint(tmp_path, "dagan")
    assert path == good and state["step"] == 5
    save_checkpoint(tmp_path, _state(6), keep_last=3)  # the next save removes stray temporaries
    assert not list(checkpoint_dir(tmp_path).glob("*.tmp"))


def test_wrong_stage_and_not_a_checkpoint(tmp_path):
    save_checkpoint(tmp_path, _state(1, "depth"), keep_last=1)
    path = checkpoint_dir(tmp_path) / "step-00000001.pt"
    with pytest.raises(CheckpointError, match="from stage 'depth'"):
        load_checkpoint(path, "dagan")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="not a dagan training checkpoint"):
        load_checkpoint(other)
    assert find_latest_checkpoint(tmp_path / "nothing") is None


def test_incomplete_state_is_refused(tmp_path):
    state = _state(1)
    del state["rng"]
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint(tmp_path, state, keep_last=1)


def test_rng_round_trip_through_a_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path, _state(1), keep_last=1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    _, state = find_latest_checkpoint(tmp_path)
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(state["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
