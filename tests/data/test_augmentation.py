import colorsys

import numpy as np
import pytest
import torch

from dagan.data.augmentation import (
    AugmentParams,
    ClipAugmentation,
    JitterParams,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    depth_augmentation,
    hsv_to_rgb,
    pair_augmentation,
    rgb_to_grayscale,
    rgb_to_hsv,
)


def _frames(f=2, h=8, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(f, 3, h, w, generator=g)


# --- colour operations: known values ---------------------------------------------------------


def test_rgb_to_hsv_matches_colorsys():
    img = _frames(1, 5, 7)[0]
    hsv = rgb_to_hsv(img)
    for y in range(5):
        for x in range(7):
            expected = colorsys.rgb_to_hsv(*img[:, y, x].tolist())
            assert hsv[:, y, x].tolist() == pytest.approx(expected, abs=1e-6)


def test_primary_colours_and_grey():
    img = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0.5]]).T[:, None, :]  # 3×1×4
    hsv = rgb_to_hsv(img)[:, 0, :].T
    expected = torch.tensor([[0, 1, 1], [1 / 3, 1, 1], [2 / 3, 1, 1], [0, 0, 0.5]])
    torch.testing.assert_close(hsv, expected)
    # a third of a turn takes red to green, green to blue, blue to red, and leaves grey alone
    shifted = adjust_hue(img, 1 / 3)[:, 0, :].T
    expected = torch.tensor([[0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0], [0.5, 0.5, 0.5]])
    torch.testing.assert_close(shifted, expected, atol=1e-5, rtol=0)


def test_hsv_round_trip():
    img = _frames(3)
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(img)), img, atol=1e-6, rtol=0)


def test_brightness_contrast_saturation_known_values():
    img = _frames(2)
    torch.testing.assert_close(adjust_brightness(img, 0.5), img * 0.5)
    torch.testing.assert_close(adjust_brightness(img, 3.0), (img * 3).clamp(0, 1))
    grey = rgb_to_grayscale(img)
    torch.testing.assert_close(adjust_saturation(img, 0.0), grey.expand_as(img))
    # contrast 0 gives each frame its own mean luma everywhere
    low = adjust_contrast(img, 0.0)
    for f in range(2):
        torch.testing.assert_close(low[f], torch.full_like(low[f], float(grey[f].mean())))


def test_factor_one_and_hue_zero_is_identity():
    img = _frames(2)
    for op in (adjust_brightness, adjust_contrast, adjust_saturation):
        assert torch.equal(op(img, 1.0), img)
    torch.testing.assert_close(adjust_hue(img, 0.0), img, atol=1e-6, rtol=0)
    out = color_jitter(img, JitterParams(1.0, 1.0, 1.0, 0.0, order=("hue", "contrast", "brightness", "saturation")))
    torch.testing.assert_close(out, img, atol=1e-6, rtol=0)


@pytest.mark.parametrize("turns", [1.0, -1.0, 2.0])
def test_full_hue_turn_is_identity(turns):
    img = _frames(2)
    torch.testing.assert_close(adjust_hue(img, turns), img, atol=1e-5, rtol=0)


def test_jitter_order_matters_and_is_respected():
    img = _frames(1)
    a = color_jitter(img, JitterParams(brightness=1.5, contrast=0.5, order=("brightness", "contrast")))
    b = adjust_contrast(adjust_brightness(img, 1.5), 0.5)
    c = color_jitter(img, JitterParams(brightness=1.5, contrast=0.5, order=("contrast", "brightness")))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_bad_input():
    with pytest.raises(ValueError):
        adjust_brightness(torch.rand(2, 4, 5, 5), 1.0)  # 4 channels
    with pytest.raises(ValueError):
        adjust_contrast(torch.zeros(3, 4, 4, dtype=torch.uint8), 1.0)
    with pytest.raises(ValueError):
        adjust_saturation(torch.rand(3, 4, 4), -0.5)
    with pytest.raises(ValueError):
        JitterParams(order=("blur",))
    with pytest.raises(ValueError):
        ClipAugmentation(hflip_prob=1.5)
    with pytest.raises(ValueError):
        ClipAugmentation(brightness=(1.2, 0.8))
    with pytest.raises(TypeError):
        pair_augmentation().sample(np.random)  # the legacy global state is not a generator


