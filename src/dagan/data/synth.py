"""Synthetic talking-head clips with exact ground truth (`dagan synth`), and depth-quality metrics.

Faces come from photos that ship inside installed packages (scikit-image's `astronaut`,
matplotlib's `grace_hopper.jpg` when matplotlib is installed) plus any user photos. Each photo is
lifted to a textured 3-D head (`dagan.data.head_mesh.build_head`); identities beyond the number
of photos are procedural variants of them (mirrored, recoloured skin/hair, wider or narrower
face, flatter or deeper relief). Every clip gives the head smooth random motion (yaw, pitch and
roll within about ±25°, small translations, ±5% distance changes), speech-like mouth opening and
occasional blinks, and renders it in perspective with a z-buffer over a static backdrop (a
gradient with soft shapes; the camera never moves, so it is a fixed plane behind the head whose
depth is reported as 0, i.e. background). It writes

    OUT/train/<identity>#<clip>.mp4     H.264 video (what `dagan.data.datasets` reads)
    OUT/train/<identity>#<clip>.npz     its ground truth, keys below
    OUT/test/...                        the same for the held-out identities
    OUT/synth.json                      the run's settings and the identity list

Ground-truth keys (T frames, H = W = size):

* `depth` T×H×W float32: camera-space z in metres of the surface seen at each pixel centre (head
  or neck); **0 where the background is seen** (no NaNs).
* `mask` T×H×W bool: the pixel centre sees the head (face, hair, sides of the head; not the neck,
  not the background). Evaluate depth on this mask.
* `pose` T×6 float32: (yaw, pitch, roll) in radians, then the translation (tx, ty, tz) in metres:
  the camera-space position of the head's pivot (a point behind the face at ear height). The
  rotation is R = R_y(−yaw)·R_x(−pitch)·R_z(roll), the convention of `dagan.evaluation.headpose`:
  yaw > 0 turns the nose to image right, pitch > 0 raises it, roll > 0 is clockwise in the image.
* `rotation` T×3×3 float32: R itself (head → camera); a canonical point v is at R·v + t.
* `landmarks` T×68×2 float32: the 3-D iBUG-68 landmarks of the mesh projected to pixels, with
  (0, 0) the top-left corner of the top-left pixel (dlib's integer output is a pixel index:
  add 0.5 to compare). They are fixed points of the face, so on a turned head the far jaw points
  lie behind the cheek rather than sliding along the silhouette as hand annotations do.
* `landmarks3d` T×68×3 float32 (camera space, metres); `landmarks_visible` T×68 bool (inside
  the image and no part of the mesh more than 2 mm in front of it on its line of sight).
* `intrinsics` 3×3 float32: focal length 2.5 × size pixels, principal point at the centre.
* `mouth_open`, `eyes_closed` T float32 in [0, 1]: the expression amounts.
* `fps` float32 scalar.

Determinism: everything is a function of the arguments. The same seed gives byte-identical
`.npz` files (fixed zip timestamps) and identical decoded video frames.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from dagan.data.head_mesh import Appearance, HeadModel, build_head
from dagan.data.raster import intrinsics_matrix, pose_matrix
from dagan.data.synth_render import render_head
from dagan.errors import DaganError

__all__ = [
    "BUILTIN_PHOTOS",
    "TRUTH_KEYS",
    "Motion",
    "builtin_photo",
    "photo_landmarks",
    "random_appearance",
    "random_background",
    "sample_motion",
    "head_framing",
    "render_clip",
    "save_truth",
    "load_truth",
    "synthesize",
]

BUILTIN_PHOTOS = ("astronaut", "grace_hopper")
TRUTH_KEYS = (
    "depth",
    "mask",
    "pose",
    "rotation",
    "landmarks",
    "landmarks3d",
    "landmarks_visible",
    "intrinsics",
    "mouth_open",
    "eyes_closed",
    "fps",
)
FOCAL = 2.5  # focal length in units of the image side
FACE_FRACTION = 0.56  # landmark extent ÷ image side at the rest pose (VoxCeleb-like framing)
SUPERSAMPLE = 2
MAX_ANGLE = math.radians(25.0)
_NAME_OK = re.compile(r"[^A-Za-z0-9_-]+")


# --------------------------------------------------------------------------------------------
# Photos


def builtin_photo(name: str) -> np.ndarray:
    """A face photo shipped by an installed package, H×W×3 uint8.

    Args:
        name: "astronaut" (scikit-image) or "grace_hopper" (matplotlib's sample data; located on
            disk, matplotlib itself is not imported).

    Raises:
        DaganError: unknown name, or the package providing it is not installed.
    """
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[..., :3])
    if name == "grace_hopper":
        path = _grace_hopper_path()
        if path is None:
            raise DaganError("the grace_hopper photo needs matplotlib (pip install matplotlib)")
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    raise DaganError(f"unknown built-in photo {name!r}; choose from {', '.join(BUILTIN_PHOTOS)}")


def _grace_hopper_path() -> Path | None:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    return path if path.is_file() else None


def _available_builtins() -> list[str]:
    return [n for n in BUILTIN_PHOTOS if n != "grace_hopper" or _grace_hopper_path() is not None]


def photo_landmarks(image: np.ndarray, source: str = "photo") -> np.ndarray:
    """68 iBUG landmarks of the largest face (dlib), 68×2 float64 in corner-convention pixels.

    Raises:
        DaganError: no face found (the message names `source`).
    """
    from dagan.inference.face import detect_largest_face, face_landmarks

    box, _ = detect_largest_face(image, source=source)
    return face_landmarks(image, box).astype(np.float64) + 0.5  # dlib gives pixel indices


@lru_cache(maxsize=len(BUILTIN_PHOTOS))
def _builtin_face(name: str) -> tuple[np.ndarray, np.ndarray]:
    image = builtin_photo(name)
    image.setflags(write=False)
    lm = photo_landmarks(image, source=f"built-in photo {name}")
    lm.setflags(write=False)
    return image, lm


def _user_face(photo, index: int) -> tuple[str, np.ndarray, np.ndarray]:
    if isinstance(photo, np.ndarray):
        from dagan.io.image import to_uint8

        image = to_uint8(photo)
        if image.ndim != 3 or image.shape[2] != 3:
            raise DaganError(f"photo {index} must be an H×W×3 RGB array, got shape {image.shape}")
        name, source = f"photo{index}", f"photo {index}"
    else:
        from dagan.io.image import read_image, to_uint8

        path = Path(photo)
        image = to_uint8(read_image(path))
        name, source = path.stem, str(path)
    return _NAME_OK.sub("-", name).strip("-") or f"photo{index}", image, photo_landmarks(image, source)


# --------------------------------------------------------------------------------------------
# Randomness: appearance, background, motion


_HAIR_COLORS = (
    (0.10, 0.08, 0.07),  # black
    (0.28, 0.18, 0.11),  # dark brown
    (0.45, 0.30, 0.18),  # brown
    (0.80, 0.68, 0.45),  # blond
    (0.62, 0.30, 0.15),  # red
    (0.62, 0.62, 0.62),  # grey
)


def random_appearance(rng: np.random.Generator) -> Appearance:
    """A procedural identity change: mirroring, skin tone, colour, hair tint and face shape."""
    hair = _HAIR_COLORS[int(rng.integers(len(_HAIR_COLORS)))] if rng.random() < 0.75 else None
    return Appearance(
        mirror=bool(rng.random() < 0.5),
        hue=float(rng.uniform(-0.15, 0.15)),
        saturation=float(rng.uniform(0.75, 1.2)),
        brightness=float(rng.uniform(0.7, 1.15)),
        contrast=float(rng.uniform(0.85, 1.2)),
        warmth=float(rng.uniform(-0.03, 0.05)),
        hair_rgb=hair,
        hair_strength=float(rng.uniform(0.6, 0.9)),
        aspect=float(rng.uniform(0.9, 1.1)),
        depth_scale=float(rng.uniform(0.85, 1.15)),
    )


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def random_background(rng: np.random.Generator, side: int) -> np.ndarray:
    """A static backdrop side×side×3 float64 in [0, 1]: a two-colour gradient, low-frequency
    mottling, a few soft shapes (a wall with a picture, a lamp, a shelf) and fine grain."""
    yy, xx = (np.mgrid[0:side, 0:side] + 0.5) / side  # side×side each
    hue = rng.random()
    c1 = _hsv_to_rgb(hue, rng.uniform(0.05, 0.5), rng.uniform(0.25, 0.85))
    c2 = _hsv_to_rgb((hue + rng.uniform(-0.15, 0.15)) % 1.0, rng.uniform(0.05, 0.5), rng.uniform(0.2, 0.9))
    ang = rng.uniform(0.0, 2.0 * math.pi)
    t = (xx - 0.5) * math.cos(ang) + (yy - 0.5) * math.sin(ang) + 0.5
    bg = c1 * (1.0 - t[..., None]) + c2 * t[..., None]
    coarse = rng.standard_normal((6, 6, 3)) * np.array([1.0, 0.25, 0.25])  # mostly brightness, a little colour
    coarse = coarse @ np.array([[1.0, 1.0, 1.0], [1.0, -0.5, -0.5], [0.0, 0.87, -0.87]])
    mottle = ndimage.zoom(coarse, (side / 6.0, side / 6.0, 1.0), order=3, mode="nearest")[:side, :side]
    bg += 0.04 * mottle
    for _ in range(int(rng.integers(2, 6))):
        color = _hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.7), rng.uniform(0.1, 0.95))
        cx, cy = rng.uniform(-0.1, 1.1, 2)
        rx, ry = rng.uniform(0.05, 0.35, 2)
        soft = rng.uniform(0.005, 0.05)
        if rng.random() < 0.5:  # rectangle
            d = np.maximum(np.abs(xx - cx) - rx, np.abs(yy - cy) - ry)
        else:  # ellipse
            d = (np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) - 1.0) * min(rx, ry)
        alpha = np.clip(0.5 - d / (2.0 * soft), 0.0, 1.0)[..., None] * rng.uniform(0.5, 1.0)
        bg = bg * (1.0 - alpha) + color * alpha
    bg += 0.012 * rng.standard_normal((side, side, 3))
    return np.clip(bg, 0.0, 1.0)


@dataclass(frozen=True)
class Motion:
    """Per-frame driving parameters of a clip.

    Attributes:
        pose: T×6 (yaw, pitch, roll) radians and (tx, ty, tz) metres (see the module docstring).
        mouth_open: T in [0, 1].
        eyes_closed: T in [0, 1].
    """

    pose: np.ndarray
    mouth_open: np.ndarray
    eyes_closed: np.ndarray


def _sinusoids(rng: np.random.Generator, t: np.ndarray, lo: float, hi: float, n: int = 3) -> np.ndarray:
    """A smooth signal in [−1, 1]: a random mix of n sinusoids with frequencies in [lo, hi] Hz."""
    freq = rng.uniform(lo, hi, n)
    phase = rng.uniform(0.0, 2.0 * math.pi, n)
    weight = rng.uniform(0.3, 1.0, n)
    weight /= weight.sum()
    return (weight[:, None] * np.sin(2.0 * math.pi * freq[:, None] * t[None] + phase[:, None])).sum(0)


def sample_motion(
    rng: np.random.Generator,
    frames: int,
    fps: float,
    rest: np.ndarray,
    *,
    max_angle: float = MAX_ANGLE,
) -> Motion:
    """Natural head motion, speech-like mouth opening and blinks for one clip.

    Angles are a random offset plus a sum of three sinusoids (0.2–0.8 Hz), softly limited to
    ±`max_angle` (tanh); yaw moves most, roll least. The translation wanders ±1 cm sideways and
    ±5% in distance. The mouth opens at a syllable rate (2.5–4.5 Hz) inside slowly alternating
    talking/pausing spans; blinks (≈ 0.25 s, closing faster than opening) come every ~2.5 s,
    the first within 3 s.

    Args:
        rng: the clip's generator.
        frames: T.
        fps: frame rate (motion is defined in seconds, so it does not depend on it).
        rest: (3,) translation of the rest pose (`head_framing`).
        max_angle: soft limit of each angle, radians.
    """
    t = np.arange(frames) / float(fps)
    rest = np.asarray(rest, dtype=np.float64)

    def angle(offset: float, amplitude: float) -> np.ndarray:
        raw = rng.uniform(-offset, offset) + rng.uniform(0.5, 1.0) * amplitude * _sinusoids(rng, t, 0.2, 0.8)
        return max_angle * np.tanh(raw / max_angle)

    deg = math.radians
    yaw = angle(deg(12), deg(24))
    pitch = angle(deg(8), deg(15))
    roll = angle(deg(6), deg(10))
    tx = rest[0] + 0.01 * _sinusoids(rng, t, 0.1, 0.6)
    ty = rest[1] + 0.01 * _sinusoids(rng, t, 0.1, 0.6)
    tz = rest[2] * (1.0 + 0.05 * _sinusoids(rng, t, 0.1, 0.5))
    pose = np.stack([yaw, pitch, roll, tx, ty, tz], axis=1)

    talk = np.clip(0.5 + 0.9 * np.sin(2 * math.pi * rng.uniform(0.15, 0.45) * t + rng.uniform(0, 2 * math.pi)), 0, 1)
    talk = talk * talk * (3 - 2 * talk)
    syllable = 0.5 - 0.5 * np.cos(2 * math.pi * rng.uniform(2.5, 4.5) * t + rng.uniform(0, 2 * math.pi))
    accent = 0.65 + 0.35 * np.sin(2 * math.pi * rng.uniform(0.7, 1.5) * t + rng.uniform(0, 2 * math.pi))
    mouth = np.clip(rng.uniform(0.5, 1.0) * talk * syllable * accent, 0.0, 1.0)

    eyes = np.zeros(frames)
    start = rng.uniform(-0.3, 3.0)
    duration = t[-1] + 1.0 / fps if frames else 0.0
    while start < duration:
        length = rng.uniform(0.2, 0.32)
        close = 0.35 * length
        u = t - start
        closing = np.clip(u / close, 0.0, 1.0)
        opening = np.clip((u - close) / (length - close), 0.0, 1.0)
        amount = np.where(u < close, closing * closing * (3 - 2 * closing), 1.0 - opening * opening * (3 - 2 * opening))
        eyes = np.maximum(eyes, np.where((u >= 0) & (u <= length), amount, 0.0))
        start += length + rng.exponential(2.5)
    return Motion(pose=pose, mouth_open=mouth, eyes_closed=eyes)


# --------------------------------------------------------------------------------------------
# Rendering clips


def head_framing(head: HeadModel, intrinsics: np.ndarray, size: int) -> np.ndarray:
    """Rest translation (3,) of a head: landmarks spanning `FACE_FRACTION` of the image width,
    their centre at (0.5, 0.55) of the image (VoxCeleb crops sit the face slightly low)."""
    f = float(intrinsics[0, 0])
    centre = head.vertices[head.landmark_ids].mean(0)
    z = f * head.face_width / (FACE_FRACTION * size) - centre[2]  # pivot depth
    depth = centre[2] + z
    return np.array([-centre[0], 0.05 * size / f * depth - centre[1], z])


def render_clip(
    head: HeadModel,
    motion: Motion,
    *,
    size: int,
    intrinsics: np.ndarray,
    background: np.ndarray | None = None,
    fps: float = 25.0,
    supersample: int = SUPERSAMPLE,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render every frame of a clip.

    Returns:
        frames: T×H×W×3 uint8;
        truth: the ground-truth arrays (keys `TRUTH_KEYS`, described in the module docstring).
    """
    frames, depth, mask, lm, lm3, vis = [], [], [], [], [], []
    for pose, mouth, eyes in zip(motion.pose, motion.mouth_open, motion.eyes_closed):
        r = render_head(
            head, pose, intrinsics, size,
            mouth_open=mouth, eyes_closed=eyes, background=background, supersample=supersample,
        )
        frames.append(r.image)
        depth.append(r.depth)
        mask.append(r.mask)
        lm.append(r.landmarks)
        lm3.append(r.landmarks3d)
        vis.append(r.landmarks_visible)
    truth = {
        "depth": np.stack(depth).astype(np.float32),
        "mask": np.stack(mask),
        "pose": motion.pose.astype(np.float32),
        "rotation": np.stack([pose_matrix(*p[:3]) for p in motion.pose]).astype(np.float32),
        "landmarks": np.stack(lm).astype(np.float32),
        "landmarks3d": np.stack(lm3).astype(np.float32),
        "landmarks_visible": np.stack(vis),
        "intrinsics": np.asarray(intrinsics, dtype=np.float32),
        "mouth_open": motion.mouth_open.astype(np.float32),
        "eyes_closed": motion.eyes_closed.astype(np.float32),
        "fps": np.float32(fps),
    }
    return np.stack(frames), truth


