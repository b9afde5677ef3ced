import os

import numpy as np
import pytest
from helpers_media import write_png16
from PIL import Image, ImageOps

from dagan.errors import DaganError
from dagan.io import image as image_io
from dagan.io.image import apply_exif_orientation, read_image, to_uint8, write_image


def _rgb(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------- reading


def test_rgb_png_round_trip_is_exact(tmp_path):
    data = _rgb()
    write_image(tmp_path / "a.png", data)
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.float32 and out.shape == (6, 8, 3)
    assert np.array_equal(to_uint8(out), data)
    assert out.min() >= 0 and out.max() <= 1


def test_float_input_is_rounded_to_8_bits(tmp_path):
    data = np.linspace(0, 1, 6 * 8 * 3, dtype=np.float32).reshape(6, 8, 3)
    write_image(tmp_path / "f.png", data)
    assert np.abs(read_image(tmp_path / "f.png") - data).max() <= 0.5 / 255 + 1e-6


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = _rgb()[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (6, 8, 3)
    assert np.array_equal(out[..., 0], out[..., 2])
    assert np.allclose(out[..., 1], gray / 255.0)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 200  # red channel
    rgba[0, 0, 3] = 255  # opaque
    rgba[0, 1, 3] = 0  # transparent → white
    rgba[0, 2, 3] = 128  # half
    rgba[1, :, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (2, 3, 3)
    assert np.allclose(out[0, 0], [200 / 255, 0, 0])
    assert np.allclose(out[0, 1], [1, 1, 1])
    a = 128 / 255
    assert np.allclose(out[0, 2], [200 / 255 * a + 1 - a, 1 - a, 1 - a], atol=1e-6)


def test_palette_image_with_transparency(tmp_path):
    im = Image.new("P", (4, 2))
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putdata([0, 0, 1, 1, 0, 1, 0, 1])
    im.save(tmp_path / "p.png", transparency=1)
    out = read_image(tmp_path / "p.png")
    assert np.allclose(out[0, 0], [1, 0, 0])
    assert np.allclose(out[0, 2], [1, 1, 1])  # transparent palette entry → white


def test_16bit_grayscale_png_scaled_by_65535(tmp_path):
    data = np.array([[0, 1000, 65535], [257, 30000, 65534]], np.uint16)
    out = read_image(write_png16(tmp_path / "g16.png", data))
    assert out.shape == (2, 3, 3)
    assert np.allclose(out[..., 0], data / 65535.0, atol=1e-7)


def test_16bit_rgb_png_keeps_full_precision(tmp_path):
    data = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 997).astype(np.uint16)
    out = read_image(write_png16(tmp_path / "rgb16.png", data))
    assert np.allclose(out, data / 65535.0, atol=1e-7)  # Pillow alone would truncate to 8 bits


def test_16bit_rgba_png_is_composited(tmp_path):
    data = np.zeros((1, 2, 4), np.uint16)
    data[0, 0] = (65535, 0, 0, 65535)
    data[0, 1] = (65535, 0, 0, 0)
    out = read_image(write_png16(tmp_path / "rgba16.png", data))
    assert np.allclose(out[0, 0], [1, 0, 0]) and np.allclose(out[0, 1], [1, 1, 1])


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (8, 8, 3)
    assert out[..., 0].mean() > 0.9 and out[..., 1:].mean() < 0.1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    data = _rgb(5, 7, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(data).save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB"))
    out = read_image(tmp_path / "o.png")
    assert out.shape == expected.shape
    assert np.array_equal(to_uint8(out), expected)
    assert np.array_equal(apply_exif_orientation(data, orientation), expected)


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(DaganError, match="not found.*nope.png"):
        read_image(tmp_path / "nope.png")


def test_directory(tmp_path):
    with pytest.raises(DaganError, match="directory"):
        read_image(tmp_path)


def test_text_file_named_png(tmp_path):
    (tmp_path / "fake.png").write_text("definitely not a picture")
    with pytest.raises(DaganError, match="not a readable image.*fake.png"):
        read_image(tmp_path / "fake.png")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DaganError, match="empty.jpg"):
        read_image(tmp_path / "empty.jpg")


def test_truncated_png(tmp_path):
    write_image(tmp_path / "full.png", _rgb(64, 64))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DaganError, match="cut.png"):
        read_image(tmp_path / "cut.png")


# ---------------------------------------------------------------- writing


def test_write_into_missing_directory(tmp_path):
    with pytest.raises(DaganError, match="does not exist"):
        write_image(tmp_path / "no" / "such" / "dir.png", _rgb())


def test_write_where_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DaganError, match="not a directory"):
        write_image(tmp_path / "file" / "a.png", _rgb())


def test_write_unknown_format(tmp_path):
    with pytest.raises(DaganError, match="unknown image format"):
        write_image(tmp_path / "a.xyz", _rgb())


def test_write_rejects_bad_shape(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 2)))


def test_failed_write_keeps_existing_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    original = _rgb(seed=1)
    write_image(target, original)
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(image_io.Image.Image, "save", broken_save)
    with pytest.raises(DaganError, match="disk full"):
        write_image(target, _rgb(seed=2))
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_written_file_has_normal_permissions(tmp_path):
    write_image(tmp_path / "perm.png", _rgb())
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "perm.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_jpeg_write_drops_alpha(tmp_path):
    rgba = np.concatenate([_rgb(), np.full((6, 8, 1), 255, np.uint8)], axis=2)
    write_image(tmp_path / "a.jpg", rgba)
    assert read_image(tmp_path / "a.jpg").shape == (6, 8, 3)
