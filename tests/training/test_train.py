"""End-to-end runs of both stages on the tiny preset (in process): run-directory contents, exact
resume, overfitting a two-clip dataset, fine-tuning with --init, and clear errors."""

import dataclasses
import json

import pytest
import torch
import yaml

from dagan.config import get_preset
from dagan.errors import DaganError
from dagan.models import DaGAN
from dagan.training import (
    TrainConfig,
    get_depth_preset,
    get_train_preset,
    load_config,
    load_depth,
    read_depth_config,
    train,
    train_depth,
)
from dagan.training.checkpoint import list_checkpoints
from dagan.training.config import apply_overrides
from dagan.training.logging import read_metrics

STAGE2_TERMS = {"perceptual", "generator_gan", "feature_matching", "equivariance_value", "equivariance_jacobian",
                "keypoint_distance", "discriminator_gan"}
STAGE1_TERMS = {"photometric", "smoothness"}


def _losses(run, terms):
    return {m["step"]: {k: m[k] for k in terms} for m in read_metrics(run / "metrics.jsonl")}


def _images(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc.Tags()


def test_stage2_run_directory_and_exact_resume(tmp_path, data_dir, depth_dir, tiny_features):
    cfg = apply_overrides(get_train_preset("tiny"), ["checkpoint_every=2", "image_every=3"])
    full, part = tmp_path / "full", tmp_path / "part"
    model_dir = train(cfg, data_dir, depth_dir, full, max_steps=6, feature_extractor=tiny_features())
    # the run directory
    assert model_dir == full / "model"
    assert load_config(TrainConfig, full / "config.yaml") == dataclasses.replace(cfg, max_steps=6)
    metrics = read_metrics(full / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5, 6]  # tiny logs every step
    for m in metrics:
        assert STAGE2_TERMS <= set(m) and all(isinstance(m[k], float) for k in STAGE2_TERMS)
    assert [s for s, _ in list_checkpoints(full)] == [4, 6]  # keep_last 2
    tags = _images(full)
    assert {f"loss/{t}" for t in STAGE2_TERMS} <= set(tags["scalars"]) and tags["images"] == ["train/samples"]
    model = DaGAN.from_pretrained(model_dir)
    assert model.config == cfg.model
    frames = torch.rand(2, 3, 64, 64)
    assert model.animate(frames[:1], frames).shape == (2, 3, 64, 64)
    assert json.loads((model_dir / "config.json").read_text())["training"]["step"] == 6

    # stop after 3 steps, resume to 6 (crossing the epoch boundary at 4): the same losses at steps 4…6
    train(cfg, data_dir, depth_dir, part, max_steps=3, feature_extractor=tiny_features())
    with pytest.raises(DaganError, match="already holds checkpoints; pass --resume"):
        train(cfg, data_dir, depth_dir, part, max_steps=6, feature_extractor=tiny_features())
    train(cfg, data_dir, depth_dir, part, max_steps=6, resume=True, feature_extractor=tiny_features())
    expected, got = _losses(full, STAGE2_TERMS), _losses(part, STAGE2_TERMS)
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert got == expected
    resumed = DaGAN.from_pretrained(part / "model").state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, resumed[k]), k

    # a resumed run may not change the numbers
    changed = apply_overrides(cfg, ["lr_generator=1e-3"])
    with pytest.raises(DaganError, match="config differs in lr_generator"):
        train(changed, data_dir, depth_dir, part, max_steps=8, resume=True, feature_extractor=tiny_features())


def test_stage1_run_directory_and_exact_resume(tmp_path, data_dir, tiny_features):
    cfg = apply_overrides(get_depth_preset("tiny"), ["checkpoint_every=2"])
    full, part = tmp_path / "full", tmp_path / "part"
    depth_out = train_depth(cfg, data_dir, full, max_steps=5)
    assert read_depth_config(depth_out) == cfg.model.depth
    assert load_config(type(cfg), full / "config.yaml") == dataclasses.replace(cfg, max_steps=5)
    metrics = read_metrics(full / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4, 5]
    assert all(STAGE1_TERMS <= set(m) for m in metrics)
    assert _images(full)["images"] == ["train/depth"]

    train_depth(cfg, data_dir, part, max_steps=2)
    train_depth(cfg, data_dir, part, max_steps=5, resume=True)
    assert _losses(part, STAGE1_TERMS) == _losses(full, STAGE1_TERMS)
    a, b = load_depth(full / "model").state_dict(), load_depth(part / "model").state_dict()
    assert all(torch.equal(v, b[k]) for k, v in a.items())

    # the exported depth network is what stage 2 takes
    out = train(get_train_preset("tiny"), data_dir, full / "model", tmp_path / "stage2", max_steps=1,
                feature_extractor=tiny_features())
    model = DaGAN.from_pretrained(out)
    for k, v in a.items():
        assert torch.equal(model.depth.state_dict()[k], v), k


