import pytest
import torch

from dagan.losses.adversarial import discriminator_gan_loss, feature_matching_loss, generator_gan_loss


def disc_out(pred_value, feature_values, scale="1", shape=(2, 1, 5, 5)):
    return {
        f"feature_maps_{scale}": [torch.full((2, 4, 6, 6), float(v)) for v in feature_values],
        f"prediction_map_{scale}": torch.full(shape, float(pred_value)),
    }


def test_generator_lsgan_constant_map():
    # mean((1 - 0.25)²) = 0.5625
    torch.testing.assert_close(generator_gan_loss(disc_out(0.25, [])), torch.tensor(0.5625))


def test_discriminator_lsgan_constant_maps():
    # (1 - 0.75)² + 0.25² = 0.0625 + 0.0625
    value = discriminator_gan_loss(disc_out(0.75, []), disc_out(0.25, []))
    torch.testing.assert_close(value, torch.tensor(0.125))
    # a perfect discriminator has zero loss
    assert discriminator_gan_loss(disc_out(1, []), disc_out(0, [])).item() == 0


def test_lsgan_sums_over_scales():
    fake = {**disc_out(0.5, [], "1"), **disc_out(0.0, [], "0.5")}
    real = {**disc_out(1.0, [], "1"), **disc_out(0.5, [], "0.5")}
    torch.testing.assert_close(generator_gan_loss(fake), torch.tensor(0.25 + 1.0))
    torch.testing.assert_close(discriminator_gan_loss(real, fake), torch.tensor(0.0 + 0.25 + 0.25 + 0.0))


def test_feature_matching_known_maps():
    real = disc_out(0, [1.0, 2.0, 0.0, 5.0])
    fake = disc_out(0, [0.5, 4.0, 0.0, 5.0])
    # 10·0.5 + 1·2 + 3·0 + 7·0
    torch.testing.assert_close(feature_matching_loss(real, fake, (10, 1, 3, 7)), torch.tensor(7.0))


def test_feature_matching_skips_zero_weights():
    real = disc_out(0, [1.0, float("nan")])
    fake = disc_out(0, [0.0, 0.0])
    torch.testing.assert_close(feature_matching_loss(real, fake, (10, 0)), torch.tensor(10.0))


def test_generator_gan_gradient():
    pred = torch.full((1, 1, 2, 2), 0.25, requires_grad=True)
    generator_gan_loss({"prediction_map_1": pred}).backward()
    # d/dD mean((1-D)²) = -2(1-D)/N
    torch.testing.assert_close(pred.grad, torch.full((1, 1, 2, 2), -2 * 0.75 / 4))


def test_bad_inputs():
    with pytest.raises(ValueError):
        generator_gan_loss({"feature_maps_1": []})
    with pytest.raises(ValueError):
        discriminator_gan_loss(disc_out(1, [], "1"), disc_out(0, [], "0.5"))
    with pytest.raises(ValueError):
        feature_matching_loss(disc_out(0, [1, 2]), disc_out(0, [1, 2]), (10, 10, 10))
    with pytest.raises(ValueError):
        feature_matching_loss(disc_out(0, [1, 2]), disc_out(0, [1, 2]), (0, 0))
