import dataclasses

import pytest
import torch
from torch import nn

from dagan.geometry.keypoints import Keypoints
from dagan.losses.equivariance import RandomTransform
from dagan.losses.objective import LossWeights, discriminator_terms, generator_terms, total_loss
from dagan.losses.perceptual import PyramidPerceptualLoss

GENERATOR_KEYS = {
    "perceptual",
    "generator_gan",
    "feature_matching",
    "equivariance_value",
    "equivariance_jacobian",
    "keypoint_distance",
}


class Identity(nn.Module):
    def forward(self, x):
        return [x] * 5


def disc_out(pred, features):
    return {
        "feature_maps_1": [torch.full((1, 2, 3, 3), float(v)) for v in features],
        "prediction_map_1": torch.full((1, 1, 4, 4), float(pred)),
    }


def never(name):
    def call():
        raise AssertionError(f"{name} must not be evaluated")

    return call


@pytest.fixture
def inputs():
    real = torch.full((1, 3, 8, 8), 0.5)
    eye = torch.eye(2).expand(1, 3, 2, 2)
    kp_t = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [0.6, 0.6]]])
    return dict(
        real=real,
        fake=(real + 0.1).requires_grad_(True),
        perceptual_loss=PyramidPerceptualLoss(Identity(), scales=(1,)),
        disc_real_out=disc_out(1.0, [1, 1, 1, 1]),
        disc_fake_out=disc_out(0.5, [0, 1, 1, 1]),
        kp_source=Keypoints(torch.tensor([[[0.0, 0.0], [0.05, 0.0], [0.5, 0.5]]]), eye),
        kp_driving=Keypoints(kp_t + 0.1, eye),
        kp_transformed=Keypoints(kp_t, 2 * eye),
        transform=RandomTransform(1, 0.0, 0.0, 5),
    )


def test_defaults():
    w = LossWeights()
    assert w.perceptual == (10.0,) * 5 and w.feature_matching == (10.0,) * 4
    assert (w.generator_gan, w.discriminator_gan) == (1.0, 1.0)
    assert (w.equivariance_value, w.equivariance_jacobian, w.keypoint_distance) == (10.0, 10.0, 10.0)
    assert w.keypoint_distance_threshold == 0.2 and w.keypoint_distance_mode == "hinge"
    assert w.needs_perceptual and w.needs_discriminator and w.needs_equivariance
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.generator_gan = 0


def test_validation():
    assert LossWeights(perceptual=[1, 2, 3, 4, 5]).perceptual == (1.0, 2.0, 3.0, 4.0, 5.0)
    for bad in (
        dict(perceptual=10),
        dict(generator_gan=-1),
        dict(feature_matching=(10, -1, 0, 0)),
        dict(keypoint_distance_mode="sign"),
        dict(keypoint_distance_threshold=0),
    ):
        with pytest.raises(ValueError):
            LossWeights(**bad)


def test_generator_terms_known_values(inputs):
    terms = generator_terms(LossWeights(), **inputs)
    assert set(terms) == GENERATOR_KEYS
    expected = {
        "perceptual": 5 * 10 * 0.1,  # five identical maps, |0.1| each
        "generator_gan": 0.25,  # (1 − 0.5)²
        "feature_matching": 10 * 1.0,  # only the first map differs, by 1
        "equivariance_value": 10 * 0.1,
        "equivariance_jacobian": 10 * 0.5,  # |I − I·I·2I| = 0.5
        # hinge: 2 ordered pairs · 2(0.2 − d)/0.2 / 9, source pair at d = 0.05, driving pair at d = 0.1
        "keypoint_distance": 10 * (2 * 2 * 0.75 / 9 + 2 * 2 * 0.5 / 9),
    }
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-4), name
    total = total_loss(terms)
    assert total.item() == pytest.approx(sum(expected.values()), rel=1e-4)
    total.backward()
    assert inputs["fake"].grad.abs().sum() > 0


def test_keypoint_distance_mode_original(inputs):
    terms = generator_terms(LossWeights(keypoint_distance_mode="original"), **inputs)
    assert terms["keypoint_distance"].item() == pytest.approx(10 * (4 / 9 + 4 / 9))  # one close pair in each set


def test_perceptual_weights_come_from_loss_weights(inputs):
    terms = generator_terms(LossWeights(perceptual=(1, 0, 0, 0, 0)), **inputs)
    assert terms["perceptual"].item() == pytest.approx(0.1)


def test_zero_weights_skip_the_computation(inputs):
    weights = LossWeights(
        perceptual=(0,) * 5,
        generator_gan=0,
        feature_matching=(0,) * 4,
        equivariance_value=0,
        equivariance_jacobian=0,
    )
    assert not (weights.needs_perceptual or weights.needs_discriminator or weights.needs_equivariance)
    terms = generator_terms(
        weights,
        real=inputs["real"],
        fake=inputs["fake"],
        disc_real_out=never("disc_real_out"),
        disc_fake_out=never("disc_fake_out"),
        kp_transformed=never("kp_transformed"),
        kp_source=inputs["kp_source"],
        kp_driving=inputs["kp_driving"],
    )
    assert set(terms) == {"keypoint_distance"}
    assert generator_terms(dataclasses.replace(weights, keypoint_distance=0), real=None, fake=None) == {}


def test_single_zero_weight_removes_only_that_term(inputs):
    for name in GENERATOR_KEYS:
        field = next(f for f in dataclasses.fields(LossWeights) if f.name == name)
        zero = (0,) * len(field.default) if isinstance(field.default, tuple) else 0
        terms = generator_terms(LossWeights(**{name: zero}), **inputs)
        assert set(terms) == GENERATOR_KEYS - {name}


def test_lazy_inputs_evaluated_once(inputs):
    calls = []

    def fake_out():
        calls.append(1)
        return inputs["disc_fake_out"]

    lazy = {**inputs, "disc_fake_out": fake_out, "kp_transformed": lambda: inputs["kp_transformed"]}
    terms = generator_terms(LossWeights(), **lazy)
    assert set(terms) == GENERATOR_KEYS and calls == [1]  # shared by the GAN and feature-matching terms


def test_missing_inputs_for_nonzero_weights(inputs):
    for missing in ("perceptual_loss", "disc_fake_out", "kp_transformed", "transform", "kp_source"):
        with pytest.raises(ValueError, match="not given"):
            generator_terms(LossWeights(), **{**inputs, missing: None})


def test_discriminator_terms(inputs):
    terms = discriminator_terms(LossWeights(), disc_real_out=disc_out(0.75, []), disc_fake_out=disc_out(0.25, []))
    assert set(terms) == {"discriminator_gan"}
    assert terms["discriminator_gan"].item() == pytest.approx(0.125)
    terms = discriminator_terms(
        LossWeights(discriminator_gan=2), disc_real_out=disc_out(0.75, []), disc_fake_out=lambda: disc_out(0.25, [])
    )
    assert terms["discriminator_gan"].item() == pytest.approx(0.25)
    skipped = discriminator_terms(
        LossWeights(discriminator_gan=0), disc_real_out=never("real"), disc_fake_out=never("fake")
    )
    assert skipped == {}


def test_total_loss():
    assert total_loss({"a": torch.tensor(1.0), "b": torch.tensor(2.5)}).item() == 3.5
    with pytest.raises(ValueError):
        total_loss({})
