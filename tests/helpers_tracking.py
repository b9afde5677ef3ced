"""Scripted stand-ins for the face detector, for testing the tracker's logic without images."""

from __future__ import annotations

import numpy as np

from dagan.inference.face import Box


class FakeDetector:
    """Detector returning scripted boxes per frame; frames are just their index (pixel value)."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    def __call__(self, frame):
        index = int(frame[0, 0, 0])
        self.calls.append(index)
        return list(self.script(index))


def index_frames(n: int):
    """n 100×100×3 uint8 frames whose pixels hold their index."""
    for i in range(n):
        yield np.full((100, 100, 3), i, np.uint8)


def face_at(x: float) -> Box:
    """A 20×20 face box centred at (x, 50)."""
    return Box(x - 10, 40, x + 10, 60)
