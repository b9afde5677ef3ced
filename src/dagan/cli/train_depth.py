"""Train the face depth network (stage 1): depth and pose networks, self-supervised from consecutive frames.

Usage: dagan train-depth --config NAME|FILE --data DIR --out RUN [--max-steps N] [--resume] [--set key=value ...]
The depth network is exported to RUN/model/, which `dagan train --depth` takes.
"""

from __future__ import annotations

from dagan.cli.common import add_training_arguments, run_training


def add_arguments(p):
    from dagan.training.config import DEPTH_PRESETS

    add_training_arguments(p, DEPTH_PRESETS, "depth-training preset", "dataset root holding train/ (video clips)")


def run(args):
    return run_training(_run, args)


def _run(args):
    from dagan.training import DepthTrainConfig, load_config, train_depth

    cfg = load_config(DepthTrainConfig, args.config, args.overrides)
    train_depth(cfg, args.data, args.out, max_steps=args.max_steps, resume=args.resume)
    return 0
