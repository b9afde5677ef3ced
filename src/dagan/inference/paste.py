"""Paste an animated face crop back into the full-resolution photo it was cut from."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from dagan.inference.face import Box
from dagan.io.image import to_float

__all__ = ["paste_back", "paste_faces", "blend_mask", "even_size"]


def even_size(width: int, height: int) -> tuple[int, int]:
    """Round a frame size down to even numbers (H.264 yuv420p needs them).

    Raises:
        ValueError: a side is smaller than 2.
    """
    w, h = int(width) - int(width) % 2, int(height) - int(height) % 2
    if w < 2 or h < 2:
        raise ValueError(f"frame size {width}×{height} is too small for video (need at least 2×2)")
    return w, h


def blend_mask(
    box: Box, region: tuple[int, int, int, int], feather: float = 0.2, shape: str = "ellipse"
) -> np.ndarray:
    """Soft mask of `box` sampled at the pixel centres of `region`.

    The mask is 1 inside the shape inscribed in the box shrunk by `feather`, falls smoothly
    (smoothstep) to 0 at the box border, and is 0 outside it.

    Args:
        box: the crop box in photo pixels.
        region: (x0, y0, x1, y1) integer pixel window to evaluate, in photo pixels.
        feather: width of the soft edge as a fraction of the box half-size (0 = hard edge).
        shape: "ellipse" (inscribed in the box) or "rect".

    Returns:
        (y1 − y0)×(x1 − x0) float32 in [0, 1].
    """
    if shape not in ("ellipse", "rect"):
        raise ValueError(f"shape must be 'ellipse' or 'rect', got {shape!r}")
    if not 0.0 <= feather <= 1.0:
        raise ValueError(f"feather must be in [0, 1], got {feather}")
    x0, y0, x1, y1 = region
    cx, cy = box.center
    nx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx) / (box.width / 2)  # W
    ny = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy) / (box.height / 2)  # H
    if shape == "ellipse":
        r = np.sqrt(nx[None, :] ** 2 + ny[:, None] ** 2)  # H×W
    else:
        r = np.maximum(np.abs(nx)[None, :], np.abs(ny)[:, None])  # H×W
    if feather == 0.0:
        return (r <= 1.0).astype(np.float32)
    t = np.clip((1.0 - r) / feather, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _resize_float(image: np.ndarray, size: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    """Bicubic (anti-aliased) resize of the sub-pixel `box` of an H×W×C float image to size=(w, h)."""
    channels = [
        np.asarray(Image.fromarray(image[..., c], mode="F").resize(size, Image.Resampling.BICUBIC, box=box))
        for c in range(image.shape[2])
    ]
    return np.stack(channels, axis=2)


def paste_back(
    photo: np.ndarray,
    generated_face: np.ndarray,
    box: Box,
    feather: float = 0.2,
    *,
    shape: str = "ellipse",
) -> np.ndarray:
    """Blend a generated crop into the photo at the crop box it came from.

    The generated image is resampled to exactly cover `box` (sub-pixel, matching `crop_and_resize`)
    and blended with `blend_mask`, so only the middle of the crop (the face) replaces photo pixels
    and its border fades into the original. Parts of the box outside the photo are dropped.

    Args:
        photo: H×W×3, uint8 or float in [0, 1].
        generated_face: h×w×3 (normally size×size×3), uint8 or float in [0, 1].
        box: the crop box used to cut the source face, in photo pixels.
        feather: soft-edge width, fraction of the box half-size.
        shape: "ellipse" or "rect" mask.

    Returns:
        H×W×3 float32 in [0, 1], the photo's size.
    """
    base = to_float(np.asarray(photo)).copy()
    layer = _face_layer(base.shape, generated_face, box, feather, shape)
    if layer is None:
        return base  # the box lies entirely outside the photo
    (px0, py0, px1, py1), patch, mask = layer
    window = base[py0:py1, px0:px1]
    base[py0:py1, px0:px1] = mask * patch + (1.0 - mask) * window
    return base


def paste_faces(
    photo: np.ndarray,
    generated_faces: list[np.ndarray],
    boxes: list[Box],
    feather: float = 0.2,
    *,
    shape: str = "ellipse",
) -> np.ndarray:
    """Blend several generated crops into one photo; where crops overlap they are mixed, not stacked.

    Each face i brings its resampled patch p_i and soft mask m_i (as in `paste_back`). The result is
    A·c + (1 − A)·photo with coverage A = 1 − ∏(1 − m_i) and colour c = Σ m_i·p_i / Σ m_i, so the
    order of the faces does not matter, a single face gives exactly `paste_back`, and pixels outside
    every mask keep the photo's values.

    Args:
        photo: H×W×3, uint8 or float in [0, 1].
        generated_faces: one h×w×3 crop per box.
        boxes: the crop boxes the faces were cut from, in photo pixels.

    Returns:
        H×W×3 float32 in [0, 1].
    """
    if len(generated_faces) != len(boxes):
        raise ValueError(f"{len(generated_faces)} faces but {len(boxes)} boxes")
    if len(boxes) == 1:
        return paste_back(photo, generated_faces[0], boxes[0], feather, shape=shape)
    base = to_float(np.asarray(photo)).copy()
    H, W = base.shape[:2]
    weighted = np.zeros((H, W, 3), np.float32)
    weight = np.zeros((H, W, 1), np.float32)
    uncovered = np.ones((H, W, 1), np.float32)
    for face, box in zip(generated_faces, boxes, strict=True):
        layer = _face_layer(base.shape, face, box, feather, shape)
        if layer is None:
            continue
        (px0, py0, px1, py1), patch, mask = layer
        weighted[py0:py1, px0:px1] += mask * patch
        weight[py0:py1, px0:px1] += mask
        uncovered[py0:py1, px0:px1] *= 1.0 - mask
    covered = weight[..., 0] > 0
    colour = weighted[covered] / weight[covered]
    alpha = 1.0 - uncovered[covered]
    base[covered] = alpha * colour + (1.0 - alpha) * base[covered]
    return base


def _face_layer(photo_shape, generated_face, box: Box, feather: float, shape: str):
    """((x0, y0, x1, y1) window, h×w×3 patch, h×w×1 mask) of one face in the photo, or None outside it."""
    gen = to_float(np.asarray(generated_face))
    if len(photo_shape) != 3 or photo_shape[2] != 3 or gen.ndim != 3 or gen.shape[2] != 3:
        raise ValueError(f"expected H×W×3 images, got photo {tuple(photo_shape)} and face {gen.shape}")
    if not (box.width > 0 and box.height > 0):
        raise ValueError(f"degenerate box {box}")
    H, W = photo_shape[:2]
    gh, gw = gen.shape[:2]
    px0, py0 = max(math.floor(box.x0), 0), max(math.floor(box.y0), 0)
    px1, py1 = min(math.ceil(box.x1), W), min(math.ceil(box.y1), H)
    if px0 >= px1 or py0 >= py1:
        return None
    # Photo window [px0, px1) in generated-image coordinates (pixel edges), padded for the kernel.
    sx, sy = gw / box.width, gh / box.height
    pad = 2 + math.ceil(max(sx, sy))
    src = (
        (px0 - box.x0) * sx + pad,
        (py0 - box.y0) * sy + pad,
        (px1 - box.x0) * sx + pad,
        (py1 - box.y0) * sy + pad,
    )
    padded = np.pad(gen, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    patch = np.clip(_resize_float(padded, (px1 - px0, py1 - py0), src), 0.0, 1.0)  # h×w×3
    mask = blend_mask(box, (px0, py0, px1, py1), feather, shape)[..., None]  # h×w×1
    return (px0, py0, px1, py1), patch, mask
