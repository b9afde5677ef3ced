"""Train DaGAN (stage 2): keypoint detector, generator and discriminator with a frozen depth network.

Usage: dagan train --config NAME|FILE --data DIR --depth DEPTH_DIR --out RUN [--max-steps N] [--resume]
                   [--init PRETRAINED_DIR] [--set key=value ...]
Multi-process: torchrun --standalone --nproc_per_node N -m dagan train ...
"""

from __future__ import annotations

from dagan.cli.common import add_training_arguments, run_training


def add_arguments(p):
    from dagan.training.config import TRAIN_PRESETS

    add_training_arguments(p, TRAIN_PRESETS, "training preset", "dataset root holding train/ (clips per identity)")
    p.add_argument("--depth", default=None, metavar="DEPTH_DIR",
                   help="frozen depth network: `dagan train-depth`'s RUN/model, or a DaGAN model directory "
                        "(required unless --init is given, whose depth network is then used)")
    p.add_argument("--init", default=None, metavar="PRETRAINED_DIR",
                   help="fine-tune from a DaGAN model directory (e.g. `dagan convert` output)")


def run(args):
    return run_training(_run, args)


def _run(args):
    from dagan.training import TrainConfig, load_config, train

    cfg = load_config(TrainConfig, args.config, args.overrides)
    train(cfg, args.data, args.depth, args.out, max_steps=args.max_steps, resume=args.resume, init=args.init)
    return 0
