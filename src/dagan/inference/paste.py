"""Paste an animated face crop back into the full-resolution photo it was cut from."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from dagan.inference.face import Box
from dagan.io.image import to_float, to_uint8

__all__ = ["paste_back", "PasteBack", "paste_faces", "PasteFaces", "blend_mask", "even_size"]


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
    paster = PasteBack(base, box, feather, shape=shape)
    face = _face_array(generated_face)
    if paster.window is not None:
        x0, y0, x1, y1 = paster.window
        base[y0:y1, x0:x1] = paster.blend(face)
    return base


def _face_array(generated_face: np.ndarray) -> np.ndarray:
    gen = to_float(np.asarray(generated_face))
    if gen.ndim != 3 or gen.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 face, got {gen.shape}")
    return gen


class PasteBack:
    """`paste_back` for a whole video into one photo: the blend window and mask are prepared once.

    Calling it with a generated crop returns the photo with the face blended in, as H×W×3 uint8
    (the same pixels as `to_uint8(paste_back(...))`, without converting the whole photo per frame).
    """

    def __init__(self, photo: np.ndarray, box: Box, feather: float = 0.2, *, shape: str = "ellipse"):
        base = np.asarray(photo)
        if base.ndim != 3 or base.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 photo, got {base.shape}")
        if not (box.width > 0 and box.height > 0):
            raise ValueError(f"degenerate box {box}")
        self.box = box
        self.photo_u8 = to_uint8(base)
        H, W = base.shape[:2]
        px0, py0 = max(math.floor(box.x0), 0), max(math.floor(box.y0), 0)
        px1, py1 = min(math.ceil(box.x1), W), min(math.ceil(box.y1), H)
        self.window = (px0, py0, px1, py1) if px0 < px1 and py0 < py1 else None  # None: box outside the photo
        if self.window is not None:
            self.mask = blend_mask(box, self.window, feather, shape)[..., None]  # h×w×1
            self.under = to_float(base[py0:py1, px0:px1])  # h×w×3, the photo pixels the face covers

    def blend(self, generated_face: np.ndarray) -> np.ndarray:
        """The blended window (h×w×3 float32 in [0, 1]) for one generated crop."""
        return self.mask * self.patch(generated_face) + (1.0 - self.mask) * self.under

    def patch(self, generated_face: np.ndarray) -> np.ndarray:
        """The generated crop resampled onto the photo window (h×w×3 float32 in [0, 1])."""
        gen = _face_array(generated_face)
        px0, py0, px1, py1 = self.window
        box = self.box
        gh, gw = gen.shape[:2]
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
        return np.clip(_resize_float(padded, (px1 - px0, py1 - py0), src), 0.0, 1.0)  # h×w×3

    def __call__(self, generated_face: np.ndarray) -> np.ndarray:
        """H×W×3 uint8: the photo with `generated_face` blended in at the box."""
        face = _face_array(generated_face)
        out = self.photo_u8.copy()
        if self.window is not None:
            x0, y0, x1, y1 = self.window
            out[y0:y1, x0:x1] = to_uint8(self.blend(face))
        return out


class PasteFaces:
    """Several generated crops into one photo (a group photo), prepared once per video like `PasteBack`.

    Where crops overlap they are mixed, not stacked: each face i brings its resampled patch p_i and
    soft mask m_i, and the result is A·c + (1 − A)·photo with coverage A = 1 − ∏(1 − m_i) and colour
    c = Σ m_i·p_i / Σ m_i. The order of the faces does not matter, and pixels outside every mask
    keep the photo's values. Calling it returns H×W×3 uint8.
    """

    def __init__(self, photo: np.ndarray, boxes: list[Box], feather: float = 0.2, *, shape: str = "ellipse"):
        self.pasters = [PasteBack(photo, box, feather, shape=shape) for box in boxes]
        self.photo_u8 = self.pasters[0].photo_u8 if self.pasters else to_uint8(np.asarray(photo))
        windows = [p.window for p in self.pasters if p.window is not None]
        self.window = None
        if windows:
            self.window = (min(w[0] for w in windows), min(w[1] for w in windows),
                           max(w[2] for w in windows), max(w[3] for w in windows))  # union of the face windows
            x0, y0, x1, y1 = self.window
            self.under = to_float(np.asarray(photo)[y0:y1, x0:x1])  # h×w×3, the photo pixels under the faces
            weight = np.zeros((y1 - y0, x1 - x0, 1), np.float32)
            uncovered = np.ones_like(weight)
            for p in self.pasters:
                if p.window is not None:
                    weight[self._slice(p)] += p.mask
                    uncovered[self._slice(p)] *= 1.0 - p.mask
            self.covered = weight[..., 0] > 0  # h×w
            self.weight = weight
            self.alpha = 1.0 - uncovered

    def _slice(self, paster: PasteBack) -> tuple[slice, slice]:
        """Where a face's window lies inside the union window."""
        x0, y0, x1, y1 = paster.window
        return slice(y0 - self.window[1], y1 - self.window[1]), slice(x0 - self.window[0], x1 - self.window[0])

    def blend(self, generated_faces: list[np.ndarray]) -> np.ndarray:
        """The blended union window (h×w×3 float32 in [0, 1]) for one crop per box."""
        if len(generated_faces) != len(self.pasters):
            raise ValueError(f"{len(generated_faces)} faces but {len(self.pasters)} boxes")
        weighted = np.zeros_like(self.under)
        for paster, face in zip(self.pasters, generated_faces, strict=True):
            if paster.window is not None:
                weighted[self._slice(paster)] += paster.mask * paster.patch(face)
        out = self.under.copy()
        c = self.covered
        colour = weighted[c] / self.weight[c]
        out[c] = self.alpha[c] * colour + (1.0 - self.alpha[c]) * self.under[c]
        return out

    def __call__(self, generated_faces: list[np.ndarray]) -> np.ndarray:
        """H×W×3 uint8: the photo with every face blended in at its box."""
        out = self.photo_u8.copy()
        if self.window is not None:
            x0, y0, x1, y1 = self.window
            out[y0:y1, x0:x1] = to_uint8(self.blend(generated_faces))
        return out


def paste_faces(
    photo: np.ndarray,
    generated_faces: list[np.ndarray],
    boxes: list[Box],
    feather: float = 0.2,
    *,
    shape: str = "ellipse",
) -> np.ndarray:
    """`PasteFaces` for one frame, as float: H×W×3 float32 in [0, 1]; one face gives exactly `paste_back`.

    Args:
        photo: H×W×3, uint8 or float in [0, 1].
        generated_faces: one h×w×3 crop per box.
        boxes: the crop boxes the faces were cut from, in photo pixels.
    """
    if len(generated_faces) != len(boxes):
        raise ValueError(f"{len(generated_faces)} faces but {len(boxes)} boxes")
    if len(boxes) == 1:
        return paste_back(photo, generated_faces[0], boxes[0], feather, shape=shape)
    base = to_float(np.asarray(photo)).copy()
    paster = PasteFaces(base, boxes, feather, shape=shape)
    if paster.window is not None:
        x0, y0, x1, y1 = paster.window
        base[y0:y1, x0:x1] = paster.blend(generated_faces)
    return base
