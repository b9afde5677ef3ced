import numpy as np
import pytest

from dagan.inference.face import Box, crop_and_resize
from dagan.inference.paste import blend_mask, even_size, paste_back


def _smooth_photo(h=90, w=120):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xx / w, yy / h, 0.5 + 0.3 * np.sin(xx / 9) * np.cos(yy / 11)], axis=2).astype(np.float32)


def test_even_size():
    assert even_size(5, 7) == (4, 6)
    assert even_size(640, 480) == (640, 480)
    with pytest.raises(ValueError, match="too small"):
        even_size(1, 10)


def test_output_is_the_photo_size():
    photo = _smooth_photo()
    out = paste_back(photo, np.zeros((64, 64, 3), np.float32), Box(30, 20, 80.5, 70.5))
    assert out.shape == photo.shape and out.dtype == np.float32
    uint8_out = paste_back((photo * 255).astype(np.uint8), np.zeros((64, 64, 3), np.uint8), Box(30, 20, 80, 70))
    assert uint8_out.shape == photo.shape and uint8_out.dtype == np.float32


def test_pasting_the_unchanged_crop_restores_the_photo():
    photo = _smooth_photo()
    box = Box(30.3, 12.7, 94.3, 76.7)
    crop = crop_and_resize(photo, box, 64)
    out = paste_back(photo, crop, box, feather=0.2)
    assert np.abs(out - photo).max() < 0.02


def test_face_replaces_the_middle_and_fades_out():
    photo = np.full((100, 100, 3), 0.5, np.float32)
    red = np.zeros((32, 32, 3), np.float32)
    red[..., 0] = 1.0
    box = Box(20, 20, 80, 80)
    out = paste_back(photo, red, box, feather=0.3)
    assert np.allclose(out[50, 50], [1, 0, 0])  # centre: the generated face
    assert np.allclose(out[21, 21], 0.5)  # box corner, outside the ellipse: the photo
    assert np.allclose(out[5, 5], 0.5) and np.allclose(out[95, 50], 0.5)  # outside the box
    ramp = out[50, 50:80, 0]
    assert np.all(np.diff(ramp) <= 1e-6) and ramp[-1] < 0.55  # soft, monotone edge
    rect = paste_back(photo, red, box, feather=0.0, shape="rect")
    assert np.allclose(rect[21, 21], [1, 0, 0]) and np.allclose(rect[19, 19], 0.5)


def test_box_partly_outside_the_photo():
    photo = _smooth_photo()
    face = np.ones((48, 48, 3), np.float32)
    box = Box(-30.5, 50, 40.5, 121)  # off the left and bottom edges
    out = paste_back(photo, face, box)
    assert out.shape == photo.shape
    assert np.array_equal(out[:, 45:], photo[:, 45:])  # right of the box: untouched
    assert np.array_equal(out[:45], photo[:45])  # above the box: untouched
    assert np.allclose(out[85, 5], 1.0)  # near the box centre: the face


def test_box_entirely_outside_leaves_the_photo():
    photo = _smooth_photo()
    out = paste_back(photo, np.ones((16, 16, 3), np.float32), Box(200, 200, 260, 260))
    assert np.array_equal(out, photo) and out is not photo


def test_blend_mask_values():
    box = Box(0, 0, 10, 10)
    mask = blend_mask(box, (0, 0, 10, 10), feather=0.5)
    assert mask.shape == (10, 10) and mask.dtype == np.float32
    assert mask[4:6, 4:6].min() == pytest.approx(1.0)
    assert mask[0, 0] == 0.0 and 0 < mask[5, 0] < 0.5
    hard = blend_mask(box, (-2, -2, 12, 12), feather=0.0)
    assert hard[0, 0] == 0 and hard[7, 7] == 1 and set(np.unique(hard)) == {0.0, 1.0}
    with pytest.raises(ValueError, match="shape"):
        blend_mask(box, (0, 0, 10, 10), shape="star")
    with pytest.raises(ValueError, match="feather"):
        blend_mask(box, (0, 0, 10, 10), feather=2.0)


def test_bad_shapes():
    with pytest.raises(ValueError, match="H×W×3"):
        paste_back(np.zeros((10, 10)), np.zeros((4, 4, 3)), Box(0, 0, 5, 5))


@pytest.mark.parametrize("box", [Box(30.3, 12.7, 94.3, 76.7), Box(-20.5, 50, 40, 110.5), Box(200, 200, 260, 260)])
def test_prepared_paste_back_gives_the_same_pixels(box):
    from dagan.inference.paste import PasteBack
    from dagan.io import to_uint8

    rng = np.random.default_rng(0)
    face = rng.random((64, 64, 3)).astype(np.float32)
    for photo in (_smooth_photo(), (_smooth_photo() * 255).astype(np.uint8)):
        paster = PasteBack(photo, box)
        for _ in range(2):  # reusable: the prepared photo is not modified
            out = paster(face)
            assert out.dtype == np.uint8 and out.shape == photo.shape
            np.testing.assert_array_equal(out, to_uint8(paste_back(photo, face, box)))
    with pytest.raises(ValueError, match="H×W×3"):
        paster(np.zeros((4, 4)))
