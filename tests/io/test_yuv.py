"""YUV planes kept as decoded: the conversion matches swscale's exact path, the crops match RGB crops."""

import math

import av
import numpy as np
import pytest
from helpers_media import make_clip, pattern
from av.video.reformatter import VideoReformatter

from dagan.inference.face import Box, crop_and_resize, crop_yuv_and_resize
from dagan.io import iter_frames
from dagan.io.video import iter_frames_with_preview
from dagan.io.yuv import YuvFrame, yuv_frame

AVCOL_SPC = {"bt709": 1, "unspecified": 2, "bt470bg": 5, "smpte170m": 6, "smpte240m": 7, "bt2020": 9}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _smooth_planes(h: int, w: int, seed: int = 0) -> np.ndarray:
    """3×h×w uint8 Y, U, V: smooth fields with some texture, inside the legal ranges."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y = 120 + 60 * np.sin(xx / 7.0 + rng.uniform(0, 6)) * np.cos(yy / 11.0)
    u = 128 + 40 * np.cos(xx / 13.0 + yy / 17.0)
    v = 128 + 35 * np.sin((xx - yy) / 19.0)
    return np.clip(np.stack([y, u, v]), 16, 235).astype(np.uint8)


def _frame_444(planes: np.ndarray, colorspace: int, color_range: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv444p")
    frame.colorspace, frame.color_range = colorspace, color_range
    return frame


@pytest.mark.parametrize("space", ["unspecified", "bt470bg", "bt709", "bt2020", "smpte240m"])
@pytest.mark.parametrize("color_range", [1, 2])  # MPEG (limited), JPEG (full)
def test_conversion_matches_swscale_4_4_4(space, color_range):
    """Our float conversion agrees with swscale's own (4:4:4, unscaled) to within one level."""
    frame = _frame_444(_smooth_planes(24, 40), AVCOL_SPC[space], color_range)
    ours = yuv_frame(frame)
    assert ours is not None and ours.shape == (24, 40, 3)
    theirs = VideoReformatter().reformat(frame, format="rgb24").to_ndarray().astype(int)
    assert np.abs(ours.to_rgb().astype(int) - theirs).max() <= 1


def test_only_8_bit_planar_yuv_in_a_known_colorspace_is_kept_as_planes():
    assert yuv_frame(av.VideoFrame(32, 16, "rgb24")) is None
    assert yuv_frame(av.VideoFrame(32, 16, "yuv420p10le")) is None
    assert yuv_frame(av.VideoFrame(32, 16, "nv12")) is None
    ycgco = av.VideoFrame(32, 16, "yuv420p")
    ycgco.colorspace = 8
    assert yuv_frame(ycgco) is None
    full = yuv_frame(av.VideoFrame(32, 16, "yuvj420p"))
    assert full is not None and full.offset[0] == 0.0  # the "j" formats are full range
    assert yuv_frame(av.VideoFrame(33, 17, "yuv420p")).u.shape == (9, 17)  # odd sides round up


def _frame_420(planes_444: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame whose chroma is the 2×2 mean of the given full-resolution chroma."""
    y, u, v = planes_444.astype(np.float32)
    h, w = y.shape
    half = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(frame.planes, (y, half(u), half(v)), strict=True):
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        rows[:, : plane.width] = np.rint(data).astype(np.uint8)
    return frame


@pytest.mark.parametrize(
    "box",
    [
        Box(31.3, 20.6, 131.3, 120.6),  # inside
        Box(-20.5, -10.25, 70.5, 80.75),  # over the top-left corner: edge padding
        Box(120.0, 60.0, 170.0, 110.0),  # over the bottom-right corner
    ],
)
def test_crop_from_planes_matches_crop_of_the_converted_frame(box):
    """Resampling each plane, then converting, equals converting, then resampling, up to rounding."""
    frame = yuv_frame(_frame_420(_smooth_planes(96, 160)))
    reference = crop_and_resize(frame.to_rgb(), box, 32)
    crop = crop_yuv_and_resize(frame, box, 32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.float32
    assert _psnr(crop, reference) >= 45.0
    np.testing.assert_array_equal(crop_and_resize(frame, box, 32), crop)  # crop_and_resize dispatches


def test_planar_frames_read_like_rgb_frames(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", num_frames=3, size=(160, 96), audio=None)
    pairs = iter_frames_with_preview(clip, 80, gray=True, planar=True)
    for (full, small), (rgb_full, rgb_small) in zip(pairs, iter_frames_with_preview(clip, 80, gray=True), strict=True):
        assert isinstance(full, YuvFrame) and full.shape == rgb_full.shape
        np.testing.assert_array_equal(small, rgb_small)
        assert np.abs(full.to_rgb().astype(int) - rgb_full).mean() < 2  # swscale's 4:2:0 path truncates
        box = Box(20.5, 10.5, 100.5, 90.5)
        assert _psnr(crop_and_resize(full, box, 32), crop_and_resize(rgb_full, box, 32)) >= 40.0


def test_planar_frames_are_upright(tmp_path):
    clip = make_clip(tmp_path / "r.mp4", num_frames=2, size=(64, 48), rotation=90, audio=None)
    full, small = next(iter_frames_with_preview(clip, 32, gray=True, planar=True))
    expected = np.rot90(pattern(0, 64, 48), k=1)
    assert isinstance(full, YuvFrame) and full.shape == expected.shape and small.shape == (32, 24)
    assert full.u.shape == (32, 24)
    assert np.abs(full.to_rgb().astype(int) - next(iter_frames(clip))).mean() < 2


@pytest.mark.parametrize(
    ("pix_fmt", "size", "codec", "planar"),
    [
        ("yuvj420p", (160, 96), "libx264", True),  # full range
        ("yuv422p", (160, 96), "libx264", True),
        ("yuv444p", (161, 97), "libx264", True),  # odd sides
        ("yuv420p", (160, 96), "libvpx-vp9", True),
        ("yuv420p10le", (160, 96), "libx264", False),  # 10-bit: converted to RGB as before
    ],
)
def test_every_layout_crops_like_the_rgb_frames(tmp_path, pix_fmt, size, codec, planar):
    path = tmp_path / ("c.webm" if codec == "libvpx-vp9" else "c.mp4")
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pattern(i, *size)), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    full, _ = next(iter_frames_with_preview(path, 80, gray=True, planar=True))
    rgb = next(iter_frames(path))
    assert isinstance(full, YuvFrame) == planar and full.shape == rgb.shape
    box = Box(20.5, 10.5, 100.5, 90.5)
    assert _psnr(crop_and_resize(full, box, 32), crop_and_resize(rgb, box, 32)) >= 40.0
