"""Small renderers for inspection panels: depth colour maps and keypoint overlays (uint8 RGB)."""

import numpy as np

# anchor colours of a perceptually ordered dark-to-bright map (near = bright)
_ANCHORS = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float32)


def colorize_depth(disparity: np.ndarray) -> np.ndarray:
    """H×W disparity → H×W×3 uint8, min-max normalised per frame."""
    d = disparity.astype(np.float32)
    lo, hi = float(d.min()), float(d.max())
    t = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
    pos = t * (len(_ANCHORS) - 1)
    i = np.clip(np.floor(pos).astype(int), 0, len(_ANCHORS) - 2)
    f = (pos - i)[..., None]
    rgb = _ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f
    return rgb.round().astype(np.uint8)


def keypoint_colors(n: int) -> np.ndarray:
    """n distinct colours around the hue circle (uint8 n×3)."""
    hue = np.arange(n) / max(n, 1)
    k = (np.array([5, 3, 1])[None] + hue[:, None] * 6) % 6
    rgb = 1 - np.clip(np.minimum(k, 4 - k), 0, 1)
    return (rgb * 255).astype(np.uint8)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Draw K×2 keypoints in [-1, 1] (x, y) as filled discs on an H×W×3 uint8 image (a copy)."""
    out = image.copy()
    h, w = out.shape[:2]
    r = radius or max(1, round(min(h, w) / 64))
    yy, xx = np.mgrid[0:h, 0:w]
    for (x, y), c in zip(keypoints, keypoint_colors(len(keypoints))):
        px, py = (x + 1) / 2 * (w - 1), (y + 1) / 2 * (h - 1)
        out[(xx - px) ** 2 + (yy - py) ** 2 <= r * r] = c
    return out
