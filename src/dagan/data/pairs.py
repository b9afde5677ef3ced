"""Evaluation pairs: same-identity (source frame, driving frame) pairs of a dataset's test split,
drawn reproducibly (`make_pairs`) or read from the original's pair-CSV format (`EvaluationPairs`).

Frame references are POSIX paths relative to the dataset root, so one pair file serves a video
dataset and its frame-folder version alike (`FramePair`).
"""

from __future__ import annotations

import csv
import io as _stdio
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from torch.utils.data import Dataset

from dagan.data.datasets import (
    FRAME_SUFFIXES,
    VIDEO_SUFFIXES,
    Clip,
    ClipReader,
    _identity,
    _to_tensor,
    list_clips,
    logger,
)
from dagan.errors import DaganError
from dagan.io.image import read_image

__all__ = ["FramePair", "EvaluationPairs", "make_pairs"]


@dataclass(frozen=True)
class FramePair:
    """Two frame references, POSIX paths relative to the dataset root (`test/<clip>/<frame>`).

    For a frame folder the reference is the frame's file; for a video it is the video's path
    followed by `/<index, 7 digits>.png`, the name the frame has in the frame-folder version of
    the dataset, so one pair file serves both.
    """

    source: str
    driving: str


def _relative_ref(value: str, root: Path, where: str) -> str:
    """Turn a CSV path into a reference relative to `root`.

    Relative paths are kept. Absolute paths under `root` are made relative to it; other absolute
    paths (the original's `/data/.../vox1_frames/test/<clip>/<frame>.png`) keep their part from
    the last `train` or `test` component on.
    """
    text = value.strip().replace("\\", "/")
    if not text:
        raise DaganError(f"{where}: empty frame path")
    path = PurePosixPath(text)
    if path.is_absolute():
        try:
            path = PurePosixPath(Path(text).relative_to(os.path.abspath(root)).as_posix())
        except ValueError:
            parts = path.parts
            cut = [i for i, p in enumerate(parts) if p in ("train", "test") and i + 2 < len(parts)]
            if not cut:
                raise DaganError(
                    f"{where}: cannot make {text} relative to dataset root {root} "
                    "(expected it under the root or to contain a train/ or test/ component)"
                ) from None
            path = PurePosixPath(*parts[cut[-1] :])
    if ".." in path.parts:
        raise DaganError(f"{where}: frame path {text} leaves the dataset root")
    return path.as_posix()


