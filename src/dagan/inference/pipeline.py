"""The animation pipeline: a photo and a driving video, motion file or image in, a finished output.

Streaming with bounded memory: the driving video is decoded, face-cropped, animated in batches
and encoded frame by frame; each selected face's depth, keypoints and encoder features are
computed once (and kept for the next run with the same photo). The faces of a group photo run as
one batch per frame and are pasted back into the one photo, or written one file per face.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dagan.errors import DaganError
from dagan.geometry import Keypoints, normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.inference.driving import MotionDriving, VideoDriving, crop_landmarks, normalized_landmarks, open_driving  # noqa: F401
from dagan.inference.face import Box, OneEuroFilter, crop_and_resize, crop_box_from_face, detect_faces
from dagan.inference.group import face_output_path, parse_faces, select_faces
from dagan.inference.motion import save_motion
from dagan.inference.outputs import ImageFrameWriter, is_image_path
from dagan.inference.paste import even_size, paste_faces
from dagan.inference.runtime import PRECISIONS, Runtime, TorchRuntime, autocast_context  # noqa: F401
from dagan.inference.visualize import colorize_depth, draw_keypoints
from dagan.io import open_writer, read_image, to_uint8
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
    detect_every: int = 1
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


@dataclass
class PreparedPhoto:
    """A photo with its selected faces cropped and encoded, computed once per photo and options."""

    photo: np.ndarray  # H×W×3 float in [0, 1]
    numbers: list[int]  # 1-based face numbers, left to right
    boxes: list[Box]  # crop boxes in photo pixels
    crops: list[np.ndarray]  # S×S×3 per face
    states: list  # one runtime source state per face
    messages: list[str] = field(default_factory=list)
    _stacked: dict = field(default_factory=dict)

    def stacked_state(self, runtime, repeats: int):
        """The faces' states stacked for F·repeats generator rows (see `TorchRuntime.stack_states`)."""
        if repeats not in self._stacked:
            self._stacked[repeats] = runtime.stack_states(self.states, repeats)
        return self._stacked[repeats]


