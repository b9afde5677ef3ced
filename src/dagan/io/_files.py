"""Output-path checks and temp-file-then-rename helpers shared by the image and video writers.

Every writer in `dagan.io` follows the same contract: the output path is checked (and a temp
file reserved next to it) before any work starts, data goes to the temp file, and only a
successful close renames it over `path`. A failure leaves a pre-existing file untouched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from dagan.errors import DaganError


def check_output_parent(path: str | os.PathLike) -> Path:
    """Return `path` as a Path after checking its parent directory exists and is writable.

    Raises:
        DaganError: the parent is missing, is not a directory, or is not writable, or `path`
            itself is an existing directory.
    """
    out = Path(path)
    parent = out.parent
    if not parent.exists():
        raise DaganError(f"cannot write {out}: directory {parent} does not exist")
    if not parent.is_dir():
        raise DaganError(f"cannot write {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DaganError(f"cannot write {out}: no write permission for directory {parent}")
    if out.is_dir():
        raise DaganError(f"cannot write {out}: it is an existing directory")
    return out


def reserve_temp_file(path: str | os.PathLike) -> Path:
    """Create an empty, uniquely named temp file beside `path` and return its name.

    The temp name keeps `path`'s suffix (muxers and PIL pick formats by suffix) and starts with
    a dot so half-written outputs are hidden. The file is created with mode 0o666 minus the
    umask, like a normal `open(path, "w")`, so the final file gets ordinary permissions.

    Raises:
        DaganError: the directory is not writable (checked by actually creating the file).
    """
    out = check_output_parent(path)
    for _ in range(100):
        tmp = out.with_name(f".{out.stem}.{secrets.token_hex(4)}.part{out.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise DaganError(f"cannot write {out}: {exc.strerror or exc}") from None
        os.close(fd)
        return tmp
    raise DaganError(f"cannot write {out}: could not create a temporary file beside it")


def reserve_temp_dir(path: str | os.PathLike) -> Path:
    """Create a uniquely named temp directory beside `path` (see `reserve_temp_file`)."""
    out = Path(path)
    parent = out.parent
    if not parent.is_dir():
        raise DaganError(f"cannot write {out}: {parent} does not exist or is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DaganError(f"cannot write {out}: no write permission for directory {parent}")
    for _ in range(100):
        tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise DaganError(f"cannot write {out}: {exc.strerror or exc}") from None
        return tmp
    raise DaganError(f"cannot write {out}: could not create a temporary directory beside it")


def discard(tmp: Path) -> None:
    """Remove a temp file or directory, ignoring errors (used on the failure path)."""
    try:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass


def commit(tmp: Path, path: str | os.PathLike) -> None:
    """Atomically move a finished temp file over `path`.

    Raises:
        DaganError: the rename failed (e.g. `path` became a directory meanwhile).
    """
    try:
        os.replace(tmp, path)
    except OSError as exc:
        discard(tmp)
        raise DaganError(f"cannot write {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temp file beside `path` to write to; it replaces `path` when the block ends cleanly.

    On any exception the temp file is removed; an OSError becomes a one-line DaganError.
    """
    tmp = reserve_temp_file(path)
    try:
        yield tmp
    except BaseException as exc:
        discard(tmp)
        if isinstance(exc, OSError):
            raise DaganError(f"cannot write {path}: {exc}") from None
        raise
    commit(tmp, path)
