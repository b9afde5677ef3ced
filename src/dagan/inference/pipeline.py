"""The animation pipeline: a photo and a driving video in, a finished video out.

Streaming with bounded memory: the driving video is decoded, face-cropped, animated in batches
and encoded frame by frame; the source's depth, keypoints and encoder features are computed once.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from dagan.errors import DaganError
from dagan.geometry import Keypoints, normalize_keypoints
from dagan.geometry.keypoints import convex_hull_area, movement_scale
from dagan.inference.face import (
    Box,
    FaceTracker,
    OneEuroFilter,
    crop_and_resize,
    crop_box_from_face,
    detect_faces,
    detect_largest_face,
    face_landmarks,
)
from dagan.inference.paste import even_size, paste_back
from dagan.inference.runtime import PRECISIONS, Runtime, TorchRuntime, autocast_context  # noqa: F401
from dagan.inference.visualize import colorize_depth, draw_keypoints
from dagan.io import iter_frames, open_writer, probe_video, read_image, to_uint8
from dagan.models import DaGAN


def resolve_device(name: str = "auto") -> torch.device:
    """auto → cuda, then mps, then cpu; an unavailable explicit device is a DaganError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DaganError("--device cuda: no CUDA device is available (this torch build: " + torch.__version__ + ")")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DaganError("--device mps: Apple MPS is not available on this machine")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise DaganError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


@dataclass
class AnimateOptions:
    """What `dagan animate` lets a user choose."""

    relative: bool = True
    adapt_movement_scale: bool = True
    best_frame: str | int | None = None  # None: first frame; "auto": closest landmarks; int: that frame
    crop: bool = True
    paste_back: bool = False
    side_by_side: bool = False
    smooth_keypoints: float = 0.0  # One-Euro min cutoff in Hz; 0 disables
    audio: bool = True
    batch_size: int = 8
    detect_every: int = 1


@dataclass
class AnimateResult:
    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    audio: bool
    best_frame: int
    messages: list[str] = field(default_factory=list)


def normalized_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Centre 68 landmarks and divide by sqrt(convex-hull area), as the original's best-frame search."""
    centred = landmarks - landmarks.mean(axis=0, keepdims=True)
    area = convex_hull_area(torch.from_numpy(landmarks.astype(np.float64)))
    return centred / math.sqrt(area) if area > 0 else centred


def crop_landmarks(crop: np.ndarray) -> np.ndarray | None:
    """68 landmarks of the largest face in a (cropped) frame, or None."""
    boxes = detect_faces(to_uint8(crop))
    return face_landmarks(crop, boxes[0]) if boxes else None