class AnimationPipeline:
    """Animate photos with driving videos, motion files or images using a DaGAN model.

    pipe = AnimationPipeline(DaGAN.from_pretrained(dir), device="auto", precision="fp32")
    pipe.run("photo.jpg", "driving.mp4", "out.mp4", AnimateOptions(paste_back=True))
    """

    source_cache_size = 4  # prepared photos kept for later runs (batch jobs reuse them)

    def __init__(self, model: DaGAN | Runtime, device: str = "auto", precision: str = "fp32", progress: bool = True):
        if isinstance(model, DaGAN):
            self.device = resolve_device(device)
            self.runtime: Runtime = TorchRuntime(model, self.device, precision)
        else:
            self.runtime = model
            self.device = model.device
        self.precision = self.runtime.precision
        self.model = model
        self.size = self.runtime.config.image_size
        self.progress = progress
        self._photos: OrderedDict = OrderedDict()

    # ------------------------------------------------------------------ helpers
    def _tensor(self, frames: list[np.ndarray]) -> torch.Tensor:
        arr = np.stack([f.astype(np.float32) for f in frames])  # T×S×S×3
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous().to(self.device)

    def open_driving(self, driving: str, options: AnimateOptions, messages: list[str]):
        """The driving source for a video, a motion file (.npz) or an image (see `dagan.inference.driving`)."""
        return open_driving(str(driving), self.runtime, self.size, self._tensor, crop=options.crop,
                            detect_every=options.detect_every, messages=messages)

    @torch.no_grad()
    def prepare_photo(self, source: str | Path, options: AnimateOptions | None = None) -> PreparedPhoto:
        """Detect, select, crop and encode the photo's faces; reused while the file is unchanged."""
        options = options or AnimateOptions()
        spec = parse_faces(options.faces)
        source = str(source)
        with contextlib.suppress(OSError):
            stat = os.stat(source)
            key = (os.path.realpath(source), stat.st_mtime_ns, stat.st_size, options.crop, spec)
            if key in self._photos:
                self._photos.move_to_end(key)
                return self._photos[key]
        photo = read_image(source)
        h, w = photo.shape[:2]
        messages: list[str] = []
        if not options.crop:
            if spec != "largest":
                raise DaganError("--faces needs face detection and cannot be combined with --no-crop")
            if abs(h - w) > 0.05 * max(h, w):
                messages.append(f"{source} is {w}×{h}, not square; --no-crop stretches it to {self.size}²")
            numbers, boxes = [1], [Box(0, 0, w, h)]
        else:
            found = detect_faces(to_uint8(photo))
            chosen = select_faces(found, spec, source)
            if spec == "largest" and len(found) > 1:
                messages.append(f"{len(found)} faces in {source}; animating the largest (face {chosen[0][0]}; "
                                "--faces all animates every face)")
            numbers = [n for n, _ in chosen]
            boxes = [crop_box_from_face(face, (w, h)) for _, face in chosen]
        crops = [crop_and_resize(photo, box, self.size) for box in boxes]
        states = [self.runtime.prepare_source(self._tensor([crop])) for crop in crops]
        prepared = PreparedPhoto(photo, numbers, boxes, crops, states, messages)
        if "key" in locals():
            self._photos[key] = prepared
            while len(self._photos) > self.source_cache_size:
                self._photos.popitem(last=False)
        return prepared

    # ------------------------------------------------------------------ motion files
    @torch.no_grad()
    def extract_motion(self, driving: str | Path, output: str | Path, options: AnimateOptions | None = None,
                       landmarks: bool = False):
        """Save a driving video's keypoints (and landmarks for `--best-frame auto`) as a motion file.

        Returns (Motion, messages). The crops and batches match `run` on the video, so animating
        from the file gives the frames animating from the video gives.
        """
        options = options or AnimateOptions()
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
        options = options or AnimateOptions()
        if options.batch_size < 1:
            raise DaganError(f"--batch-size must be at least 1, got {options.batch_size}")
        if options.side_by_side and options.paste_back:
            raise DaganError("--side-by-side and --paste-back cannot be combined; choose one")
        source, driving, output = str(source), str(driving), Path(output)
        messages: list[str] = []
        drive = self.open_driving(driving, options, messages)
        self._check_output(drive, driving, output, options)
        prepared = self.prepare_photo(source, options)
        messages.extend(prepared.messages)
        if drive.is_image and options.relative:
            options = replace(options, relative=False)
            messages.append(f"{driving} is one image: the face takes its pose and expression (absolute motion)")
        best_index, kp_initial = drive.initial(options.best_frame, prepared.crops[0], source)
        if options.best_frame == "auto":
            messages.append(f"best driving frame: {best_index}")
        audio_from = options.audio_file or (drive.audio if options.audio else None)
        progress = self._progress_bar(drive.num_frames)
        try:
            with contextlib.ExitStack() as stack:
                writers = [stack.enter_context(w)
                           for w in self._open_writers(output, prepared, drive, options, audio_from)]
                written = self._animate(drive, prepared, writers, options, kp_initial, progress, on_progress)
                if written == 0:
                    raise DaganError(f"{driving} has no decodable frames")
                audio_written = any(getattr(w, "writes_audio", False) for w in writers)
        finally:
            progress.close()
        if options.audio_file and not audio_written:
            messages.append(f"{options.audio_file} has no audio track; the output is silent")
        paths = [w.path for w in writers]
        return AnimateResult(paths[0], written, float(drive.frame_rate), writers[0].size, bool(audio_written),
                             best_index, messages, paths, prepared.numbers)

    def _check_output(self, drive, driving: str, output: Path, options: AnimateOptions) -> None:
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

    def _open_writers(self, output: Path, prepared: PreparedPhoto, drive, options: AnimateOptions, audio_from):
        """One writer for a pasted-back output, else one per face (`_face<N>` names unless --faces largest)."""
        if options.paste_back:
            h, w = prepared.photo.shape[:2]
            size, paths = ((w, h) if is_image_path(output) else even_size(w, h)), [output]
        else:
            size = (5 * self.size, self.size) if options.side_by_side else (self.size, self.size)
            per_face = parse_faces(options.faces) != "largest"
            paths = [face_output_path(output, n) for n in prepared.numbers] if per_face else [output]
        if is_image_path(output):
            return [ImageFrameWriter(p, drive.frame_rate, size) for p in paths]
        return [open_writer(p, drive.frame_rate, size, audio_from=audio_from) for p in paths]

    def _animate(self, drive, prepared: PreparedPhoto, writers, options: AnimateOptions, kp_initial, progress,
                 on_progress) -> int:
        """Drive every selected face through every batch of driving keypoints; returns frames written."""
        adapt = options.relative and options.adapt_movement_scale
        smoother = OneEuroFilter(min_cutoff=options.smooth_keypoints, beta=0.05, rate=float(drive.frame_rate)) \
            if options.smooth_keypoints > 0 else None
        scales = None
        written = 0
        for crops, depth, kp in drive.batches(options.batch_size):
            if kp_initial is None:
                kp_initial = kp[0:1]
            if scales is None:
                scales = [movement_scale(s.keypoints, kp_initial) if adapt else 1.0 for s in prepared.states]
            if smoother is not None:
                kp = self._smooth(smoother, kp)
            kp_norms = [normalize_keypoints(s.keypoints, kp, kp_initial, relative=options.relative, scale=scale)
                        for s, scale in zip(prepared.states, scales, strict=True)]
            preds = self._generate_faces(prepared, kp_norms)  # F×T×S×S×3
            for t in range(preds.shape[1]):
                self._write_frame(writers, preds[:, t], prepared, crops, depth, kp, t, options)
                written += 1
                progress.update(1)
                if on_progress:
                    on_progress(written)
        return written

    def _generate_faces(self, prepared: PreparedPhoto, kp_norms: list[Keypoints]) -> np.ndarray:
        """F×T×S×S×3 predictions; the F faces × T frames run as one generator batch where the runtime can."""
        faces, t = len(kp_norms), kp_norms[0].value.shape[0]
        if faces == 1:
            pred = self.runtime.generate(prepared.states[0], kp_norms[0])
        elif hasattr(self.runtime, "stack_states"):
            pred = self.runtime.generate(prepared.stacked_state(self.runtime, t), Keypoints.cat(kp_norms))
        else:
            pred = torch.cat([self.runtime.generate(s, k) for s, k in zip(prepared.states, kp_norms, strict=True)])
        pred = pred.permute(0, 2, 3, 1).cpu().numpy()  # (F·T)×S×S×3, face-major
        return pred.reshape(faces, t, *pred.shape[1:])

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

    def _write_frame(self, writers, faces: np.ndarray, prepared: PreparedPhoto, crops, depth, kp: Keypoints,
                     t: int, options: AnimateOptions) -> None:
        """Frame t: every face pasted into the photo, or each face (or its panels) to its own writer.

        faces: F×S×S×3 predictions; crops/depth/kp: the driving batch (crops and depth None for motion files).
        """
        if options.paste_back:
            w, h = writers[0].size
            writers[0].write(to_uint8(paste_faces(prepared.photo, list(faces), prepared.boxes)[:h, :w]))
            return
        for face, crop, writer in zip(faces, prepared.crops, writers, strict=True):
            if not options.side_by_side:
                writer.write(to_uint8(face))
                continue
            driving_u8 = to_uint8(crops[t])
            panels = [to_uint8(crop), driving_u8, to_uint8(face), colorize_depth(depth[t, 0].float().cpu().numpy()),
                      draw_keypoints(driving_u8, kp.value[t].cpu().numpy())]
            writer.write(np.concatenate(panels, axis=1))  # S×5S×3

    def _progress_bar(self, total: int):
        from tqdm import tqdm

        return tqdm(total=total or None, unit="frame", desc="animating", disable=not self.progress,
                    file=sys.stderr, dynamic_ncols=True)