class EvaluationPairs(Dataset):
    """Same-identity (source frame, driving frame) pairs in the original pair-CSV format.

    The CSV has the header `source,driving,frame` (the original's; the `frame` column is unused
    and written empty) and one pair of frame paths per row. Paths are stored relative to the
    dataset root (see `FramePair`).

    Args:
        root: dataset root the references are relative to.
        pairs: the pairs.
        image_size: resize frames to S×S when loading; None keeps their size.
        cache_size: decoded videos kept per worker.

    Returns (per item):
        {"source": 3×H×W float32 in [0, 1], "driving": 3×H×W, "path_source": str, "path_driving": str}
        with the reference paths as stored.
    """

    COLUMNS = ("source", "driving", "frame")

    def __init__(
        self,
        root: str | os.PathLike,
        pairs: Iterable[FramePair],
        image_size: int | None = None,
        *,
        cache_size: int = 4,
    ):
        self.root = Path(root)
        self.pairs: tuple[FramePair, ...] = tuple(pairs)
        self.image_size = None if image_size is None else int(image_size)
        self.reader = ClipReader(cache_size)

    def __len__(self) -> int:
        return len(self.pairs)

    def __eq__(self, other) -> bool:
        if not isinstance(other, EvaluationPairs):
            return NotImplemented
        return self.root == other.root and self.pairs == other.pairs

    __hash__ = None

    @classmethod
    def read_csv(
        cls, csv_path: str | os.PathLike, root: str | os.PathLike, image_size: int | None = None
    ) -> EvaluationPairs:
        """Read a pair CSV (ours or the original's, with absolute paths) against `root`.

        Raises:
            DaganError: the file is missing or unreadable, or lacks the source/driving columns,
                or a path cannot be made relative to `root`.
        """
        csv_path, root = Path(csv_path), Path(root)
        try:
            text = csv_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DaganError(f"pair list not found: {csv_path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DaganError(f"cannot read pair list {csv_path}: {exc}") from None
        reader = csv.reader(_stdio.StringIO(text))
        header = [h.strip() for h in next(reader, [])]
        if "source" not in header or "driving" not in header:
            raise DaganError(
                f"pair list {csv_path} must have a header with 'source' and 'driving' columns, got {header}"
            )
        i_src, i_drv = header.index("source"), header.index("driving")
        pairs = []
        for line, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            where = f"{csv_path}, line {line}"
            if len(row) <= max(i_src, i_drv):
                raise DaganError(f"{where}: expected a source and a driving path, got {row}")
            source, driving = (_relative_ref(row[i], root, where) for i in (i_src, i_drv))
            pairs.append(FramePair(source, driving))
        return cls(root, pairs, image_size)

    def write_csv(self, csv_path: str | os.PathLike) -> None:
        """Write the pairs (atomically: a temp file beside `csv_path`, then rename).

        Raises:
            DaganError: the folder of `csv_path` does not exist or is not writable.
        """
        csv_path = Path(csv_path)
        if not csv_path.parent.is_dir():
            raise DaganError(f"cannot write {csv_path}: folder {csv_path.parent} does not exist")
        buf = _stdio.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.COLUMNS)
        for pair in self.pairs:
            writer.writerow([pair.source, pair.driving, ""])
        tmp = csv_path.with_name(f".{csv_path.name}.{os.getpid()}.part")
        try:
            tmp.write_text(buf.getvalue(), encoding="utf-8")
            os.replace(tmp, csv_path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DaganError(f"cannot write {csv_path}: {exc.strerror or exc}") from None

    def load_frame(self, ref: str) -> np.ndarray:
        """Read one reference as H×W×3 float32 RGB in [0, 1].

        Raises:
            DaganError: the frame (or its video) is missing or unreadable.
        """
        path = self.root / ref
        if path.is_file() and path.suffix.lower() in FRAME_SUFFIXES:
            return read_image(path)
        parent = path.parent
        if parent.is_file() and parent.suffix.lower() in VIDEO_SUFFIXES:
            try:
                index = int(path.stem)
            except ValueError:
                raise DaganError(f"bad frame reference {ref}: expected <video>/<frame index>.png") from None
            clip = Clip(parent, parent.name, _identity(parent.name, True), True)
            return self.reader.frame(clip, index)
        raise DaganError(f"evaluation frame not found: {path} (reference {ref} under root {self.root})")

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        return {
            "source": _to_tensor(self.load_frame(pair.source), self.image_size),
            "driving": _to_tensor(self.load_frame(pair.driving), self.image_size),
            "path_source": pair.source,
            "path_driving": pair.driving,
        }


def make_pairs(
    root: str | os.PathLike,
    split: str = "test",
    *,
    num_pairs: int,
    seed: int = 0,
    same_clip: bool = True,
    image_size: int | None = None,
) -> EvaluationPairs:
    """Draw `num_pairs` same-identity (source frame, driving frame) pairs, reproducibly from `seed`.

    Like the original `data/vox_evaluation.csv`: each pair takes a clip uniformly at random and
    two different frames of it (in random order, so the source may come after the driving
    frame); a one-frame clip pairs its frame with itself. With `same_clip=False` the driving
    frame comes from a random clip of the same identity (possibly the same clip). Unreadable
    clips are logged and skipped.

    Raises:
        DaganError: missing root/split, no clips, or every clip unreadable.
    """
    if int(num_pairs) < 0:
        raise ValueError(f"num_pairs must be non-negative, got {num_pairs}")
    groups = list_clips(root, split)
    clips = [c for group in groups.values() for c in group]
    reader = ClipReader(cache_size=2)
    bad: set[str] = set()
    counts: dict[str, int] = {}
    rng = np.random.default_rng(int(seed))

    def count(clip: Clip) -> int:
        key = str(clip.path)
        if key not in counts and key not in bad:
            try:
                counts[key] = reader.num_frames(clip)
            except DaganError as exc:
                bad.add(key)
                logger.warning("skipping unreadable clip %s: %s", clip.path, exc)
        return counts.get(key, 0)

    root = Path(root)
    pairs: list[FramePair] = []
    while len(pairs) < int(num_pairs):
        if len(bad) >= len(clips):
            raise DaganError(f"every clip in {root / split} is unreadable ({len(clips)} clips)")
        src_clip = clips[int(rng.integers(len(clips)))]
        drv_clip = src_clip
        if not same_clip:
            group = groups[src_clip.identity]
            drv_clip = group[int(rng.integers(len(group)))]
        n_src, n_drv = count(src_clip), count(drv_clip)
        if n_src == 0 or n_drv == 0:
            continue
        if drv_clip is src_clip:
            i_src, i_drv = (int(i) for i in rng.choice(n_src, size=2, replace=False)) if n_src > 1 else (0, 0)
        else:
            i_src, i_drv = int(rng.integers(n_src)), int(rng.integers(n_drv))
        pairs.append(
            FramePair(
                f"{split}/{src_clip.name}/{reader.frame_name(src_clip, i_src)}",
                f"{split}/{drv_clip.name}/{reader.frame_name(drv_clip, i_drv)}",
            )
        )
    return EvaluationPairs(root, pairs, image_size)
