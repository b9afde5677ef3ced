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


def add_training_arguments(p, presets, config_help: str, data_help: str) -> None:
    """The arguments `dagan train` and `dagan train-depth` share (--config, --data, --out, --max-steps, --resume, --set)."""
    p.add_argument("--config", required=True, metavar="NAME|FILE", help=f"{config_help} ({', '.join(presets)}) or a YAML file")
    p.add_argument("--data", required=True, metavar="DIR", help=data_help)
    p.add_argument("--out", required=True, metavar="RUN", help="run directory (config, metrics, checkpoints, model/)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N optimisation steps in total (default: the config's epochs)")
    p.add_argument("--resume", action="store_true", help="continue RUN from its newest valid checkpoint")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, dotted keys (e.g. batch_size=8 lr=1e-4)")


def run_training(body, args):
    """Run a training command; under torchrun only rank 0 reports a DaganError (every rank fails alike)."""
    if args.max_steps is not None and args.max_steps < 1:
        raise DaganError(f"--max-steps must be ≥ 1, got {args.max_steps}")
    try:
        return body(args)
    except DaganError:
        if os.environ.get("RANK", "0") != "0":
            raise SystemExit(2) from None
        raise