class AnimationPipeline:
    """Animate photos with driving videos using a DaGAN model.

    pipe = AnimationPipeline(DaGAN.from_pretrained(dir), device="auto", precision="fp32")
    pipe.run("photo.jpg", "driving.mp4", "out.mp4", AnimateOptions(paste_back=True))
    """

    def __init__(self, model: DaGAN | Runtime, device: str = "auto", precision: str = "fp32", progress: bool = True):
        if isinstance(model, DaGAN):
            self.device = resolve_device(device)
            self.runtime: Runtime = TorchRuntime(model, self.device, precision)
        elif hasattr(model, "make_runtime"):  # e.g. dagan.onnx.OnnxModel
            self.runtime = model.make_runtime(device, precision)
            self.device = self.runtime.device
        else:
            self.runtime = model
            self.device = model.device
        self.precision = self.runtime.precision
        self.model = model
        self.size = self.runtime.config.image_size
        self.progress = progress

    # ------------------------------------------------------------------ helpers
    def _tensor(self, frames: list[np.ndarray]) -> torch.Tensor:
        arr = np.stack([f.astype(np.float32) for f in frames])  # T×S×S×3
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous().to(self.device)

    def _source_crop(self, photo: np.ndarray, source: str, crop: bool, messages: list[str]):
        h, w = photo.shape[:2]
        if not crop:
            if abs(h - w) > 0.05 * max(h, w):
                messages.append(f"{source} is {w}×{h}, not square; --no-crop stretches it to {self.size}²")
            return crop_and_resize(photo, Box(0, 0, w, h), self.size), Box(0, 0, w, h)
        face, count = detect_largest_face(to_uint8(photo), source=source)
        if count > 1:
            messages.append(f"{count} faces in {source}; animating the largest")
        box = crop_box_from_face(face, (w, h))
        return crop_and_resize(photo, box, self.size), box

    def _driving_crops(self, path: str, crop: bool, detect_every: int, messages: list[str]) -> Iterator[np.ndarray]:
        if not crop:
            for frame in iter_frames(path):
                h, w = frame.shape[:2]
                yield crop_and_resize(frame, Box(0, 0, w, h), self.size)
            return
        tracker = FaceTracker(source=str(path), detect_every=detect_every)
        for tracked in tracker.track(lambda: iter_frames(path)):
            yield crop_and_resize(tracked.frame, tracked.crop_box, self.size)
        messages.extend(tracker.report.messages())

    def _find_best_frame(self, source_crop: np.ndarray, path: str, options: AnimateOptions, source: str):
        """Index and crop of the driving frame whose normalised landmarks are closest to the source's."""
        src = crop_landmarks(source_crop)
        if src is None:
            raise DaganError(f"--best-frame auto: no facial landmarks found in the cropped {source}")
        src = normalized_landmarks(src)
        best, best_err, best_crop = None, math.inf, None
        for i, crop in enumerate(self._driving_crops(path, options.crop, options.detect_every, [])):
            lm = crop_landmarks(crop)
            if lm is None:
                continue
            err = float(((normalized_landmarks(lm) - src) ** 2).sum())
            if err < best_err:
                best, best_err, best_crop = i, err, crop
        if best is None:
            raise DaganError(f"--best-frame auto: no facial landmarks found in any frame of {path}")
        return best, best_crop

    # ------------------------------------------------------------------ main entry
    @torch.no_grad()
    def run(
        self,
        source: str | Path,
        driving: str | Path,
        output: str | Path,
        options: AnimateOptions | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> AnimateResult:
        options = options or AnimateOptions()
        if options.batch_size < 1:
            raise DaganError(f"--batch-size must be at least 1, got {options.batch_size}")
        if options.side_by_side and options.paste_back:
            raise DaganError("--side-by-side and --paste-back cannot be combined; choose one")
        source, driving, output = str(source), str(driving), Path(output)
        messages: list[str] = []
        photo = read_image(source)
        info = probe_video(driving)
        if info.num_frames == 0:
            raise DaganError(f"{driving} has no video frames")
        source_crop, source_box = self._source_crop(photo, source, options.crop, messages)
        runtime = self.runtime

        best_index = 0
        initial_crop = None
        if options.best_frame == "auto":
            best_index, initial_crop = self._find_best_frame(source_crop, driving, options, source)
            messages.append(f"best driving frame: {best_index}")
        elif options.best_frame is not None:
            best_index = int(options.best_frame)
            if not 0 <= best_index < max(info.num_frames, 1):
                raise DaganError(f"--best-frame {best_index} is outside {driving} (0…{info.num_frames - 1})")
            for i, crop in enumerate(self._driving_crops(driving, options.crop, options.detect_every, [])):
                if i == best_index:
                    initial_crop = crop
                    break
            if initial_crop is None:
                raise DaganError(f"--best-frame {best_index}: {driving} has fewer frames")

        state = runtime.prepare_source(self._tensor([source_crop]))
        source_kp = state.keypoints
        kp_initial = None
        if initial_crop is not None:
            kp_initial = runtime.driving_keypoints(self._tensor([initial_crop]))[1]
        adapt = options.relative and options.adapt_movement_scale

        if options.paste_back:
            out_w, out_h = even_size(photo.shape[1], photo.shape[0])
        else:
            out_w, out_h = self.size, self.size
        if options.side_by_side:
            out_w, out_h = 5 * self.size, self.size
        smoother = OneEuroFilter(min_cutoff=options.smooth_keypoints, beta=0.05, rate=info.fps) \
            if options.smooth_keypoints > 0 else None

        audio_from = driving if (options.audio and info.has_audio) else None
        writer = open_writer(output, info.frame_rate, (out_w, out_h), audio_from=audio_from)
        progress = self._progress_bar(info.num_frames)
        written = 0
        source_u8 = to_uint8(source_crop)
        try:
            with writer:
                batch: list[np.ndarray] = []

                scale = None

                def flush():
                    nonlocal kp_initial, scale, written
                    frames = self._tensor(batch)
                    depth, kp = runtime.driving_keypoints(frames)
                    if kp_initial is None:
                        kp_initial = kp[0:1]
                    if scale is None:
                        scale = movement_scale(source_kp, kp_initial) if adapt else 1.0
                    if smoother is not None:
                        kp = self._smooth(smoother, kp)
                    kp_norm = normalize_keypoints(source_kp, kp, kp_initial, relative=options.relative, scale=scale)
                    pred = runtime.generate(state, kp_norm).permute(0, 2, 3, 1).cpu().numpy()
                    for i, p in enumerate(pred):
                        writer.write(self._compose(p, batch[i], source_u8, photo, source_box, depth[i], kp[i:i + 1],
                                                   options))
                        written += 1
                        progress.update(1)
                        if on_progress:
                            on_progress(written)
                    batch.clear()

                for crop in self._driving_crops(driving, options.crop, options.detect_every, messages):
                    batch.append(crop)
                    if len(batch) == options.batch_size:
                        flush()
                if batch:
                    flush()
                if written == 0:
                    raise DaganError(f"{driving} has no decodable frames")
                audio_written = getattr(writer, "writes_audio", False)
        finally:
            progress.close()
        return AnimateResult(output, written, info.fps, (out_w, out_h), bool(audio_written), best_index, messages)

    # ------------------------------------------------------------------ per-frame output
    def _smooth(self, smoother: OneEuroFilter, kp: Keypoints) -> Keypoints:
        values, jacs = [], []
        for i in range(kp.value.shape[0]):
            parts = [kp.value[i].reshape(-1)]
            if kp.jacobian is not None:
                parts.append(kp.jacobian[i].reshape(-1))
            flat = torch.cat(parts).cpu().numpy().astype(np.float64)
            smoothed = torch.from_numpy(smoother(flat)).to(kp.value)
            n = kp.value[i].numel()
            values.append(smoothed[:n].view_as(kp.value[i]))
            if kp.jacobian is not None:
                jacs.append(smoothed[n:].view_as(kp.jacobian[i]))
        return Keypoints(torch.stack(values), torch.stack(jacs) if jacs else None)

    def _compose(self, pred, driving_crop, source_u8, photo, source_box, depth, kp, options):
        if options.paste_back:
            w, h = even_size(photo.shape[1], photo.shape[0])
            return to_uint8(paste_back(photo, pred, source_box)[:h, :w])
        if not options.side_by_side:
            return to_uint8(pred)
        driving_u8 = to_uint8(driving_crop)
        panels = [source_u8, driving_u8, to_uint8(pred), colorize_depth(depth[0].float().cpu().numpy()),
                  draw_keypoints(driving_u8, kp.value[0].cpu().numpy())]
        return np.concatenate(panels, axis=1)  # S×5S×3

    def _progress_bar(self, total: int):
        from tqdm import tqdm

        return tqdm(total=total or None, unit="frame", desc="animating", disable=not self.progress,
                    file=sys.stderr, dynamic_ncols=True)
