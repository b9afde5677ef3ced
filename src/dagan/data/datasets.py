"""Talking-head video datasets: clip listing and reading, training samples (evaluation pairs: `dagan.data.pairs`).

Directory layout (VoxCeleb as prepared for FOMM/DaGAN)::

    ROOT/train/<identity>#<clip>.mp4      a video (.mp4, .mov or .gif), or
    ROOT/train/<identity>#<clip>/         a folder of .png/.jpg frames, sorted by file name
    ROOT/test/...                         the same for the test split

The identity is the part of the name before the first `#`. A folder is always a frame folder,
whatever its name: the released VoxCeleb frame sets name their folders `...#<clip>.mp4/`.
Hidden entries (names starting with a dot) and files of other types are ignored.

Randomness and resuming. A training sample is a pure function of (seed, epoch, index): every
random choice (clip, frames, augmentation) comes from a generator seeded with exactly those
numbers, never from global state. A given (epoch, index) therefore gives the same sample in
any worker or process, and a run resumed mid-epoch, or split over DDP ranks, sees the same
data. Call `set_epoch(epoch)` before each epoch's DataLoader iterator is created (workers
copy the dataset when they start, so with `persistent_workers=True` pass `(epoch, index)`
tuples as indices instead, e.g. from a sampler).

Bad data. A clip that cannot be read (corrupt video, empty frame folder) or a frame file that
cannot be read is logged once per process on the "dagan.data" logger and skipped: the sample
is drawn again from a fresh generator (seed, epoch, index, attempt), so the result still
depends only on the data, not on which process has already met the bad file. Only when every
clip is bad is it an error (`DaganError`).
"""

from __future__ import annotations

import gc
import logging
import operator
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dagan.data.augmentation import ClipAugmentation, depth_augmentation, pair_augmentation
from dagan.errors import DaganError
from dagan.io.image import read_image
from dagan.io.video import VideoDecodeWarning, iter_frames

__all__ = [
    "VIDEO_SUFFIXES",
    "FRAME_SUFFIXES",
    "Clip",
    "ClipReader",
    "list_clips",
    "sample_rng",
    "PairDataset",
    "FrameSequenceDataset",
]

logger = logging.getLogger("dagan.data")

