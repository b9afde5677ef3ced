"""Small helpers shared by subcommands: output checks, model resolution, devices."""

from __future__ import annotations

import os
from pathlib import Path

from dagan.errors import DaganError


def check_output_dir(path: Path) -> None:
    """A directory we can create or write into."""
    if path.exists() and not path.is_dir():
        raise DaganError(f"output {path} exists and is not a directory")
    parent = path if path.exists() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise DaganError(f"cannot write to {path}: permission denied")


def check_output_file(path: Path) -> None:
    """The parent exists and is writable, and the path is not a directory."""
    if path.is_dir():
        raise DaganError(f"output {path} is a directory")
    if not path.parent.exists():
        raise DaganError(f"cannot write {path}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise DaganError(f"cannot write {path}: permission denied")
