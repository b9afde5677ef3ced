"""Training checkpoints: atomic writes, the last K kept, the latest valid one found on resume.

A checkpoint is one `torch.save` file, `RUN/checkpoints/step-00001234.pt`, holding a dict:

    format, version, stage ("depth" | "dagan"), step, epoch, position (batches done in that epoch),
    models / optimizers / schedulers / scalers: {name: state_dict},
    sampler: {epoch, start, seed, num_replicas}, rng: [per-rank python/numpy/torch(/cuda) states],
    config: the resolved training config (plain data).

Writes go to a temporary file in the same directory, are flushed and fsync'ed, then renamed over
the final name (`os.replace` is atomic), and the directory is fsync'ed: a process killed at any
moment leaves either the previous set of checkpoints or the new one, plus at most a stray `*.tmp`
that is never read and is removed by the next save. Loading uses `weights_only=True`.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from dagan.errors import DaganError

FORMAT = "dagan-training-checkpoint"
VERSION = 1
DIRNAME = "checkpoints"
_NAME = re.compile(r"^step-(\d{8,})\.pt$")
REQUIRED_KEYS = ("format", "version", "stage", "step", "epoch", "position", "models", "optimizers", "schedulers",
                 "sampler", "rng", "config")


class CheckpointError(DaganError):
    """A checkpoint file that cannot be read or is not a complete training checkpoint."""


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / DIRNAME


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step-{step:08d}.pt"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint-named file, oldest first (validity not checked)."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to `path` atomically: tmp file in the same directory + flush + fsync + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def save_checkpoint(run_dir: str | os.PathLike, state: dict, keep_last: int) -> Path:
    """Write `state` (must hold every REQUIRED_KEY but format/version) as the checkpoint of state["step"],
    then delete all but the newest `keep_last` checkpoints and any stray temporary files."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be ≥ 1, got {keep_last}")
    state = {"format": FORMAT, "version": VERSION, **state}
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    path = atomic_torch_save(state, checkpoint_path(run_dir, int(state["step"])))
    for stray in checkpoint_dir(run_dir).glob("*.tmp"):  # left by a process killed mid-write
        stray.unlink(missing_ok=True)
    existing = list_checkpoints(run_dir)
    for _, old in existing[: max(0, len(existing) - keep_last)]:
        if old != path:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, stage: str | None = None, map_location="cpu") -> dict:
    """Read and validate one checkpoint; CheckpointError if it is unreadable, incomplete or of another stage."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, unpickling refused, …
        raise CheckpointError(f"checkpoint {path} is unreadable: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a dagan training checkpoint")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state['version']}; this dagan reads up to {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete (no {', '.join(missing)})")
    if stage is not None and state["stage"] != stage:
        raise CheckpointError(f"checkpoint {path} is from stage {state['stage']!r}, not {stage!r}")
    return state


def find_latest_checkpoint(run_dir: str | os.PathLike, stage: str | None = None) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads and validates, skipping (with a warning) corrupt or partial ones."""
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path, stage)
        except CheckpointError as exc:
            warnings.warn(f"skipping {exc}", stacklevel=2)
    return None


# ------------------------------------------------------------------------------------ RNG state


def capture_rng_state() -> dict:
    """Python, NumPy, torch CPU (and CUDA) generator states, in a form `weights_only` loading accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _as_tuple(value):
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    return value
