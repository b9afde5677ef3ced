"""Decoded video pictures kept as their Y, U, V planes, converted to RGB only where needed.

A 1080p driving frame is only ever used through a small face crop, so converting the whole frame
to RGB (and resampling three RGB channels) is wasted work: `YuvFrame` keeps the planes as decoded,
the crop resamples Y at full resolution and U, V at their own resolution, and only the size×size
result is converted (`YuvFrame.to_rgb_of`). Resampling is linear, so this equals converting first
up to rounding; the conversion itself is the exact ITU formula in float (swscale's own 4:4:4 path
agrees to a level), where swscale's unscaled 4:2:0 → RGB path truncates: `benchmarks/crop_speed.py`
measures both ways against the exact conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import av
import numpy as np

__all__ = ["YuvFrame", "yuv_frame", "yuv_to_rgb_matrix", "PLANAR_FORMATS"]

# 8-bit planar Y'CbCr layouts; the "j" variants are full range.
PLANAR_FORMATS = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p", "yuvj440p"}

# AVColorSpace → (Kr, Kb), as swscale reads them (unspecified and reserved: BT.601).
_LUMA_WEIGHTS = {
    1: (0.2126, 0.0722),  # BT.709
    2: (0.299, 0.114),  # unspecified
    3: (0.299, 0.114),  # reserved
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.470BG
    6: (0.299, 0.114),  # SMPTE 170M
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 non-constant luminance
}
_AVCOL_RANGE_JPEG = 2


@lru_cache(maxsize=None)
def yuv_to_rgb_matrix(kr: float, kb: float, full_range: bool) -> tuple[np.ndarray, np.ndarray]:
    """(M, offset) with RGB = M @ (YUV − offset), all in 8-bit levels; M is 3×3 float32.

    Cached: every frame of a video shares its pair (read-only, never modified).
    """
    kg = 1.0 - kr - kb
    y_gain, c_gain = (1.0, 1.0) if full_range else (255.0 / 219.0, 255.0 / 224.0)
    m = np.array(
        [
            [y_gain, 0.0, c_gain * 2 * (1 - kr)],
            [y_gain, -c_gain * 2 * kb * (1 - kb) / kg, -c_gain * 2 * kr * (1 - kr) / kg],
            [y_gain, c_gain * 2 * (1 - kb), 0.0],
        ],
        dtype=np.float32,
    )
    offset = np.array([0.0 if full_range else 16.0, 128.0, 128.0], dtype=np.float32)
    return m, offset


@dataclass(frozen=True)
class YuvFrame:
    """One upright 8-bit picture as planes: Y is H×W, U and V are (H/sy)×(W/sx) (rounded up).

    Attributes:
        y, u, v: uint8 planes, owned (copied out of FFmpeg's buffers, so no decoder state is kept).
        matrix, offset: RGB = matrix @ (YUV − offset), from the frame's colorspace and range.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    matrix: np.ndarray
    offset: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3), the shape of the RGB frame this picture stands for."""
        return self.y.shape[0], self.y.shape[1], 3

    @property
    def subsampling(self) -> tuple[float, float]:
        """(sx, sy): luma pixels per chroma pixel across and down (1 or 2)."""
        return self.y.shape[1] / self.u.shape[1], self.y.shape[0] / self.u.shape[0]

    def to_rgb_of(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """h×w×3 float32 RGB in [0, 1] from same-sized Y, U, V arrays (uint8 or float levels)."""
        return self._levels(y, u, v) * np.float32(1.0 / 255.0)

    def _levels(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """h×w×3 float32 RGB in whole 8-bit levels, 0…255."""
        yuv = np.stack([y, u, v], axis=-1).astype(np.float32) - self.offset
        return np.clip(np.rint(yuv @ self.matrix.T), 0.0, 255.0)

    def to_rgb(self) -> np.ndarray:
        """The whole picture as H×W×3 uint8 RGB (chroma repeated to full resolution)."""
        sx, sy = (int(round(s)) for s in self.subsampling)
        h, w = self.y.shape
        u = np.repeat(np.repeat(self.u, sy, axis=0), sx, axis=1)[:h, :w]
        v = np.repeat(np.repeat(self.v, sy, axis=0), sx, axis=1)[:h, :w]
        return self._levels(self.y, u, v).astype(np.uint8)

    def transformed(self, transform) -> YuvFrame:
        """The same picture with `transform` (an H×W array → array function) applied to each plane."""
        return YuvFrame(transform(self.y), transform(self.u), transform(self.v), self.matrix, self.offset)


def yuv_frame(frame: av.VideoFrame) -> YuvFrame | None:
    """The planes of an 8-bit planar Y'CbCr frame, or None for any other layout or colorspace."""
    if frame.format.name not in PLANAR_FORMATS or frame.colorspace not in _LUMA_WEIGHTS:
        return None
    full = frame.format.name.startswith("yuvj") or frame.color_range == _AVCOL_RANGE_JPEG
    matrix, offset = yuv_to_rgb_matrix(*_LUMA_WEIGHTS[frame.colorspace], full)
    planes = []
    for plane in frame.planes[:3]:
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
        planes.append(rows[:, : plane.width].copy())
    return YuvFrame(*planes, matrix=matrix, offset=offset)
