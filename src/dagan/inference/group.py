"""Faces of a group photo: numbering (left to right, 1-based) and `--faces largest|all|1,3` selection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from dagan.errors import DaganError
from dagan.inference.face import Box

FACE_CHOICES = "largest, all, or face numbers like 1,3"


def parse_faces(spec: str | None) -> str | tuple[int, ...]:
    """'largest' | 'all' | a tuple of 1-based face numbers (sorted, unique)."""
    text = (spec or "largest").strip().lower()
    if text in ("largest", "all"):
        return text
    try:
        numbers = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise DaganError(f"--faces must be {FACE_CHOICES}; got {spec!r}") from None
    if not numbers or numbers[0] < 1:
        raise DaganError(f"--faces numbers start at 1 (faces are numbered left to right); got {spec!r}")
    return numbers


def number_faces(boxes: Sequence[Box]) -> list[Box]:
    """Face boxes in reading order: left to right by the box centre (face N is element N − 1)."""
    return sorted(boxes, key=lambda b: (b.center[0], b.center[1]))


def select_faces(boxes: Sequence[Box], spec: str | tuple[int, ...], source: str) -> list[tuple[int, Box]]:
    """(face number, box) pairs chosen by a `parse_faces` result, in face-number order.

    Raises:
        DaganError: no face at all, or a number beyond the faces found (the message says how many).
    """
    ordered = number_faces(boxes)
    if not ordered:
        raise DaganError(f"no face found in {source}; use a photo with a clearly visible frontal face")
    numbered = list(enumerate(ordered, start=1))
    if spec == "all":
        return numbered
    if spec == "largest":
        return [max(numbered, key=lambda nb: nb[1].area)]
    missing = [n for n in spec if n > len(ordered)]
    if missing:
        found = f"{len(ordered)} face" + ("s" if len(ordered) != 1 else "")
        raise DaganError(f"--faces {','.join(map(str, spec))}: {source} has {found} (numbered 1…{len(ordered)} "
                         "left to right; `dagan info --faces PHOTO` lists them)")
    return [numbered[n - 1] for n in spec]


def face_output_path(output: str | os.PathLike, number: int) -> Path:
    """`out.mp4` → `out_face2.mp4`; a frame folder `frames/` → `frames_face2/`."""
    raw = os.fspath(output)
    p = Path(raw)
    if p.is_dir() or raw.endswith(("/", os.sep)) or not p.suffix:
        return p.with_name(f"{p.name}_face{number}")
    return p.with_name(f"{p.stem}_face{number}{p.suffix}")
