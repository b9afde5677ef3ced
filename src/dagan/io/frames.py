"""Frame sources for evaluation: a video file or a folder of numbered images, streamed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from dagan.errors import DaganError
from dagan.io.image import read_image
from dagan.io.video import iter_frames, probe_video

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DaganError(f"folder {folder} holds no image frames ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def count_frames(path: str | os.PathLike) -> int:
    p = Path(path)
    return len(frame_files(p)) if p.is_dir() else probe_video(p).num_frames


def iter_any_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """H×W×3 frames (uint8 from videos, float32 in [0, 1] from image folders), in order."""
    p = Path(path)
    if not p.exists():
        raise DaganError(f"{p} does not exist")
    if p.is_dir():
        files = frame_files(p)
        return (read_image(f) for f in files)
    return iter_frames(p)
