"""Assemble the stage-2 (DaGAN) objectives as dicts of named, already-weighted scalar terms.

Keys equal the `LossWeights` field names: perceptual, generator_gan, feature_matching,
equivariance_value, equivariance_jacobian, keypoint_distance (generator side) and
discriminator_gan. A term whose weight is 0 is absent and is not computed; inputs that only such
terms need may be None, and the expensive ones (discriminator outputs, keypoints of the transformed
frame) may be given as zero-argument callables so they are evaluated only when needed. The
`needs_*` properties tell a caller which forward passes it can skip altogether.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TypeVar

import torch

from dagan.geometry.keypoints import Keypoints
from dagan.losses.adversarial import discriminator_gan_loss, feature_matching_loss, generator_gan_loss
from dagan.losses.equivariance import RandomTransform, equivariance_jacobian_loss, equivariance_value_loss
from dagan.losses.keypoint import MODES, keypoint_distance_loss
from dagan.losses.perceptual import PyramidPerceptualLoss

T = TypeVar("T")
Lazy = T | Callable[[], T]


@dataclass(frozen=True)
class LossWeights:
    """Loss weights of `config/vox-adv-256.yaml` (`train_params.loss_weights`) plus the
    keypoint-distance settings. Tuples are per layer (VGG relu1_1…relu5_1; discriminator blocks)."""

    perceptual: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
    generator_gan: float = 1.0
    discriminator_gan: float = 1.0
    feature_matching: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0)
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    keypoint_distance: float = 10.0
    keypoint_distance_threshold: float = 0.2
    keypoint_distance_mode: str = "hinge"

    def __post_init__(self):
        for name in ("perceptual", "feature_matching"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) or not all(isinstance(v, (int, float)) for v in value):
                raise ValueError(f"loss weight {name} must be a sequence of numbers, got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        for f in fields(self):
            value = getattr(self, f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            if f.name != "keypoint_distance_mode" and any(v < 0 for v in numbers):
                raise ValueError(f"loss weight {f.name} must be non-negative, got {value!r}")
        if self.keypoint_distance_threshold <= 0:
            raise ValueError(f"keypoint_distance_threshold must be positive, got {self.keypoint_distance_threshold}")
        if self.keypoint_distance_mode not in MODES:
            raise ValueError(f"keypoint_distance_mode must be one of {MODES}, got {self.keypoint_distance_mode!r}")

    @property
    def needs_perceptual(self) -> bool:
        return any(w != 0 for w in self.perceptual)

    @property
    def needs_feature_matching(self) -> bool:
        return any(w != 0 for w in self.feature_matching)

    @property
    def needs_discriminator(self) -> bool:
        """Whether the generator step needs discriminator outputs (GAN or feature-matching terms)."""
        return self.generator_gan != 0 or self.needs_feature_matching

    @property
    def needs_equivariance(self) -> bool:
        """Whether the generator step needs a random transform and keypoints of the transformed frame."""
        return self.equivariance_value != 0 or self.equivariance_jacobian != 0


class _Lazy:
    """Resolve a value or zero-argument callable once, on first use; complain if it is missing."""

    def __init__(self, name: str, value):
        self.name = name
        self.value = value
        self.resolved = False

    def get(self, term: str):
        if not self.resolved:
            if callable(self.value) and not isinstance(self.value, torch.nn.Module):
                self.value = self.value()
            self.resolved = True
        if self.value is None:
            raise ValueError(f"loss term {term!r} has a non-zero weight but {self.name} was not given")
        return self.value


def generator_terms(
    weights: LossWeights,
    *,
    real: torch.Tensor,
    fake: torch.Tensor,
    perceptual_loss: PyramidPerceptualLoss | None = None,
    disc_real_out: Lazy[Mapping[str, object]] | None = None,
    disc_fake_out: Lazy[Mapping[str, object]] | None = None,
    kp_source: Keypoints | None = None,
    kp_driving: Keypoints | None = None,
    kp_transformed: Lazy[Keypoints] | None = None,
    transform: RandomTransform | None = None,
) -> dict[str, torch.Tensor]:
    """Weighted generator/keypoint-detector terms. real (driving), fake (prediction): B×3×H×W.

    disc_*_out: the discriminator's output dicts on the pyramids of real and fake (both with the
    detached driving keypoints); kp_transformed: keypoints of `transform.transform_frame(real)`.
    """
    terms: dict[str, torch.Tensor] = {}
    disc_real = _Lazy("disc_real_out", disc_real_out)
    disc_fake = _Lazy("disc_fake_out", disc_fake_out)
    kp_t = _Lazy("kp_transformed", kp_transformed)

    def need(name: str, value):
        if value is None:
            raise ValueError(f"loss term {name!r} has a non-zero weight but its inputs were not given")
        return value

    if weights.needs_perceptual:
        loss = need("perceptual", perceptual_loss)
        terms["perceptual"] = loss(fake, real, weights=weights.perceptual)
    if weights.generator_gan != 0:
        terms["generator_gan"] = weights.generator_gan * generator_gan_loss(disc_fake.get("generator_gan"))
    if weights.needs_feature_matching:
        terms["feature_matching"] = feature_matching_loss(
            disc_real.get("feature_matching"), disc_fake.get("feature_matching"), weights.feature_matching
        )
    if weights.equivariance_value != 0:
        name = "equivariance_value"
        value = equivariance_value_loss(need(name, kp_driving), kp_t.get(name), need(name, transform))
        terms[name] = weights.equivariance_value * value
    if weights.equivariance_jacobian != 0:
        name = "equivariance_jacobian"
        value = equivariance_jacobian_loss(need(name, kp_driving), kp_t.get(name), need(name, transform))
        terms[name] = weights.equivariance_jacobian * value
    if weights.keypoint_distance != 0:
        name = "keypoint_distance"
        value = keypoint_distance_loss(
            need(name, kp_source),
            need(name, kp_driving),
            threshold=weights.keypoint_distance_threshold,
            mode=weights.keypoint_distance_mode,
        )
        terms[name] = weights.keypoint_distance * value
    return terms


def discriminator_terms(
    weights: LossWeights,
    *,
    disc_real_out: Lazy[Mapping[str, object]],
    disc_fake_out: Lazy[Mapping[str, object]],
) -> dict[str, torch.Tensor]:
    """{"discriminator_gan": w·LSGAN}; disc_fake_out must come from the *detached* prediction."""
    if weights.discriminator_gan == 0:
        return {}
    real = _Lazy("disc_real_out", disc_real_out).get("discriminator_gan")
    fake = _Lazy("disc_fake_out", disc_fake_out).get("discriminator_gan")
    return {"discriminator_gan": weights.discriminator_gan * discriminator_gan_loss(real, fake)}


def total_loss(terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the terms (what to call backward on). An empty dict is an error: nothing to train."""
    if not terms:
        raise ValueError("no loss terms: every weight is 0")
    values: Sequence[torch.Tensor] = list(terms.values())
    out = values[0]
    for value in values[1:]:
        out = out + value
    return out