def test_tiny_preset_overfits_two_clips(tmp_path, data_dir, depth_dir, tiny_features):
    cfg = get_train_preset("tiny")
    train(cfg, data_dir, depth_dir, tmp_path / "run", max_steps=40, feature_extractor=tiny_features())
    perceptual = [m["perceptual"] for m in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    first, last = sum(perceptual[:10]) / 10, sum(perceptual[-10:]) / 10
    assert last < 0.8 * first, perceptual


def test_init_fine_tunes_from_a_model_directory(tmp_path, data_dir, depth_dir, tiny_features):
    torch.manual_seed(123)
    pretrained = DaGAN(get_preset("tiny"))
    pretrained.save_pretrained(tmp_path / "pretrained")
    cfg = apply_overrides(get_train_preset("tiny"), ["lr_generator=1e-12", "lr_keypoint_detector=1e-12"])
    out = train(cfg, data_dir, None, tmp_path / "run", max_steps=1, init=tmp_path / "pretrained",
                feature_extractor=tiny_features())
    tuned = DaGAN.from_pretrained(out)
    for name, p in pretrained.named_parameters():  # parameters (not BatchNorm statistics) barely moved
        torch.testing.assert_close(tuned.get_parameter(name), p, atol=1e-8, rtol=0, msg=name)
    with pytest.raises(DaganError, match="differs from the training config in model.num_kp"):
        train(apply_overrides(cfg, ["model.num_kp=4"]), data_dir, None, tmp_path / "run2", max_steps=1,
              init=tmp_path / "pretrained", feature_extractor=tiny_features())


def test_errors_are_clear_and_leave_no_run_directory(tmp_path, data_dir, depth_dir, monkeypatch,
                                                     tiny_features):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached VGG-19 weights
    cfg = get_train_preset("tiny")
    out = tmp_path / "run"
    feats = tiny_features()
    cases = [
        (dict(data_dir=tmp_path / "nope"), "data directory .*nope does not exist"),
        (dict(data_dir=tmp_path / "empty"), "dataset split .*train not found"),
        (dict(data_dir=tmp_path / "noclips"), "no clips in dataset split"),
        (dict(depth_dir=tmp_path / "nodepth"), "depth directory .*nodepth does not exist"),
        (dict(depth_dir=None), "a depth network is required"),
        (dict(cfg=apply_overrides(cfg, ["model.depth.num_layers=50"])), "depth network in .* is ResNet-18"),
        (dict(cfg=apply_overrides(cfg, ["batch_size=64"])), "fewer than the global batch 64"),
        (dict(feature_extractor=None), "refusing to train with random VGG weights"),
        (dict(feature_extractor=None, cfg=apply_overrides(cfg, ["perceptual_scales=[1,0.5,0.25,0.125]",
                                                                "allow_random_vgg=true"])),
         "VGG-19 needs ≥ 16 pixels"),
    ]
    (tmp_path / "empty").mkdir()
    (tmp_path / "noclips" / "train").mkdir(parents=True)
    (tmp_path / "noclips" / "train" / "notes.txt").write_text("not a clip")
    for change, message in cases:
        args = {**dict(cfg=cfg, data_dir=data_dir, depth_dir=depth_dir, feature_extractor=feats), **change}
        with pytest.raises(DaganError, match=message):
            train(args["cfg"], args["data_dir"], args["depth_dir"], out, max_steps=1,
                  feature_extractor=args["feature_extractor"])
        assert not out.exists(), message
    with pytest.raises(DaganError, match="dataset split .*train not found"):
        train_depth(get_depth_preset("tiny"), tmp_path / "empty", out, max_steps=1)
    assert not out.exists()


def test_resume_without_checkpoint_starts_fresh(tmp_path, data_dir, capsys):
    train_depth(get_depth_preset("tiny"), data_dir, tmp_path / "run", max_steps=1, resume=True)
    assert "no checkpoint" in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["max_steps"] == 1
