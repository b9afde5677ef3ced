"""The animation pipeline: a photo and a driving video, motion file or image in, a finished output.

Streaming with bounded memory: the driving video is decoded, face-cropped, animated in batches
and encoded frame by frame (the stages in `dagan.inference.stages`); each selected face's depth,
keypoints and encoder features are computed once and kept for the next run with the same photo.
The faces of a group photo run as one batch per frame and are pasted back into the one photo, or
written one file per face. Where the motion comes from is a driving source (`dagan.inference.driving`).
Decode → track → crop run on one background thread and compose → encode on another (`workers.py`),
so the networks never wait on the face tracker, and every stage is timed (`profile.py`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from dagan.errors import DaganError
from dagan.inference.driving import (  # noqa: F401  (crop_landmarks, normalized_landmarks: public names)
    MotionDriving,
    VideoDriving,
    crop_landmarks,
    normalized_landmarks,
    open_driving,
)
from dagan.inference.face import OneEuroFilter
from dagan.inference.group import face_output_path, parse_faces
from dagan.inference.motion import save_motion
from dagan.inference.outputs import ImageFrameWriter, is_image_path
from dagan.inference.profile import Profile
from dagan.inference.runtime import PRECISIONS, Runtime, TorchRuntime, autocast_context  # noqa: F401
from dagan.geometry import Keypoints
from dagan.inference.stages import Animated, Composer, MotionTransfer, SourceFace, batched, driving_crops, prepare_faces
from dagan.inference.workers import drain, prefetch
from dagan.io import open_writer, read_image
from dagan.io.video import VIDEO_SUFFIXES
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
    batch_size: int = 8  # driving frames per batch (the generator runs faces × frames at once)
    detect_every: int = 25  # full face detection every N driving frames, followed in between
    faces: str = "largest"  # "largest", "all", or 1-based face numbers left to right ("1,3")
    audio_file: str | None = None  # the output's audio track, instead of the driving video's


@dataclass
class AnimateResult:
    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    audio: bool
    best_frame: int
    messages: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)  # every file written (one per face when not pasted back)
    faces: list[int] = field(default_factory=list)  # the animated faces' numbers
    profile: Profile | None = None  # time per stage (`dagan animate --profile` prints its table)


class AnimationPipeline:
    """Animate photos with driving videos, motion files or images using a DaGAN model.

    pipe = AnimationPipeline(DaGAN.from_pretrained(dir), device="auto", precision="fp32")
    pipe.run("photo.jpg", "driving.mp4", "out.mp4", AnimateOptions(paste_back=True))

    `model` is a `DaGAN` (run by `TorchRuntime`), an object with `make_runtime(device, precision)`
    (e.g. an exported ONNX model; it gets the device string as given), or a `Runtime` itself.
    Everything the pipeline asks of the networks goes through `self.runtime`. `compile` asks
    `TorchRuntime` for torch.compile. `overlap` (default) runs decode/track/crop and compose/encode
    on background threads; False runs every stage on the calling thread (for measurements).
    """

    photo_cache_size = 4  # prepared photos kept for later runs (batch jobs reuse them)

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
        self._photos: OrderedDict = OrderedDict()

    def _driving_crops(self, path: str, crop: bool, detect_every: int, messages: list[str]) -> Iterator[np.ndarray]:
        return driving_crops(path, self.size, crop=crop, detect_every=detect_every, messages=messages)

    def open_driving(self, driving: str, options: AnimateOptions, messages: list[str]):
        """The driving source for a video, a motion file (.npz) or an image (see `dagan.inference.driving`)."""
        return open_driving(str(driving), self.runtime, self.size, crop=options.crop,
                            detect_every=options.detect_every, messages=messages)

    @torch.no_grad()
    def prepare_photo(self, source: str | Path, options: AnimateOptions | None = None,
                      messages: list[str] | None = None) -> list[SourceFace]:
        """The photo's selected faces, cropped and prepared; reused while the file is unchanged."""
        options = options or AnimateOptions()
        spec = parse_faces(options.faces)
        source = str(source)
        key = None
        with contextlib.suppress(OSError):
            stat = os.stat(source)
            key = (os.path.realpath(source), stat.st_mtime_ns, stat.st_size, options.crop, spec)
        if key in self._photos:
            self._photos.move_to_end(key)
            faces, notes = self._photos[key]
        else:
            notes: list[str] = []
            faces = prepare_faces(self.runtime, read_image(source), source, crop=options.crop, faces=spec,
                                  messages=notes)
            if key is not None:
                self._photos[key] = (faces, notes)
                while len(self._photos) > self.photo_cache_size:
                    self._photos.popitem(last=False)
        if messages is not None:
            messages.extend(notes)
        return faces

    # ------------------------------------------------------------------ motion files
    @torch.no_grad()
    def extract_motion(self, driving: str | Path, output: str | Path, options: AnimateOptions | None = None,
                       landmarks: bool = False):
        """Save a driving video's keypoints (and landmarks for `--best-frame auto`) as a motion file.

        Returns (Motion, messages). The crops and batches match `run` on the video, so animating
        from the file gives the frames animating from the video gives.
        """
        options = options or AnimateOptions()
        check_options(options)
        messages: list[str] = []
        drive = self.open_driving(str(driving), options, messages)
        if not isinstance(drive, VideoDriving):
            raise DaganError(f"extract-motion needs a driving video; {driving} is "
                             f"{'an image' if drive.is_image else 'already a motion file'}")
        motion = drive.extract(options.batch_size, landmarks)
        save_motion(output, motion)
        return motion, messages

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
        """Animate `source` with `driving` into `output` (.mp4/.mov, .gif, a PNG folder, or a picture).

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
        drive = self.open_driving(driving, options, messages)
        check_output(drive, driving, output, options)
        faces = self.prepare_photo(source, options, messages)
        if drive.is_image and options.relative:
            options = replace(options, relative=False)
            messages.append(f"{driving} is one image: the face takes its pose and expression (absolute motion)")
        best_index, initial = drive.initial(options.best_frame, faces[0].crop, source)
        if options.best_frame == "auto":
            messages.append(f"best driving frame: {best_index}")
        smoother = OneEuroFilter(min_cutoff=options.smooth_keypoints, beta=0.05, rate=float(drive.frame_rate)) \
            if options.smooth_keypoints > 0 else None
        motion = MotionTransfer(self.runtime, [f.state for f in faces], relative=options.relative,
                                adapt_movement_scale=options.adapt_movement_scale, initial=initial, smoother=smoother,
                                profile=profile)
        compose = Composer(faces, self.size, paste=options.paste_back, side_by_side=options.side_by_side,
                           even=not is_image_path(output))
        audio_from = options.audio_file or (drive.audio if options.audio else None)
        progress = self._progress_bar(drive.num_frames)
        queued = 2 * options.batch_size
        try:
            with contextlib.ExitStack() as stack:
                writers = [stack.enter_context(w) for w in self._writers(output, faces, drive, compose, options,
                                                                        audio_from)]

                def write(item: tuple[Animated, int, np.ndarray | None]) -> None:
                    with profile.stage("compose/paste"):
                        frames = compose.outputs(*item)
                    with profile.stage("encode"):
                        for writer, frame in zip(writers, frames, strict=True):
                            writer.write(frame)
                    profile.frames += 1
                    progress.update(1)
                    if on_progress:
                        on_progress(profile.frames)

                profile.start()
                with prefetch(lambda: drive.items(messages, profile), queued, background=self.overlap,
                              name="read") as items, \
                        drain(write, queued, background=self.overlap, name="write") as sink:
                    for batch in batched(items, options.batch_size):
                        if drive.has_pixels:  # S×S×3 crops: keypoints here, on the networks' thread
                            animated = motion(batch)
                        else:  # a motion file's 1-frame keypoints
                            animated = motion.animate(None, Keypoints.cat(batch))
                        for i, item in enumerate(batch):
                            sink.put((animated, i, item if drive.has_pixels else None))
                    sink.finish()
                if profile.frames == 0:
                    raise DaganError(f"{driving} has no decodable frames")
                audio_written = any(getattr(w, "writes_audio", False) for w in writers)
        finally:
            progress.close()
        profile.stop()
        if options.audio_file and not audio_written:
            messages.append(f"{options.audio_file} has no audio track; the output is silent")
        paths = [w.path for w in writers]
        return AnimateResult(paths[0], profile.frames, float(drive.frame_rate), compose.output_size,
                             bool(audio_written), best_index, messages, paths, [f.number for f in faces], profile)

    def _writers(self, output: Path, faces: list[SourceFace], drive, compose: Composer, options: AnimateOptions,
                 audio_from):
        """Write: one writer per output stream (`_face<N>` names per face unless --faces largest).

        A generator, so each writer (which reserves its temp file) is entered before the next opens.
        """
        if compose.streams == 1 and (options.paste_back or parse_faces(options.faces) == "largest"):
            paths = [output]
        else:
            paths = [face_output_path(output, f.number) for f in faces]
        for path in paths:
            if is_image_path(output):
                yield ImageFrameWriter(path, drive.frame_rate, compose.output_size)
            else:
                yield open_writer(path, drive.frame_rate, compose.output_size, audio_from=audio_from)

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
    parse_faces(options.faces)


def check_output(drive, driving: str, output: Path, options: AnimateOptions) -> None:
    """Refuse output/driving/audio combinations that cannot work, before any work."""
    if is_image_path(output) and not drive.is_image:
        kind = "a motion file" if isinstance(drive, MotionDriving) else "a video"
        raise DaganError(f"{output} is an image, but {driving} is {kind} ({drive.num_frames} frames); write "
                         ".mp4, .gif or a folder of PNGs, or drive with one image")
    if options.side_by_side and not drive.has_pixels:
        raise DaganError(f"--side-by-side shows the driving frames, and {driving} (a motion file) has none; "
                         "drive with the video instead")
    if options.audio_file:
        if not Path(options.audio_file).is_file():
            raise DaganError(f"--audio {options.audio_file}: no such file")
        if output.suffix.lower() not in VIDEO_SUFFIXES:
            raise DaganError(f"--audio needs a video output ({', '.join(VIDEO_SUFFIXES)}); {output} holds no sound")
