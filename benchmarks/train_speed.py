"""Training speed: seconds per optimisation step and samples per second, both stages, tiny and vox-256.

Runs the same step functions as `dagan train-depth` / `dagan train` (`depth_step`, `train_step`) on
random images of the preset's size, so data loading is not measured. Stage 2 uses a VGG-19 with
random weights (the speed is the same as with the ImageNet weights). Not a test.

    python benchmarks/train_speed.py                          # both stages, tiny and vox-256
    python benchmarks/train_speed.py --preset vox-256 --stage dagan --batch-size 4 --steps 5
    python benchmarks/train_speed.py --json                   # one JSON object per measurement

On CPU, vox-256 defaults to batch 1 and 2 measured steps after 1 warm-up step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import torch

from dagan.training.config import get_depth_preset, get_train_preset
from dagan.training.depth_loop import build_depth_optim, build_depth_parts, depth_step
from dagan.training.common import resolve_precision
from dagan.training.loop import build_optim, build_parts, build_perceptual, train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(stage: str, preset: str, device: torch.device, batch_size: int | None, steps: int | None,
            warmup: int, precision: str) -> dict:
    on_cpu_vox = device.type == "cpu" and preset == "vox-256"
    if stage == "depth":
        cfg = get_depth_preset(preset)
    else:
        cfg = dataclasses.replace(get_train_preset(preset), allow_random_vgg=True)
    batch = batch_size or (1 if on_cpu_vox else cfg.batch_size)
    steps = steps or (2 if on_cpu_vox else 10)
    cfg = dataclasses.replace(cfg, batch_size=batch, precision=precision)
    precision = resolve_precision(precision, device)
    size = cfg.model.image_size
    torch.manual_seed(0)
    if stage == "depth":
        parts = build_depth_parts(cfg, device)
        optim = build_depth_optim(cfg, parts, device, precision)
        frames = torch.rand(batch, len(cfg.frame_offsets), 3, size, size, device=device)
        data = {"frames": frames, "frames_aug": frames}

        def step(i):
            return depth_step(parts, optim, data, cfg, seed=i, device=device, precision=precision)
    else:
        parts = build_parts(cfg, device, build_perceptual(cfg, None))
        optim = build_optim(cfg, parts, device, precision)
        data = {"source": torch.rand(batch, 3, size, size, device=device),
                "driving": torch.rand(batch, 3, size, size, device=device)}

        def step(i):
            return train_step(parts, optim, data, cfg, seed=i, device=device, precision=precision)

    for i in range(warmup):
        step(i)
    _sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    _sync(device)
    seconds = (time.perf_counter() - start) / steps
    return {"stage": "train-depth" if stage == "depth" else "train", "preset": preset, "image_size": size,
            "batch_size": batch, "steps": steps, "precision": precision, "device": str(device),
            "seconds_per_step": round(seconds, 4), "samples_per_second": round(batch / seconds, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=["depth", "dagan", "all"], default="all")
    p.add_argument("--preset", choices=["tiny", "vox-256", "all"], default="all")
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's (1 for vox-256 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="measured steps (default 10; 2 for vox-256 on CPU)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    stages = ["depth", "dagan"] if args.stage == "all" else [args.stage]
    presets = ["tiny", "vox-256"] if args.preset == "all" else [args.preset]
    if not args.json:
        cpu = platform.processor() or platform.machine()
        print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} CPU threads ({cpu})")
        header = ("stage", "preset", "size", "batch", "precision", "s/step", "samples/s")
        print("{:12s} {:8s} {:>5s} {:>5s} {:>9s} {:>9s} {:>10s}".format(*header))
    for preset in presets:
        for stage in stages:
            r = measure(stage, preset, device, args.batch_size, args.steps, args.warmup, args.precision)
            if args.json:
                print(json.dumps(r), flush=True)
            else:
                print(f"{r['stage']:12s} {r['preset']:8s} {r['image_size']:5d} {r['batch_size']:5d} "
                      f"{r['precision']:>9s} {r['seconds_per_step']:9.3f} {r['samples_per_second']:10.2f}", flush=True)


if __name__ == "__main__":
    main()