# --------------------------------------------------------------------------------------------
# Files


def save_truth(path: str | os.PathLike, truth: dict[str, np.ndarray]) -> None:
    """Write arrays as an .npz that is byte-identical for identical arrays (fixed zip entry
    timestamps and order), atomically (temp file beside it, then rename). `np.load` reads it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for key in sorted(truth):
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asarray(truth[key]), allow_pickle=False)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DaganError(f"cannot write {path}: {exc.strerror or exc}") from None


def load_truth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a clip's ground truth (.npz beside its .mp4; give either path)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    if not path.is_file():
        raise DaganError(f"ground truth not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    from dagan.io.writers import VideoWriter

    h, w = frames.shape[1:3]
    with VideoWriter(path, fps, (w, h), crf=15, preset="medium") as writer:
        for frame in frames:
            writer.write(frame)


def _pick_test(n: int, test_identities) -> list[int]:
    if test_identities is None:
        test_identities = max(1, round(n / 3))
    if isinstance(test_identities, (int, np.integer)):
        k = int(test_identities)
        if not 1 <= k <= n - 1:
            raise DaganError(f"test_identities must leave both splits non-empty: 1 ≤ {k} ≤ {n - 1} is false")
        return sorted({int((j + 1) * n / k) - 1 for j in range(k)})
    picked = sorted({int(i) for i in test_identities})
    if not picked or picked[0] < 0 or picked[-1] >= n or len(picked) >= n:
        raise DaganError(
            f"test_identities {list(test_identities)} must be indices in [0, {n}) leaving a train identity"
        )
    return picked


def _prepare_dirs(root: Path, overwrite: bool) -> None:
    stale = [p for split in ("train", "test") if (root / split).is_dir() for p in (root / split).iterdir()]
    if stale and not overwrite:
        raise DaganError(
            f"{root} already holds a dataset ({len(stale)} entries in train/ and test/); pass overwrite=True"
        )
    for p in stale:
        if p.is_file() and p.suffix in (".mp4", ".npz"):
            p.unlink()
    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)


def synthesize(
    out_dir: str | os.PathLike,
    *,
    identities: int = 6,
    clips: int = 2,
    frames: int = 32,
    size: int = 128,
    seed: int = 0,
    photos: Sequence[str | os.PathLike | np.ndarray] | None = None,
    test_identities: int | Sequence[int] | None = None,
    fps: float = 25,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write a synthetic talking-head dataset with exact ground truth (layout and keys in the
    module docstring).

    Identity i uses photo i mod P of [built-in photos…, user photos…]; the first P identities are
    the photos as they are, later ones procedural variants (`random_appearance`). Identities are
    named `id<i>_<photo>`. Splits are by identity: by default every third identity (indices 2,
    5, 8, …; at least one, never all) goes to test/.

    Args:
        out_dir: dataset root (created).
        identities: number of identities, ≥ 2.
        clips: clips per identity.
        frames: frames per clip.
        size: frame side in pixels (even, ≥ 32).
        seed: everything random derives from it (identity i's look from (seed, i), clip c's
            motion and background from (seed, i, c)).
        photos: extra face photos (paths or H×W×3 arrays).
        test_identities: how many identities to hold out (evenly spread), or their indices.
        fps: frame rate of the videos.
        overwrite: replace the .mp4/.npz files of an existing dataset in out_dir.
        progress: called with one line per written clip.

    Returns:
        The summary also written to out_dir/synth.json: settings, identities (name, photo,
        split, appearance) and the clip names of each split.

    Raises:
        DaganError: bad arguments, a photo without a face, an existing dataset, unwritable files.
    """
    if identities < 2:
        raise DaganError(f"identities must be ≥ 2 (one for train, one for test), got {identities}")
    if clips < 1 or frames < 1:
        raise DaganError(f"clips and frames must be ≥ 1, got clips={clips}, frames={frames}")
    if size < 32 or size % 2:
        raise DaganError(f"size must be even and ≥ 32 (H.264), got {size}")
    if not fps > 0:
        raise DaganError(f"fps must be positive, got {fps}")
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise DaganError(f"{root} exists and is not a folder")

    bases = [(name, *_builtin_face(name)) for name in _available_builtins()]
    bases += [_user_face(p, k) for k, p in enumerate(photos or ())]
    test = set(_pick_test(identities, test_identities))
    root.mkdir(parents=True, exist_ok=True)
    _prepare_dirs(root, overwrite)

    intr = intrinsics_matrix(size, FOCAL)
    tex_px_per_mm = SUPERSAMPLE * 1.2 * FACE_FRACTION * size / 140.0  # ~ rendered resolution of the face
    summary = {
        "size": size,
        "frames": frames,
        "clips_per_identity": clips,
        "fps": float(fps),
        "seed": int(seed),
        "intrinsics": intr.tolist(),
        "identities": [],
        "train": [],
        "test": [],
    }
    for i in range(identities):
        photo_name, image, lm = bases[i % len(bases)]
        rng = np.random.default_rng([int(seed), 1, i])
        appearance = Appearance() if i < len(bases) else random_appearance(rng)
        head = build_head(image, lm, appearance, texture_px_per_mm=tex_px_per_mm)
        rest = head_framing(head, intr, size)
        name = f"id{i:03d}_{photo_name}"
        split = "test" if i in test else "train"
        summary["identities"].append(
            {"name": name, "photo": photo_name, "split": split, "appearance": asdict(appearance)}
        )
        for c in range(clips):
            clip_rng = np.random.default_rng([int(seed), 2, i, c])
            background = random_background(clip_rng, size * SUPERSAMPLE)
            motion = sample_motion(clip_rng, frames, fps, rest)
            video, truth = render_clip(head, motion, size=size, intrinsics=intr, background=background, fps=fps)
            clip_name = f"{name}#{c:03d}"
            _write_video(root / split / f"{clip_name}.mp4", video, fps)
            save_truth(root / split / f"{clip_name}.npz", truth)
            summary[split].append(f"{clip_name}.mp4")
            if progress is not None:
                progress(f"{split}/{clip_name}.mp4 ({frames} frames)")
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    tmp = root / ".synth.json.part"
    tmp.write_text(text)
    os.replace(tmp, root / "synth.json")
    return summary
