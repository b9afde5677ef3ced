"""LSGAN and discriminator feature-matching losses (FOMM/pix2pixHD).

They read the multi-scale discriminator's output dict:
`{"feature_maps_<scale>": [B×C_i×h_i×w_i, …], "prediction_map_<scale>": B×1×h×w}` for each scale.
All functions return unweighted sums over scales (except the per-layer feature-matching weights);
`objective.py` applies the loss weights.
"""

from collections.abc import Mapping, Sequence

import torch

PREDICTION_PREFIX = "prediction_map_"
FEATURES_PREFIX = "feature_maps_"


def _scales(out: Mapping[str, object], prefix: str) -> list[str]:
    scales = [key[len(prefix) :] for key in out if key.startswith(prefix)]
    if not scales:
        raise ValueError(f"discriminator output has no '{prefix}*' entry (keys: {sorted(out)})")
    return scales


def _paired_scales(real: Mapping[str, object], fake: Mapping[str, object], prefix: str) -> list[str]:
    scales = _scales(fake, prefix)
    if sorted(scales) != sorted(_scales(real, prefix)):
        raise ValueError(f"real and fake discriminator outputs have different scales: {sorted(real)} vs {sorted(fake)}")
    return scales


def generator_gan_loss(disc_fake: Mapping[str, object]) -> torch.Tensor:
    """Σ_scales mean((1 − D(fake))²): scalar."""
    total = 0
    for scale in _scales(disc_fake, PREDICTION_PREFIX):
        total = total + ((1 - disc_fake[PREDICTION_PREFIX + scale]) ** 2).mean()
    return total


def discriminator_gan_loss(disc_real: Mapping[str, object], disc_fake: Mapping[str, object]) -> torch.Tensor:
    """Σ_scales mean((1 − D(real))²) + mean(D(fake)²): scalar.

    Pass the discriminator's output on the *detached* generated image, as the original does.
    """
    total = 0
    for scale in _paired_scales(disc_real, disc_fake, PREDICTION_PREFIX):
        real = disc_real[PREDICTION_PREFIX + scale]
        fake = disc_fake[PREDICTION_PREFIX + scale]
        total = total + ((1 - real) ** 2).mean() + (fake**2).mean()
    return total


def feature_matching_loss(
    disc_real: Mapping[str, object],
    disc_fake: Mapping[str, object],
    weights: Sequence[float],
) -> torch.Tensor:
    """Σ_scales Σ_i w_i · mean|F_i(real) − F_i(fake)|: scalar. Layers with w_i = 0 are skipped.

    The real features are not detached (as the original): the discriminator's gradients from this
    term must be zeroed by the caller before its own step.
    """
    total = 0
    for scale in _paired_scales(disc_real, disc_fake, FEATURES_PREFIX):
        maps_real = disc_real[FEATURES_PREFIX + scale]
        maps_fake = disc_fake[FEATURES_PREFIX + scale]
        if not len(maps_real) == len(maps_fake) == len(weights):
            raise ValueError(
                f"feature matching: {len(weights)} weights for {len(maps_real)} real and {len(maps_fake)} fake maps"
            )
        for weight, a, b in zip(weights, maps_real, maps_fake):
            if weight != 0:
                total = total + weight * (a - b).abs().mean()
    if not torch.is_tensor(total):
        raise ValueError("feature matching with all weights 0: skip the term instead")
    return total
