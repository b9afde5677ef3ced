"""The animation pipeline: a photo and a driving video in, a finished video out.

Streaming with bounded memory: the driving video is decoded, face-cropped, animated in batches
and encoded frame by frame; the source's depth, keypoints and encoder features are computed once.
The stages live in `stages.py`; here they are chained, with decode → track → crop on one
background thread and compose → encode on another (`workers.py`), so the networks never wait on
the face tracker, and timed per stage (`profile.py`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from dagan.errors import DaganError
from dagan.geometry import Keypoints
from dagan.geometry.keypoints import convex_hull_area
from dagan.inference.face import OneEuroFilter, detect_faces, face_landmarks
from dagan.inference.runtime import PRECISIONS, Runtime, TorchRuntime, autocast_context  # noqa: F401
from dagan.inference.profile import Profile
from dagan.inference.stages import (
    Animated,
    Composer,
    MotionTransfer,
    SourceFace,
    batched,
    driving_crops,
    frames_to_tensor,
    prepare_source,
)
from dagan.inference.workers import drain, prefetch
from dagan.io import open_writer, probe_video, read_image, to_uint8
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
    detect_every: int = 10  # full face detection every N driving frames, tracked in between


@dataclass
class AnimateResult:
    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    audio: bool
    best_frame: int
    messages: list[str] = field(default_factory=list)
    profile: Profile | None = None  # time per stage (`dagan animate --profile` prints its table)


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

    `model` is a `DaGAN` (run by `TorchRuntime`), an object with `make_runtime(device, precision)`
    (e.g. an exported ONNX model; it gets the device string as given), or a `Runtime` itself.
    Everything the pipeline asks of the networks goes through `self.runtime`. `compile` asks
    `TorchRuntime` for torch.compile. `overlap` (default) runs decode/track/crop and compose/encode
    on background threads; False runs every stage on the calling thread (for measurements).
    """

    def __init__(self, model, device: str = "auto", precision: str = "fp32", progress: bool = True,
                 compile: bool = False, overlap: bool = True):
        if isinstance(model, DaGAN):
            self.runtime: Runtime = TorchRuntime(model, resolve_device(device), precision, compile=compile)
        elif hasattr(model, "make_runtime"):
            self.runtime = model.make_runtime(device, precision)
        else:
            self.runtime = model
        self.device = self.runtime.device
        self.precision = self.runtime.precision
        self.model = model
        self.size = self.runtime.config.image_size
        self.progress = progress
        self.overlap = overlap

    def _driving_crops(self, path: str, crop: bool, detect_every: int, messages: list[str]) -> Iterator[np.ndarray]:
        return driving_crops(path, self.size, crop=crop, detect_every=detect_every, messages=messages)

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

    def _initial_frame(self, source: SourceFace, driving: str, num_frames: int, options: AnimateOptions,
                       name: str, messages: list[str]) -> tuple[int, Keypoints | None]:
        """The initial driving frame's index and keypoints (None: the first frame, found while running)."""
        if options.best_frame is None:
            return 0, None
        if options.best_frame == "auto":
            index, crop = self._find_best_frame(source.crop, driving, options, name)
            messages.append(f"best driving frame: {index}")
        else:
            index, crop = int(options.best_frame), None
            if not 0 <= index < max(num_frames, 1):
                raise DaganError(f"--best-frame {index} is outside {driving} (0…{num_frames - 1})")
            for i, candidate in enumerate(self._driving_crops(driving, options.crop, options.detect_every, [])):
                if i == index:
                    crop = candidate
                    break
            if crop is None:
                raise DaganError(f"--best-frame {index}: {driving} has fewer frames")
        return index, self.runtime.driving_keypoints(frames_to_tensor([crop], self.device))[1]

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
        """Animate `source` with `driving` into `output` (.mp4/.mov, .gif or a PNG folder).

        Decode, face tracking and crop run on one background thread, compose and encode on
        another, the networks on the calling thread (with `overlap` False: all on the calling thread).
        `on_progress(frames_written)` is called from the thread that writes. Per-stage times are in
        `result.profile`.
        """
        options = options or AnimateOptions()
        check_options(options)
        source, driving, output = str(source), str(driving), Path(output)
        messages: list[str] = []
        profile = Profile(overlapped=self.overlap)
        photo = read_image(source)
        info = probe_video(driving)
        if info.num_frames == 0:
            raise DaganError(f"{driving} has no video frames")
        face = prepare_source(self.runtime, photo, source, crop=options.crop, messages=messages)
        best_index, initial = self._initial_frame(face, driving, info.num_frames, options, source, messages)
        smoother = OneEuroFilter(min_cutoff=options.smooth_keypoints, beta=0.05, rate=info.fps) \
            if options.smooth_keypoints > 0 else None
        motion = MotionTransfer(self.runtime, face.state, relative=options.relative,
                                adapt_movement_scale=options.adapt_movement_scale, initial=initial, smoother=smoother,
                                profile=profile)
        compose = Composer(face, self.size, paste=options.paste_back, side_by_side=options.side_by_side)
        audio_from = driving if (options.audio and info.has_audio) else None
        writer = open_writer(output, info.frame_rate, compose.output_size, audio_from=audio_from)
        progress = self._progress_bar(info.num_frames)

        def write(item: tuple[Animated, int, np.ndarray]) -> None:
            with profile.stage("compose/paste"):
                frame = compose(*item)
            with profile.stage("encode"):
                writer.write(frame)
            profile.frames += 1
            progress.update(1)
            if on_progress:
                on_progress(profile.frames)

        def read() -> Iterator[np.ndarray]:
            return driving_crops(driving, self.size, crop=options.crop, detect_every=options.detect_every,
                                 messages=messages, profile=profile)

        queued = 2 * options.batch_size
        profile.start()
        try:
            with writer:
                with prefetch(read, queued, background=self.overlap, name="read") as crops, \
                        drain(write, queued, background=self.overlap, name="write") as sink:
                    for batch in batched(crops, options.batch_size):
                        animated = motion(batch)
                        for i, crop in enumerate(batch):
                            sink.put((animated, i, crop))
                    sink.finish()
                if profile.frames == 0:
                    raise DaganError(f"{driving} has no decodable frames")
                audio_written = getattr(writer, "writes_audio", False)
        finally:
            progress.close()
        profile.stop()
        return AnimateResult(output, profile.frames, info.fps, compose.output_size, bool(audio_written), best_index,
                             messages, profile)

    def _progress_bar(self, total: int):
        from tqdm import tqdm

        return tqdm(total=total or None, unit="frame", desc="animating", disable=not self.progress,
                    file=sys.stderr, dynamic_ncols=True)


def check_options(options: AnimateOptions) -> None:
    """Reject option combinations that cannot work, before any file is touched."""
    if options.batch_size < 1:
        raise DaganError(f"--batch-size must be at least 1, got {options.batch_size}")
    if options.detect_every < 1:
        raise DaganError(f"--detect-every must be at least 1, got {options.detect_every}")
    if options.side_by_side and options.paste_back:
        raise DaganError("--side-by-side and --paste-back cannot be combined; choose one")
