"""Motion files: a driving video's motion (keypoints, jacobians), without its pixels, saved once.

A motion file (`.npz`, loaded with `allow_pickle=False`) holds what animation needs from a driving
video, so it can be reused across photos and shared without the video:

    format        int, MOTION_FORMAT (a newer file is refused)
    model_id      str, `model_identifier` of the depth + keypoint networks that made it
    value         T×K×2 float32 keypoints in [-1, 1] (x, y), one row per driving frame
    jacobian      T×K×2×2 float32 (absent when the model has no jacobians)
    landmarks     T×68×2 float32 normalised landmarks of each frame's crop, NaN where none was
                  found (only when extracted for `--best-frame auto`)
    fps_num, fps_den   the driving frame rate as an exact fraction
    num_frames    T
    driving       str, the driving video's file name (for messages)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from dagan.errors import DaganError
from dagan.geometry import Keypoints
from dagan.io._files import atomic_file, check_output_parent

MOTION_FORMAT = 1
MOTION_SUFFIX = ".npz"
_MOTION_COMPONENTS = ("depth.", "keypoint_detector.")


@dataclass
class Motion:
    """A driving video's per-frame keypoints. value: T×K×2; jacobian: T×K×2×2 or None."""

    value: np.ndarray
    jacobian: np.ndarray | None
    frame_rate: Fraction
    model_id: str
    landmarks: np.ndarray | None = None  # T×68×2, NaN rows where no face was found
    driving: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.value.shape[0])

    def keypoints(self, start: int, stop: int, device: torch.device | str = "cpu") -> Keypoints:
        """Frames [start, stop) as float32 Keypoints (B×K×2, B×K×2×2) on `device`."""
        value = torch.from_numpy(np.ascontiguousarray(self.value[start:stop])).to(device)
        jac = None if self.jacobian is None else torch.from_numpy(
            np.ascontiguousarray(self.jacobian[start:stop])).to(device)
        return Keypoints(value, jac)


def model_identifier(model) -> str:
    """sha256 (hex, 16 digits) of the depth and keypoint-detector weights and their config.

    Only these two networks decide the motion a file holds, so a model retrained only in its
    generator keeps the identifier and can reuse motion files. `model` is a `DaGAN`.
    """
    h = hashlib.sha256()
    cfg = model.config.to_dict()
    shared = {k: cfg[k] for k in ("image_size", "num_channels", "num_kp", "depth", "keypoint")}
    h.update(json.dumps(shared, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        if not name.startswith(_MOTION_COMPONENTS):
            continue
        t = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def runtime_model_id(runtime) -> str:
    """The motion-model identifier of a runtime: its own `model_id`, else that of its `DaGAN` as loaded
    (`TorchRuntime.source_model`; the inference form's folded weights would hash differently per precision)."""
    ident = getattr(runtime, "model_id", None)
    if ident:
        return str(ident)
    model = getattr(runtime, "source_model", None) or getattr(runtime, "model", None)  # not an inference form
    if model is None or not hasattr(model, "state_dict"):
        raise DaganError(f"{type(runtime).__name__} has no model identifier; motion files need one")
    cached = getattr(runtime, "_motion_model_id", None)
    if cached is None:
        cached = model_identifier(model)
        runtime._motion_model_id = cached
    return cached


def is_motion_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() == MOTION_SUFFIX


def save_motion(path: str | os.PathLike, motion: Motion) -> Path:
    """Write `motion` to `path` atomically (temp file beside it, then rename)."""
    out = check_output_parent(path)
    if out.suffix.lower() != MOTION_SUFFIX:
        raise DaganError(f"motion file {out} must end in {MOTION_SUFFIX}")
    arrays = {
        "format": np.array(MOTION_FORMAT, np.int64),
        "model_id": np.array(motion.model_id),
        "value": np.asarray(motion.value, np.float32),
        "fps_num": np.array(motion.frame_rate.numerator, np.int64),
        "fps_den": np.array(motion.frame_rate.denominator, np.int64),
        "num_frames": np.array(motion.num_frames, np.int64),
        "driving": np.array(motion.driving),
    }
    if motion.jacobian is not None:
        arrays["jacobian"] = np.asarray(motion.jacobian, np.float32)
    if motion.landmarks is not None:
        arrays["landmarks"] = np.asarray(motion.landmarks, np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic_file(out) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return out


def load_motion(path: str | os.PathLike, model_id: str | None = None) -> Motion:
    """Read a motion file; `model_id` given, a file made by another model is refused.

    Raises:
        DaganError: unreadable or not a motion file, a newer format, inconsistent arrays, or a
            different model.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DaganError(f"motion file {p} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DaganError(f"{p} is not a readable motion file ({exc})") from None
    missing = [k for k in ("format", "model_id", "value", "fps_num", "fps_den", "num_frames") if k not in arrays]
    if missing:
        raise DaganError(f"{p} is not a dagan motion file (missing {', '.join(missing)})")
    version = int(arrays["format"])
    if version > MOTION_FORMAT:
        raise DaganError(f"{p} has motion format {version}, newer than this dagan reads ({MOTION_FORMAT}); "
                         "upgrade dagan or extract the motion again")
    ident = str(arrays["model_id"])
    if model_id is not None and ident != model_id:
        raise DaganError(f"{p} was extracted with another model ({ident}, this model is {model_id}); "
                         "run `dagan extract-motion` again with this --model")
    value = arrays["value"].astype(np.float32)
    jacobian = arrays.get("jacobian")
    landmarks = arrays.get("landmarks")
    t = int(arrays["num_frames"])
    if value.ndim != 3 or value.shape[0] != t or value.shape[2] != 2 or t == 0 or int(arrays["fps_num"]) <= 0 \
            or int(arrays["fps_den"]) <= 0 \
            or (jacobian is not None and jacobian.shape != (*value.shape, 2)) \
            or (landmarks is not None and landmarks.shape != (t, 68, 2)):
        raise DaganError(f"{p} is a damaged motion file (array shapes disagree with its {t} frames)")
    fps = Fraction(int(arrays["fps_num"]), int(arrays["fps_den"]))
    return Motion(value, None if jacobian is None else jacobian.astype(np.float32), fps, ident,
                  None if landmarks is None else landmarks.astype(np.float32), str(arrays.get("driving", p.name)))
