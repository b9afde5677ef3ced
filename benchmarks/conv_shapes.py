"""Every 3×3 conv of a preset's inference form, direct against Winograd, at the shapes it runs at.

    python benchmarks/conv_shapes.py [--preset vox-256] [--precision bf16] [--batch-size 8] [--min-channels 32]

Builds the inference form without Winograd, records each plain 3×3 conv's input during one
`animate` of random frames, then times that conv (oneDNN) and a `WinogradConv2d` built from it on
the recorded input (best of 5, CPU threads as torch sets them). This is where `MIN_CHANNELS` and
`MIN_CHANNELS_BF16` in `dagan.inference.winograd` come from: a conv qualifies when Winograd wins at
its width on the machines we have.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from animate_speed import frames_like_video  # noqa: E402

from dagan.config import get_preset  # noqa: E402
from dagan.inference.hardware import cpu_name  # noqa: E402
from dagan.inference.optimize import DTYPES, inference_form  # noqa: E402
from dagan.inference.winograd import WinogradConv2d, winograd_eligible  # noqa: E402
from dagan.models import DaGAN  # noqa: E402


def best_ms(fn, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="vox-256")
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--min-channels", type=int, default=32)
    args = p.parse_args()
    torch.manual_seed(0)
    config = get_preset(args.preset)
    source, driving = frames_like_video(args.batch_size, config.image_size)
    form = inference_form(DaGAN(config).eval(), "cpu", args.precision, winograd=False)
    inputs: dict[tuple[str, tuple[int, ...]], tuple[torch.nn.Module, torch.Tensor]] = {}

    def record(name):
        def hook(module, inp):  # returns None: the conv's input is left as it is
            inputs.setdefault((name, tuple(inp[0].shape)), (module, inp[0].clone()))
        return hook

    for name, module in form.named_modules():
        if winograd_eligible(module, args.min_channels, dtypes=(DTYPES[args.precision],)):
            module.register_forward_pre_hook(record(name))
    form.animate(source, driving, batch_size=args.batch_size)
    print(f"CPU: {cpu_name()}; {args.preset} {args.precision}, batch {args.batch_size}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'conv':58s} {'input':20s} {'out':>5s} {'direct ms':>10s} {'Winograd ms':>12s} {'gain':>6s}")
    for (name, shape), (conv, x) in sorted(inputs.items(), key=lambda kv: (kv[0][1][0], kv[0][1][1:])):
        wino = WinogradConv2d(conv)
        direct, fast = best_ms(lambda: conv(x)), best_ms(lambda: wino(x))
        print(f"{name:58s} {'×'.join(map(str, shape)):20s} {conv.out_channels:5d} {direct:10.1f} {fast:12.1f} "
              f"{direct / fast:5.2f}×")


if __name__ == "__main__":
    main()
