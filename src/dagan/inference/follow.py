"""A face follower by a learned correlation filter (MOSSE), for the frames between detections.

`FourierFollower` follows the position of the box; its size stays the one the detector gave until
the next detection (the tracker re-detects every `detect_every` frames), which is what makes it
cheap: two small windows resampled and three 64² FFTs per frame, where dlib's correlation tracker
(DSST, `CorrelationFollower`) also searches a pyramid of scales. `benchmarks/tracking_accuracy.py
--follower` compares the two.
"""

from __future__ import annotations

import math

import numpy as np

from dagan.inference.face import Box, resample_box

__all__ = ["FourierFollower"]


class FourierFollower:
    """Follows one box by correlation with a filter learned from the face's own appearance.

    The window (`pad` × the box side, centred on it) is resampled to `cells`² gray levels, log-
    compressed, normalised and tapered by a Hann window; the filter H = A / B (A = G·F̄, B = F·F̄,
    G a Gaussian peak, running means at `rate`) is correlated with it in the Fourier domain. The
    response's peak, refined to sub-cell precision, is the new centre. `update` returns None (lost)
    when the peak-to-sidelobe ratio falls below `min_psr` or the centre jumps more than `max_jump`
    × the side in one frame; after that it stays lost until `start`.

    Args:
        min_psr: lowest peak-to-sidelobe ratio still trusted (≈ 15–40 on a face, < 8 when lost).
        max_jump: largest plausible shift between consecutive frames, as a fraction of the side.
        cells: window resolution (an even number).
        pad: window side over box side.
        rate: how fast the filter adapts to the face's changing appearance.
    """

    def __init__(self, min_psr: float = 8.0, max_jump: float = 0.25, cells: int = 64, pad: float = 2.0,
                 rate: float = 0.125):
        if cells < 8 or cells % 2:
            raise ValueError(f"cells must be an even number >= 8, got {cells}")
        self.min_psr, self.max_jump, self.cells, self.pad, self.rate = min_psr, max_jump, cells, pad, rate
        yy, xx = np.mgrid[0:cells, 0:cells].astype(np.float32) - cells // 2
        peak = np.exp(-0.5 * (xx**2 + yy**2) / 2.0**2)  # σ = 2 cells
        self._target = np.fft.rfft2(np.fft.ifftshift(peak))  # G: the peak at the origin
        self._taper = np.outer(np.hanning(cells), np.hanning(cells)).astype(np.float32)
        self._box: Box | None = None
        self._a = self._b = None
        self.psr = 0.0

    def start(self, image: np.ndarray, box: Box) -> None:
        """Learn the filter afresh from `box` of `image` (H×W gray uint8, or H×W×3)."""
        self._box = box
        spectrum = self._spectrum(image, *box.center)
        self._a, self._b = self._target * np.conj(spectrum), (spectrum * np.conj(spectrum)).real

    def update(self, image: np.ndarray) -> Box | None:
        """The box in this frame (same size, `score` = PSR), or None when the face is lost."""
        if self._box is None:
            return None
        previous = self._box
        cx, cy = previous.center
        spectrum = self._spectrum(image, cx, cy)
        response = np.fft.fftshift(np.fft.irfft2(self._a / (self._b + 0.01 * self._b.mean()) * spectrum,
                                                 s=(self.cells, self.cells)))
        dx, dy, self.psr = _peak(response)
        cell = self._side * self.pad / self.cells
        cx, cy = cx + dx * cell, cy + dy * cell
        if self.psr < self.min_psr or math.hypot(dx * cell, dy * cell) > self.max_jump * self._side:
            self._box = None
            return None
        half_w, half_h = previous.width / 2, previous.height / 2
        self._box = Box(cx - half_w, cy - half_h, cx + half_w, cy + half_h, self.psr)
        learned = self._spectrum(image, cx, cy)
        self._a = self.rate * self._target * np.conj(learned) + (1 - self.rate) * self._a
        self._b = self.rate * (learned * np.conj(learned)).real + (1 - self.rate) * self._b
        return self._box

    @property
    def _side(self) -> float:
        return max(self._box.width, self._box.height)

    def _spectrum(self, image: np.ndarray, cx: float, cy: float) -> np.ndarray:
        """rfft2 of the tapered, normalised cells² window centred at (cx, cy)."""
        half = self._side * self.pad / 2
        window = resample_box(image, Box(cx - half, cy - half, cx + half, cy + half), self.cells)
        levels = window.astype(np.float32)
        levels = np.log1p(levels if levels.ndim == 2 else levels.mean(axis=2))  # RGB: gray of the window only
        levels = (levels - levels.mean()) / (levels.std() + 1e-5)
        return np.fft.rfft2(levels * self._taper)


def _peak(response: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, PSR): the peak's offset from the centre in cells (sub-cell, by a parabola through
    its neighbours) and its peak-to-sidelobe ratio (sidelobe: all but the 11×11 around the peak)."""
    n = response.shape[0]
    py, px = np.unravel_index(int(np.argmax(response)), response.shape)
    top = response[py, px]
    sidelobe = np.ones_like(response, dtype=bool)
    sidelobe[max(0, py - 5) : py + 6, max(0, px - 5) : px + 6] = False
    lobe = response[sidelobe]
    psr = float((top - lobe.mean()) / (lobe.std() + 1e-12))

    def refine(c: int, below: float, above: float) -> float:
        curvature = below - 2 * top + above
        return c + (0.5 * (below - above) / curvature if curvature < 0 else 0.0)

    x = refine(px, response[py, px - 1], response[py, px + 1]) if 0 < px < n - 1 else float(px)
    y = refine(py, response[py - 1, px], response[py + 1, px]) if 0 < py < n - 1 else float(py)
    return x - n // 2, y - n // 2, psr