VIDEO_SUFFIXES = (".mp4", ".mov", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
_LAYOUT_HINT = "<identity>#<clip>.mp4/.mov/.gif videos or <identity>#<clip>/ folders of .png/.jpg frames"
_MAX_ATTEMPTS = 1000  # redraws per sample before giving up (each redraw of a known-bad clip is ~30 µs)
_SAME_BASE_ATTEMPTS = 8  # redraws that stay with the index's own identity/clip before drawing any


# --------------------------------------------------------------------------------------------
# Listing


@dataclass(frozen=True)
class Clip:
    """One clip of a dataset split.

    Attributes:
        path: the video file or frame folder.
        name: its file/folder name (`id10001#abc#000001#000100.mp4`), the sample's "name".
        identity: the name's part before the first `#`.
        is_video: True for a video file, False for a frame folder.
    """

    path: Path
    name: str
    identity: str
    is_video: bool


def _identity(name: str, is_video: bool) -> str:
    if "#" in name and not name.startswith("#"):
        return name.split("#", 1)[0]
    return Path(name).stem if is_video else name


def list_clips(root: str | os.PathLike, split: str) -> dict[str, list[Clip]]:
    """Clips of `root/split`, grouped by identity: {identity: [Clip, ...]}, both sorted by name.

    Raises:
        DaganError: `root` or `root/split` is missing or not a folder, or the split has no clips.
    """
    root = Path(root)
    if not root.exists():
        raise DaganError(f"dataset root not found: {root} (expected a folder with train/ and test/ subfolders)")
    if not root.is_dir():
        raise DaganError(f"dataset root {root} is not a folder (expected one with train/ and test/ subfolders)")
    split_dir = root / split
    if not split_dir.is_dir():
        what = "is not a folder" if split_dir.exists() else "not found"
        raise DaganError(
            f"dataset split {split_dir} {what}: expected a {split}/ folder in {root} holding {_LAYOUT_HINT}"
        )
    groups: dict[str, list[Clip]] = {}
    try:
        entries = sorted(os.scandir(split_dir), key=lambda e: e.name)
    except OSError as exc:
        raise DaganError(f"cannot list dataset split {split_dir}: {exc.strerror or exc}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            is_video = False
        elif entry.is_file() and Path(entry.name).suffix.lower() in VIDEO_SUFFIXES:
            is_video = True
        else:
            continue
        clip = Clip(Path(entry.path), entry.name, _identity(entry.name, is_video), is_video)
        groups.setdefault(clip.identity, []).append(clip)
    if not groups:
        raise DaganError(f"no clips in dataset split {split_dir}: expected {_LAYOUT_HINT}")
    return {identity: groups[identity] for identity in sorted(groups)}


# --------------------------------------------------------------------------------------------
# Reading


class _LRU:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_fork_guard = {"pending": False, "registered": False}


def _gc_before_fork() -> None:
    if _fork_guard["pending"]:
        _fork_guard["pending"] = False
        gc.collect()


def _collect_before_next_fork() -> None:
    """Make sure the next fork (a DataLoader worker) inherits no decoded PyAV frames as garbage.

    PyAV frames whose side data was read (`dagan.io.video` reads the display matrix) sit in
    reference cycles until a full garbage collection, and a forked child that frees them
    deadlocks inside FFmpeg. A full collection just before the fork, once per fork and only
    after videos were decoded, frees them in the parent instead.
    """
    _fork_guard["pending"] = True
    if not _fork_guard["registered"] and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_gc_before_fork)
        _fork_guard["registered"] = True


class ClipReader:
    """Reads frames of clips, keeping the last few decoded videos in memory.

    Videos are decoded whole (clips are short) and kept as uint8 arrays in an LRU cache of
    `cache_size` clips; frame folders are listed once (listings are cached too) and a frame is
    read from its own file only. Each DataLoader worker gets its own reader (the caches are
    dropped when the reader is pickled).

    Args:
        cache_size: decoded videos to keep (a 256² clip of 100 frames takes 20 MB).
    """

    def __init__(self, cache_size: int = 4):
        self.cache_size = int(cache_size)
        self._videos = _LRU(self.cache_size)
        self._listings = _LRU(4096)

    def __getstate__(self):
        return {"cache_size": self.cache_size}

    def __setstate__(self, state):
        self.__init__(state["cache_size"])

    def _video(self, clip: Clip) -> np.ndarray:
        key = str(clip.path)
        frames = self._videos.get(key)
        if frames is not None:
            return frames
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", VideoDecodeWarning)
            try:
                decoded = list(iter_frames(clip.path))
            except (OSError, ValueError, RuntimeError) as exc:  # DaganError is caught by the caller
                raise DaganError(f"cannot read {clip.path}: {exc}") from None
        for w in caught:
            if issubclass(w.category, VideoDecodeWarning):
                logger.warning("%s", w.message)
        _collect_before_next_fork()
        shapes = {f.shape for f in decoded}
        if len(shapes) != 1:
            raise DaganError(f"frames of {clip.path} change size mid-clip: {sorted(shapes)}")
        frames = np.stack(decoded)  # N×H×W×3 uint8
        self._videos.put(key, frames)
        return frames

    def _listing(self, clip: Clip) -> list[str]:
        key = str(clip.path)
        names = self._listings.get(key)
        if names is not None:
            return names
        try:
            names = sorted(
                e.name
                for e in os.scandir(clip.path)
                if not e.name.startswith(".") and Path(e.name).suffix.lower() in FRAME_SUFFIXES and e.is_file()
            )
        except OSError as exc:
            raise DaganError(f"cannot list frame folder {clip.path}: {exc.strerror or exc}") from None
        if not names:
            raise DaganError(f"frame folder {clip.path} holds no .png/.jpg frames")
        self._listings.put(key, names)
        return names

    def num_frames(self, clip: Clip) -> int:
        """Frame count (decodes a video). Raises DaganError if the clip cannot be read."""
        return len(self._video(clip)) if clip.is_video else len(self._listing(clip))

    def frame_name(self, clip: Clip, index: int) -> str:
        """File name of frame `index`: the real file for a folder, `%07d.png` for a video."""
        return f"{index:07d}.png" if clip.is_video else self._listing(clip)[index]

    def frame(self, clip: Clip, index: int) -> np.ndarray:
        """Frame `index` as H×W×3 float32 RGB in [0, 1]. Raises DaganError if it cannot be read."""
        n = self.num_frames(clip)
        if not 0 <= index < n:
            raise DaganError(f"frame {index} is out of range for {clip.path} ({n} frames)")
        if clip.is_video:
            return self._video(clip)[index].astype(np.float32) / 255.0
        return read_image(clip.path / self._listing(clip)[index])


def _to_tensor(frame: np.ndarray, size: int | None) -> torch.Tensor:
    """H×W×3 float32 → 3×S×S float32, resized (bilinear, antialiased) only when needed."""
    t = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))  # 3×H×W
    if size is not None and tuple(t.shape[1:]) != (size, size):
        t = F.interpolate(t[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
        t = t.clamp(0.0, 1.0)
    return t


# --------------------------------------------------------------------------------------------
# Training datasets


def sample_rng(seed: int, epoch: int, index: int, attempt: int = 0) -> np.random.Generator:
    """The generator of one sample: a PCG64 stream keyed by (seed, epoch, index, attempt)."""
    key = [int(seed), int(epoch), int(index), int(attempt)]
    if min(key) < 0:
        raise ValueError(f"seed, epoch, index and attempt must be non-negative, got {key}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def _resolve_augmentation(augment: bool | ClipAugmentation, default) -> ClipAugmentation | None:
    if isinstance(augment, ClipAugmentation):
        return augment
    if augment is True:
        return default()
    if augment is False or augment is None:
        return None
    raise TypeError(f"augment must be a bool or a ClipAugmentation, got {type(augment).__name__}")


class _ClipDataset(Dataset):
    """Shared machinery: listing, (seed, epoch, index) generators, bad-clip skipping."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        image_size: int,
        id_sampling: bool,
        num_repeats: int,
        seed: int,
        cache_size: int,
    ):
        if int(image_size) <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        if int(num_repeats) <= 0:
            raise ValueError(f"num_repeats must be positive, got {num_repeats}")
        if int(seed) < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        self.root = Path(root)
        self.split = split
        self.image_size = int(image_size)
        self.id_sampling = bool(id_sampling)
        self.num_repeats = int(num_repeats)
        self.seed = int(seed)
        self.epoch = 0
        self.clips_by_identity = list_clips(self.root, split)
        self.identities = list(self.clips_by_identity)
        self.clips = [c for group in self.clips_by_identity.values() for c in group]
        self.reader = ClipReader(cache_size)
        self._bad_clips: set[str] = set()
        self._bad_frames: set[tuple[str, int]] = set()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose samples `dataset[index]` returns."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    @property
    def _num_base(self) -> int:
        return len(self.identities) if self.id_sampling else len(self.clips)

    def __len__(self) -> int:
        return self._num_base * self.num_repeats

    def _resolve_index(self, item) -> tuple[int, int]:
        if isinstance(item, tuple):
            epoch, index = (operator.index(v) for v in item)
        else:
            epoch, index = self.epoch, operator.index(item)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        return epoch, index

    def _is_bad(self, clip: Clip) -> bool:
        return str(clip.path) in self._bad_clips

    def _pick_clip(self, index: int, attempt: int, rng: np.random.Generator) -> Clip | None:
        """The clip of one attempt, or None when that attempt is known to fail (no I/O then)."""
        base = index % self._num_base
        if attempt < _SAME_BASE_ATTEMPTS:
            if self.id_sampling:
                group = self.clips_by_identity[self.identities[base]]
                if all(self._is_bad(c) for c in group):
                    return None
                clip = group[int(rng.integers(len(group)))]
            else:
                clip = self.clips[base]
        elif self.id_sampling:
            group = self.clips_by_identity[self.identities[int(rng.integers(len(self.identities)))]]
            clip = group[int(rng.integers(len(group)))]
        else:
            clip = self.clips[int(rng.integers(len(self.clips)))]
        return None if self._is_bad(clip) else clip

    def _pick_frames(self, num_frames: int, rng: np.random.Generator) -> list[int]:
        raise NotImplementedError

    def _make_item(self, clip: Clip, indices: list[int], frames: list[torch.Tensor], rng) -> dict:
        raise NotImplementedError

    def __getitem__(self, item) -> dict:
        epoch, index = self._resolve_index(item)
        for attempt in range(_MAX_ATTEMPTS):
            if len(self._bad_clips) >= len(self.clips):
                raise DaganError(
                    f"every clip in {self.root / self.split} is unreadable ({len(self.clips)} clips); "
                    "see the warnings of the 'dagan.data' logger for the reasons"
                )
            rng = sample_rng(self.seed, epoch, index, attempt)
            clip = self._pick_clip(index, attempt, rng)
            if clip is None:
                continue
            try:
                n = self.reader.num_frames(clip)
            except DaganError as exc:
                self._bad_clips.add(str(clip.path))
                logger.warning("skipping unreadable clip %s: %s", clip.path, exc)
                continue
            indices = self._pick_frames(n, rng)
            key = str(clip.path)
            if any((key, i) in self._bad_frames for i in indices):
                continue
            frames = []
            for i in indices:
                try:
                    frames.append(_to_tensor(self.reader.frame(clip, i), self.image_size))
                except DaganError as exc:
                    self._bad_frames.add((key, i))
                    logger.warning("skipping unreadable frame %d of %s: %s", i, clip.path, exc)
                    break
            else:
                return self._make_item(clip, indices, frames, rng)
        raise DaganError(
            f"no readable sample for index {index} of {self.root / self.split} after {_MAX_ATTEMPTS} "
            "attempts; see the warnings of the 'dagan.data' logger"
        )


class PairDataset(_ClipDataset):
    """(source, driving) frame pairs from one clip, for keypoint/generator training (stage 2).

    As the original `FramesDataset` + `DatasetRepeater`: with `id_sampling`, item i takes
    identity i mod (number of identities) and a random clip of it; otherwise clip i mod
    (number of clips). Two frame indices are drawn uniformly with replacement and sorted, so
    the source is never later than the driving frame (before a time flip).

    Args:
        root: dataset root holding `train/` and `test/`.
        split: subfolder to read.
        image_size: S; frames of another size are resized (bilinear, antialiased).
        id_sampling: sample identities evenly instead of clips.
        augment: True for `pair_augmentation()` (the original's), False for none, or a
            `ClipAugmentation`.
        num_repeats: passes over the identities (clips) per epoch (the original's 75).
        seed: base of every sample's generator.
        cache_size: decoded videos kept per worker.

    Returns (per item):
        {"source": 3×S×S float32 in [0, 1], "driving": 3×S×S, "name": clip file/folder name}.

    Raises:
        DaganError: (constructor) missing root/split or no clips; (item) every clip unreadable.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int = 256,
        id_sampling: bool = True,
        augment: bool | ClipAugmentation = True,
        num_repeats: int = 1,
        seed: int = 0,
        *,
        cache_size: int = 4,
    ):
        super().__init__(root, split, image_size, id_sampling, num_repeats, seed, cache_size)
        self.augmentation = _resolve_augmentation(augment, pair_augmentation)

    def _pick_frames(self, num_frames: int, rng: np.random.Generator) -> list[int]:
        return sorted(int(i) for i in rng.integers(num_frames, size=2))

    def _make_item(self, clip, indices, frames, rng) -> dict:
        video = torch.stack(frames)  # 2×3×S×S
        if self.augmentation is not None:
            video = self.augmentation(video, rng)
        return {"source": video[0].contiguous(), "driving": video[1].contiguous(), "name": clip.name}


class FrameSequenceDataset(_ClipDataset):
    """A centre frame and its temporal neighbours, for self-supervised depth training (stage 1).

    Item i takes clip i mod (number of clips) (or, with `id_sampling`, a random clip of
    identity i mod (number of identities)) and a random centre frame c; the frames are
    c + `frame_offsets` (monodepth2's [0, -1, 1]). The centre is drawn among the frames whose
    neighbours all exist; a clip too short for that gets its indices clamped to the clip.

    Augmentation follows monodepth2: the flip is applied to every output, while the colour
    jitter goes only to `frames_aug` (the network input); the photometric loss compares
    un-jittered `frames`.

    Args:
        root, split, image_size, id_sampling, num_repeats, seed, cache_size: as `PairDataset`.
        frame_offsets: temporal offsets of the F returned frames.
        augment: True for `depth_augmentation()`, False for none, or a `ClipAugmentation`.

    Returns (per item):
        {"frames": F×3×S×S float32 in [0, 1] (flipped, not jittered),
         "frames_aug": F×3×S×S (flipped and jittered; equals "frames" without augmentation),
         "indices": F int64 frame indices in the clip, "name": clip name}.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        image_size: int = 256,
        frame_offsets: Sequence[int] = (0, -1, 1),
        id_sampling: bool = False,
        augment: bool | ClipAugmentation = True,
        num_repeats: int = 1,
        seed: int = 0,
        *,
        cache_size: int = 4,
    ):
        offsets = tuple(operator.index(o) for o in frame_offsets)
        if not offsets:
            raise ValueError("frame_offsets must not be empty")
        super().__init__(root, split, image_size, id_sampling, num_repeats, seed, cache_size)
        self.frame_offsets = offsets
        self.augmentation = _resolve_augmentation(augment, depth_augmentation)

    def _pick_frames(self, num_frames: int, rng: np.random.Generator) -> list[int]:
        lo, hi = -min(min(self.frame_offsets), 0), num_frames - 1 - max(max(self.frame_offsets), 0)
        centre = int(rng.integers(lo, hi + 1)) if lo <= hi else int(rng.integers(num_frames))
        return [min(max(centre + o, 0), num_frames - 1) for o in self.frame_offsets]

    def _make_item(self, clip, indices, frames, rng) -> dict:
        video = torch.stack(frames)  # F×3×S×S
        video_aug = video
        if self.augmentation is not None:
            params = self.augmentation.sample(rng)
            video = self.augmentation.apply_geometry(video, params).contiguous()
            video_aug = self.augmentation.apply_color(video, params)
        return {
            "frames": video,
            "frames_aug": video_aug,
            "indices": torch.tensor(indices, dtype=torch.int64),
            "name": clip.name,
        }
