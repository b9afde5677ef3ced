"""Networks-only animate speed over batch sizes × precisions × (eager, torch.compile), one table.

    python benchmarks/gpu_speed.py [--device cuda] [--preset vox-256] [--batches 1 8 32]
        [--precisions fp32 bf16 fp16] [--compile] [--budget-s 330]

Each cell: the inference form (dagan.inference.optimize) animating 2×batch frames (source encoded
once), best of 3 after a warm-up; compiled rows report their compile (first-call) time. Rows that
would start after --budget-s seconds are printed as skipped, so the whole run stays bounded.
"""

from __future__ import annotations

import argparse
import time

import torch

from animate_speed import frames_like_video, psnr, sync
from dagan.config import get_preset
from dagan.inference.optimize import inference_form
from dagan.models import DaGAN


def time_form(form, source, driving, batch, device, repeats=3):
    sync(device)
    start = time.perf_counter()
    out = form.animate(source, driving, batch_size=batch)
    sync(device)
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        form.animate(source, driving, batch_size=batch)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return out.float(), first, best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="vox-256")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--budget-s", type=float, default=330)
    args = p.parse_args()
    device = torch.device(args.device)
    begin = time.perf_counter()
    torch.manual_seed(0)
    model = DaGAN(get_preset(args.preset)).eval()
    with torch.no_grad():
        model.generator.attention.gamma.fill_(1.0)
    size = model.config.image_size
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.preset} (random weights) at {size}² on {name}; torch {torch.__version__}")
    print(f"{'batch':>5}  {'precision':9}  {'mode':8}  {'frames/s':>9}  {'ms/frame':>9}  {'PSNR vs fp32':>12}  note")
    reference = {}
    for batch in args.batches:
        source, driving = frames_like_video(2 * batch, size)
        source, driving = source.to(device), driving.to(device)
        for precision in args.precisions:
            for compiled in ([False, True] if args.compile else [False]):
                mode = "compile" if compiled else "eager"
                if time.perf_counter() - begin > args.budget_s:
                    print(f"{batch:>5}  {precision:9}  {mode:8}  {'':>9}  {'':>9}  {'':>12}  skipped (time budget)")
                    continue
                form = inference_form(model, device, precision, compile=compiled)
                with torch.no_grad():
                    out, first, best = time_form(form, source, driving, batch, device)
                n = driving.shape[0]
                reference.setdefault(batch, out)
                quality = psnr(out, reference[batch])
                note = f"compile {first - best:.0f} s" if compiled else ""
                print(f"{batch:>5}  {precision:9}  {mode:8}  {n / best:9.1f}  {1000 * best / n:9.2f}  "
                      f"{quality:12.1f}  {note}", flush=True)
                del form
                if device.type == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
