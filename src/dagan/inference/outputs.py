"""Output files of an animation: one image, or one video/GIF/frame folder per stream.

A group photo animated without paste-back writes one stream per face (`out_face1.mp4`, ...); an
image driving with an image output writes one picture. All writers commit atomically together.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dagan.errors import DaganError
from dagan.io import write_image
from dagan.io.writers import FrameWriter

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def is_image_path(path: str | os.PathLike) -> bool:
    """A still-image file name (by suffix): driving from one photo or writing one picture."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


class ImageFrameWriter(FrameWriter):
    """The `FrameWriter` interface for a single picture (.png, .jpg, ...), written atomically on close."""

    writes_audio = False

    def __init__(self, path: str | os.PathLike, fps, size: tuple[int, int]):
        super().__init__(path, fps, size)
        self._frame: np.ndarray | None = None

    def _write(self, frame: np.ndarray) -> None:
        if self._frame is not None:
            raise DaganError(f"{self.path} is an image and holds one frame; write a video for more")
        self._frame = frame

    def _finish(self) -> None:
        write_image(self.path, self._frame)

    def _discard(self) -> None:
        self._frame = None
