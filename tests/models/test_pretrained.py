"""save_pretrained / from_pretrained round trips and failures."""

import json

import pytest
import torch

import dagan
from dagan.config import get_preset
from dagan.models import DaGAN


def test_round_trip_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = DaGAN(get_preset("tiny-spade")).eval()
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = DaGAN.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and not loaded.training
    src, drv = torch.rand(1, 3, 64, 64), torch.rand(3, 3, 64, 64)
    torch.testing.assert_close(loaded.animate(src, drv), model.animate(src, drv), atol=0, rtol=0)


def test_missing_and_broken_directories(tmp_path):
    with pytest.raises(dagan.DaganError, match="does not exist"):
        DaGAN.from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(dagan.DaganError, match="no config.json"):
        DaGAN.from_pretrained(tmp_path / "empty")
    model = DaGAN(get_preset("tiny"))
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(dagan.DaganError, match="cannot read"):
        DaGAN.from_pretrained(tmp_path / "m")


def test_incompatible_config_and_weights(tmp_path):
    DaGAN(get_preset("tiny")).save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model"]["num_kp"] = 7
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(dagan.DaganError, match="wrong shape"):
        DaGAN.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(dagan.DaganError, match="not valid JSON"):
        DaGAN.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(dagan.DaganError, match="not a dagan model config"):
        DaGAN.from_pretrained(tmp_path / "m")
