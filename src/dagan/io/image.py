"""Still-image reading and writing: every user image enters as H×W×3 float32 RGB in [0, 1].

Reading normalises the many shapes a "photo" comes in: grayscale, palette, alpha, 16-bit PNG,
CMYK JPEG, and EXIF-rotated phone pictures. Writing is atomic (temp file, then rename).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dagan.errors import DaganError
from dagan.io._files import atomic_file

__all__ = ["read_image", "write_image", "to_uint8", "to_float", "apply_exif_orientation"]

_EXIF_ORIENTATION_TAG = 0x0112
# PNG raw modes that Pillow silently truncates to 8 bits; these are decoded with FFmpeg instead.
_PNG_DEEP_RAWMODES = {"RGB;16B": "rgb48le", "RGBA;16B": "rgba64le"}


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] → float32 [0, 1]; float input is cast to float32 and clipped."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] → uint8 with rounding (values outside [0, 1] are clipped); uint8 passes through."""
    if image.dtype == np.uint8:
        return image
    return (np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def apply_exif_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an H×W×C array stored with EXIF `orientation` (1..8) upright.

    Same result as `PIL.ImageOps.exif_transpose`, but on arrays of any dtype, so 16-bit data keeps
    its precision. Unknown values are treated as 1 (no change).
    """
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(image)) if op else image


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """H×W×4 float in [0, 1] → H×W×3, alpha-blended over a white background."""
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + (1.0 - alpha)


def _decode_deep_png(path: Path, pix_fmt: str) -> np.ndarray:
    """Full-precision decode of a 16-bit-per-channel RGB(A) PNG via FFmpeg → float32 H×W×3|4."""
    import av  # local: only needed for this rare format

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0), None)
            if frame is None:
                raise DaganError(f"image has no pixels: {path}")
            data = frame.to_ndarray(format=pix_fmt)
    except av.FFmpegError as exc:
        raise DaganError(f"cannot read image {path}: {exc}") from None
    return data.astype(np.float32) / 65535.0


def _pil_to_float(im: Image.Image) -> np.ndarray:
    """Any Pillow mode → float32 H×W×3 or H×W×4 (alpha kept for the caller to composite)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.float32)[..., None].repeat(3, axis=2) / 65535.0
    if mode == "I":  # 32-bit int; Pillow uses it for 16-bit grayscale PNG on some versions
        data = np.asarray(im, dtype=np.float32)
        scale = 65535.0 if data.max(initial=0) > 255 else 255.0
        return np.clip(data / scale, 0.0, 1.0)[..., None].repeat(3, axis=2)
    if mode == "F":  # float TIFF: taken as already in [0, 1]
        return np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)[..., None].repeat(3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info
    )
    target = "RGBA" if has_alpha else "RGB"
    return np.asarray(im.convert(target), dtype=np.float32) / 255.0


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an upright RGB float32 array.

    Args:
        path: any format Pillow reads (PNG, JPEG, WebP, BMP, TIFF, GIF: first frame, ...).

    Returns:
        H×W×3 float32 in [0, 1], RGB, with EXIF orientation applied. Grayscale and palette images
        are expanded to RGB; images with an alpha channel (RGBA, LA, palette transparency) are
        composited over a WHITE background (transparent regions become white, not black, which
        matches how viewers show such photos); 16-bit PNGs are scaled by 1/65535 and keep their
        full precision; embedded ICC profiles are ignored (pixels taken as sRGB).

    Raises:
        DaganError: the file is missing, is a directory, is not an image, or is truncated.
    """
    p = Path(path)
    if not p.exists():
        raise DaganError(f"image not found: {p}")
    if p.is_dir():
        raise DaganError(f"expected an image file but {p} is a directory")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                rawmode = im.tile[0].args if im.format == "PNG" and im.tile else None
                orientation = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)  # may load PNG pixels
                if isinstance(rawmode, str) and rawmode in _PNG_DEEP_RAWMODES:
                    data = _decode_deep_png(p, _PNG_DEEP_RAWMODES[rawmode])
                else:
                    im.load()
                    data = _pil_to_float(im)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        kind = "not a readable image" if isinstance(exc, UnidentifiedImageError) else "image is too large"
        raise DaganError(f"{kind}: {p}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DaganError(f"cannot read image {p}: {exc}") from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise DaganError(f"image has no pixels: {p}")
    if data.shape[2] == 4:
        data = _composite_on_white(data)
    data = apply_exif_orientation(data, orientation)
    return np.ascontiguousarray(np.clip(data, 0.0, 1.0), dtype=np.float32)


def write_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95) -> None:
    """Write an image atomically (temp file beside `path`, then rename).

    Args:
        path: output file; the format follows the suffix (.png, .jpg, .webp, ...).
        image: H×W, H×W×3 or H×W×4; uint8, or float in [0, 1] (rounded to 8 bits).
        quality: JPEG/WebP quality.

    Raises:
        DaganError: the directory is missing or not writable, or the suffix names no image format.
        ValueError: `image` has an unsupported shape (a programming error, not a user error).
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"expected H×W, H×W×3 or H×W×4 image, got shape {arr.shape}")
    out = Path(path)
    ext = out.suffix.lower()
    if ext not in Image.registered_extensions():
        raise DaganError(f"cannot write {out}: unknown image format {ext!r} (use .png or .jpg)")
    with atomic_file(out) as tmp:
        im = Image.fromarray(to_uint8(arr))
        if im.mode == "RGBA" and ext in (".jpg", ".jpeg"):
            im = im.convert("RGB")
        im.save(tmp, format=Image.registered_extensions()[ext], quality=quality)
