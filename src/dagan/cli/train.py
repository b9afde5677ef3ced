"""Train DaGAN (stage 2): keypoint detector, generator and discriminator with a frozen depth network.

Usage: dagan train --config NAME|FILE --data DIR --depth DEPTH_DIR --out RUN [--max-steps N] [--resume]
                   [--init PRETRAINED_DIR] [--set key=value ...]
Multi-process: torchrun --standalone --nproc_per_node N -m dagan train ...
"""

from __future__ import annotations

import os


def add_arguments(p):
    from dagan.training.config import TRAIN_PRESETS

    p.add_argument("--config", required=True, metavar="NAME|FILE",
                   help=f"training preset ({', '.join(TRAIN_PRESETS)}) or a YAML file (e.g. a run's config.yaml)")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset root holding train/ (clips per identity)")
    p.add_argument("--depth", default=None, metavar="DEPTH_DIR",
                   help="frozen depth network: `dagan train-depth`'s RUN/model, or a DaGAN model directory "
                        "(required unless --init is given, whose depth network is then used)")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory (config, metrics, checkpoints, model/)")
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N optimisation steps in total (default: the config's epochs)")
    p.add_argument("--resume", action="store_true", help="continue RUN from its newest valid checkpoint")
    p.add_argument("--init", default=None, metavar="PRETRAINED_DIR",
                   help="fine-tune from a DaGAN model directory (e.g. `dagan convert` output)")
    p.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, dotted keys (e.g. batch_size=8 loss_weights.perceptual=[1,1,1,1,1])")


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
    from dagan.training import TrainConfig, load_config, train

    if args.max_steps is not None and args.max_steps < 1:
        raise DaganError(f"--max-steps must be ≥ 1, got {args.max_steps}")
    cfg = load_config(TrainConfig, args.config, args.overrides)
    train(cfg, args.data, args.depth, args.out, max_steps=args.max_steps, resume=args.resume, init=args.init)
    return 0
