"""Training configs: presets, YAML round trip, strict keys, `--set` overrides with type coercion."""

import pytest

from dagan.config import get_preset
from dagan.errors import DaganError
from dagan.losses import LossWeights
from dagan.training import (
    DepthTrainConfig,
    TrainConfig,
    apply_overrides,
    get_depth_preset,
    get_train_preset,
    load_config,
    save_config,
)


def test_vox256_presets_are_the_papers_runs():
    cfg = get_train_preset("vox-256")
    assert cfg.model == get_preset("vox-256")
    assert (cfg.lr_generator, cfg.lr_keypoint_detector, cfg.lr_discriminator) == (2e-4, 2e-4, 2e-4)
    assert cfg.betas == (0.5, 0.999) and cfg.lr_milestones == ()
    assert cfg.loss_weights == LossWeights()
    assert cfg.loss_weights.perceptual == (10.0,) * 5 and cfg.loss_weights.keypoint_distance_threshold == 0.2
    assert cfg.perceptual_scales == (1.0, 0.5, 0.25, 0.125)
    assert (cfg.transform.sigma_affine, cfg.transform.sigma_tps, cfg.transform.points_tps) == (0.05, 0.005, 5)
    assert not cfg.allow_random_vgg
    depth = get_depth_preset("vox-256")
    assert (depth.lr, depth.lr_step, depth.lr_gamma, depth.epochs) == (1e-4, 15, 0.1, 20)
    assert (depth.alpha, depth.smoothness, depth.frame_offsets) == (0.85, 1e-3, (0, -1, 1))
    assert depth.model.depth.num_scales == 4


def test_tiny_presets_are_small_and_log_every_step():
    for cfg in (get_train_preset("tiny"), get_depth_preset("tiny")):
        assert cfg.model.image_size <= 64 and cfg.log_every == 1 and cfg.num_workers == 0
        assert cfg.precision == "fp32"
    tiny = get_train_preset("tiny")
    assert len(tiny.loss_weights.feature_matching) == tiny.model.discriminator.num_blocks


@pytest.mark.parametrize("cls", [TrainConfig, DepthTrainConfig])
def test_yaml_round_trip(tmp_path, cls):
    cfg = load_config(cls, "tiny", ["seed=3", "batch_size=5"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(cls, str(tmp_path / "c.yaml")) == cfg


def test_yaml_partial_file_takes_defaults_and_model_preset_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: tiny\nbatch_size: 3\nloss_weights:\n  feature_matching: [1, 1, 1]\n")
    cfg = load_config(TrainConfig, path)
    assert cfg.model == get_preset("tiny") and cfg.batch_size == 3 and cfg.epochs == 150
    assert cfg.loss_weights.feature_matching == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("batch_sise: 3\n", "unknown key(s) batch_sise"),
        ("loss_weights: {perceptul: 1}\n", "loss_weights: unknown key(s) perceptul"),
        ("batch_size: '3'\n", "batch_size: expected int"),
        ("batch_size: 0\n", "batch_size must be ≥ 1"),
        ("model: nope\n", "unknown model preset"),
        ("betas: [0.5]\n", "betas: expected a list of 2"),
        ("- 1\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_yaml_files(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(DaganError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_config(TrainConfig, path)


def test_unknown_preset_and_missing_file():
    with pytest.raises(DaganError, match="unknown preset 'vox'"):
        load_config(TrainConfig, "vox")
    with pytest.raises(DaganError, match="does not exist"):
        load_config(TrainConfig, "missing/config.yaml")


def test_overrides_coerce_types():
    cfg = apply_overrides(get_train_preset("tiny"), [
        "batch_size=3", "lr_generator=1e-4", "allow_random_vgg=true", "vgg19_weights=none",
        "loss_weights.perceptual=[1,0,1,0,1]", "loss_weights.feature_matching=2,2,2", "model.num_kp=7",
        "transform.points_tps=3", "lr_milestones=[10, 20]", "precision=fp32",
    ])
    assert cfg.batch_size == 3 and cfg.lr_generator == 1e-4 and cfg.allow_random_vgg is True
    assert cfg.vgg19_weights is None and cfg.loss_weights.perceptual == (1.0, 0.0, 1.0, 0.0, 1.0)
    assert cfg.loss_weights.feature_matching == (2.0, 2.0, 2.0) and cfg.model.num_kp == 7
    assert cfg.transform.points_tps == 3 and cfg.lr_milestones == (10, 20)
    cfg = apply_overrides(get_train_preset("vox-256"), ["model=tiny", "model.num_kp=4",
                                                        "loss_weights.feature_matching=[1,1,1]"])
    assert cfg.model.num_kp == 4 and cfg.model.image_size == 64
    depth = apply_overrides(get_depth_preset("tiny"), ["alpha=0.8", "frame_offsets=[0,-2,2]"])
    assert depth.alpha == 0.8 and depth.frame_offsets == (0, -2, 2)


@pytest.mark.parametrize(
    "override, message",
    [
        ("batch_size", "not key=value"),
        ("nope=1", "config has no key 'nope'"),
        ("loss_weights.nope=1", "loss_weights has no key 'nope'"),
        ("batch_size=1.5", "expected an integer"),
        ("lr_generator=fast", "expected a number"),
        ("allow_random_vgg=maybe", "expected true or false"),
        ("batch_size.x=1", "is not a section"),
        ("precision=fp8", "precision must be one of"),
        ("loss_weights.feature_matching=[1,1]", "one weight per discriminator block"),
        ("loss_weights.perceptual=[1,1]", "needs 5 weights"),
        ("loss_weights.generator_gan=-1", "must be non-negative"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(DaganError, match=message):
        apply_overrides(get_train_preset("tiny"), [override])


def test_all_generator_weights_zero_is_an_error():
    zeros = ["loss_weights.perceptual=[0,0,0,0,0]", "loss_weights.generator_gan=0",
             "loss_weights.feature_matching=[0,0,0]", "loss_weights.equivariance_value=0",
             "loss_weights.equivariance_jacobian=0", "loss_weights.keypoint_distance=0"]
    with pytest.raises(DaganError, match="nothing to train"):
        apply_overrides(get_train_preset("tiny"), zeros)


def test_depth_config_checks():
    with pytest.raises(DaganError, match="frame_offsets"):
        apply_overrides(get_depth_preset("tiny"), ["frame_offsets=[-1,0,1]"])
    with pytest.raises(DaganError, match="alpha"):
        apply_overrides(get_depth_preset("tiny"), ["alpha=2"])
    with pytest.raises(DaganError, match="multiple of 32"):
        apply_overrides(get_depth_preset("tiny"), ["model.image_size=48"])
