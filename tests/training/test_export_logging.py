"""Depth export/import, metrics.jsonl resume truncation, image-grid helpers."""

import json

import pytest
import torch

from dagan.config import DepthConfig, get_preset
from dagan.errors import DaganError
from dagan.models import DaGAN, DepthNetwork
from dagan.training import load_depth, read_depth_config, save_depth
from dagan.training.logging import RunLogger, draw_keypoints, image_grid, read_metrics, to_rgb


def test_depth_round_trip(tmp_path):
    torch.manual_seed(0)
    net = DepthNetwork(18, 4)
    save_depth(tmp_path / "d", net, get_preset("tiny"), metadata={"training": {"step": 3}})
    doc = json.loads((tmp_path / "d" / "config.json").read_text())
    assert doc["format"] == "dagan-depth" and doc["image_size"] == 64 and doc["training"]["step"] == 3
    assert read_depth_config(tmp_path / "d") == DepthConfig(18, 4)
    loaded = load_depth(tmp_path / "d")
    assert not loaded.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_load_depth_from_a_dagan_model_dir(tmp_path):
    model = DaGAN(get_preset("tiny"))
    model.save_pretrained(tmp_path / "m")
    net = load_depth(tmp_path / "m")
    for k, v in model.depth.state_dict().items():
        assert torch.equal(v, net.state_dict()[k]), k


def test_depth_dir_errors(tmp_path):
    with pytest.raises(DaganError, match="does not exist"):
        load_depth(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DaganError, match="has no config.json"):
        load_depth(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"format": "other"}')
    with pytest.raises(DaganError, match="neither a dagan depth network nor a dagan model"):
        load_depth(tmp_path / "bad")
    save_depth(tmp_path / "d50", DepthNetwork(18, 4), DepthConfig(50, 4))  # config says 50, weights are 18
    with pytest.raises(DaganError, match="do not match the config"):
        load_depth(tmp_path / "d50")
    (tmp_path / "d50" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(DaganError, match="cannot read"):
        load_depth(tmp_path / "d50")


def test_metrics_truncated_on_resume(tmp_path):
    log = RunLogger(tmp_path, tensorboard=False)
    for step in (1, 2, 3, 4):
        log.log(step, {"loss": float(step)}, {"epoch": 0})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 5, "lo')  # torn line of a killed process
    log = RunLogger(tmp_path, resume_step=2, tensorboard=False)
    log.log(3, {"loss": 30.0})
    log.close()
    assert [(m["step"], m["loss"]) for m in read_metrics(tmp_path / "metrics.jsonl")] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    RunLogger(tmp_path, tensorboard=False).close()  # a fresh run starts a fresh file
    assert read_metrics(tmp_path / "metrics.jsonl") == []


def test_disabled_logger_writes_nothing(tmp_path):
    log = RunLogger(tmp_path, enabled=False)
    log.log(1, {"loss": 1.0})
    log.image(1, "x", torch.zeros(3, 4, 4))
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_grid_helpers():
    images = torch.zeros(2, 3, 32, 32)
    kp = torch.tensor([[[-1.0, -1.0], [0.0, 0.0]], [[1.0, 1.0], [0.5, -0.5]]])
    drawn = draw_keypoints(images, kp, radius=1)
    assert drawn.shape == images.shape and images.abs().sum() == 0  # input untouched
    assert drawn[0, :, 0, 0].sum() > 0 and drawn[0, :, 16, 16].sum() > 0 and drawn[1, :, 31, 31].sum() > 0
    assert not torch.equal(drawn[0, :, 0, 0], drawn[0, :, 16, 16])  # one colour per keypoint
    depth = to_rgb(torch.rand(2, 1, 8, 8), (32, 32))
    assert depth.shape == (2, 3, 32, 32) and depth.min() >= 0 and depth.max() <= 1
    grid = image_grid([images, depth, drawn], max_rows=4, pad=2)
    assert grid.shape == (3, 2 * 34 + 2, 3 * 34 + 2)
