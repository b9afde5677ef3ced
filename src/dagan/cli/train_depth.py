"""Train the face depth network (stage 1): depth and pose networks, self-supervised from consecutive frames.

Usage: dagan train-depth --config NAME|FILE --data DIR --out RUN [--max-steps N] [--resume] [--set key=value ...]
The depth network is exported to RUN/model/, which `dagan train --depth` takes.
"""

from __future__ import annotations

import os


def add_arguments(p):
    from dagan.training.config import DEPTH_PRESETS

    p.add_argument("--config", required=True, metavar="NAME|FILE",
                   help=f"depth-training preset ({', '.join(DEPTH_PRESETS)}) or a YAML file")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset root holding train/ (video clips)")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory (config, metrics, checkpoints, model/)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N optimisation steps in total (default: the config's epochs)")
    p.add_argument("--resume", action="store_true", help="continue RUN from its newest valid checkpoint")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, dotted keys (e.g. batch_size=8 alpha=0.8)")


def run(args):
    try:
        return _run(args)
    except Exception as exc:
        from dagan.errors import DaganError

        if isinstance(exc, DaganError) and os.environ.get("RANK", "0") != "0":
            raise SystemExit(2) from None  # under torchrun every process fails alike: rank 0 alone reports
        raise


def _run(args):
    from dagan.errors import DaganError
    from dagan.training import DepthTrainConfig, load_config, train_depth

    if args.max_steps is not None and args.max_steps < 1:
        raise DaganError(f"--max-steps must be ≥ 1, got {args.max_steps}")
    cfg = load_config(DepthTrainConfig, args.config, args.overrides)
    train_depth(cfg, args.data, args.out, max_steps=args.max_steps, resume=args.resume)
    return 0