# --- random clip augmentation ----------------------------------------------------------------


def test_hflip_flips_every_frame():
    img = _frames(3)
    out = ClipAugmentation.apply_geometry(img, AugmentParams(horizontal_flip=True))
    assert torch.equal(out, img.flip(-1))


def test_time_flip_swaps_source_and_driving():
    img = _frames(2)
    out = ClipAugmentation.apply_geometry(img, AugmentParams(time_flip=True))
    assert torch.equal(out[0], img[1]) and torch.equal(out[1], img[0])


def test_same_transform_for_both_frames():
    aug = ClipAugmentation(time_flip_prob=0.0, hflip_prob=1.0, brightness=0.3, contrast=0.0, saturation=0.3, hue=0.2)
    one = _frames(1)
    pair = torch.cat([one, one])
    out = aug(pair, np.random.default_rng(3))
    assert torch.equal(out[0], out[1])
    assert not torch.allclose(out[0], one[0])
    # and it equals the transform of the single frame with the same generator
    torch.testing.assert_close(aug(one, np.random.default_rng(3))[0], out[0])


def test_sample_is_reproducible_from_the_generator():
    aug = pair_augmentation()
    a = [aug.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    b = [aug.sample(torch.Generator().manual_seed(7)) for _ in range(2)]
    assert b[0] == b[1]
    rng = np.random.default_rng(0)
    assert len({aug.sample(rng) for _ in range(20)}) == 20


def test_pair_augmentation_statistics():
    aug = pair_augmentation()
    rng = np.random.default_rng(0)
    params = [aug.sample(rng) for _ in range(4000)]
    time_flips = np.mean([p.time_flip for p in params])
    hflips = np.mean([p.horizontal_flip for p in params])
    assert abs(time_flips - 0.5) < 0.03 and abs(hflips - 0.25) < 0.03
    assert not any(p.time_flip and p.horizontal_flip for p in params)
    factors = np.array([[p.jitter.brightness, p.jitter.contrast, p.jitter.saturation, p.jitter.hue] for p in params])
    assert factors[:, :3].min() >= 0.9 and factors[:, :3].max() <= 1.1
    assert factors[:, 3].min() >= -0.1 and factors[:, 3].max() <= 0.1
    assert len({p.jitter.order for p in params}) == 24  # all orders of the 4 operations occur


def test_depth_augmentation_statistics():
    aug = depth_augmentation()
    rng = np.random.default_rng(1)
    params = [aug.sample(rng) for _ in range(4000)]
    assert not any(p.time_flip for p in params)
    assert abs(np.mean([p.horizontal_flip for p in params]) - 0.5) < 0.03
    jittered = [p.jitter for p in params if p.jitter is not None]
    assert abs(len(jittered) / len(params) - 0.5) < 0.03
    b = np.array([j.brightness for j in jittered])
    assert b.min() >= 0.8 and b.max() <= 1.2 and b.max() - b.min() > 0.35


def test_disabled_jitter_draws_nothing_and_keeps_values():
    aug = ClipAugmentation(time_flip_prob=0.0, hflip_prob=0.0, brightness=0, contrast=0, saturation=0, hue=0)
    img = _frames(2)
    params = aug.sample(np.random.default_rng(0))
    assert params == AugmentParams()
    assert torch.equal(aug.apply(img, params), img)


def test_output_range_and_shape():
    img = _frames(2, 16, 16)
    aug = ClipAugmentation(brightness=0.9, contrast=0.9, saturation=0.9, hue=0.5)
    rng = np.random.default_rng(0)
    for _ in range(10):
        out = aug(img, rng)
        assert out.shape == img.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
