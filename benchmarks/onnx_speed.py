"""ONNX Runtime fp32 against our PyTorch fp32 and bf16 on the same frames, in one run.

    PYTHONPATH=src python benchmarks/onnx_speed.py [--model DIR | --preset vox-256] [--frames 8]
        [--batch-size 4] [--onnx-levels all,basic] [--onnx-threads 1,2] [--torch-threads 1,2] [--pipeline]

Networks alone: every backend animates the same frames through the pipeline's `Runtime` protocol
(source prepared once, driving frames in batches, relative motion), timed after a warm-up, so the
ratios compare the engines, not the code around them. ORT is tried at each graph optimisation
level and intra-op thread count asked for, PyTorch at each --torch-threads count (ratios are to
the first PyTorch fp32 row).
--pipeline adds the whole `dagan animate` (decode, face crop and tracking, networks, encode) on
the bundled sample with PyTorch fp32 and the best ORT setting.

`run_onnx_benchmark(model, source, driving, args)` is the entry point benchmarks/animate_speed.py
calls with --onnx; `args` may carry batch_size, repeats, onnx_levels, onnx_threads, torch_threads,
onnx_dir and pipeline (each has a default).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from dagan.config import get_preset
from dagan.geometry import normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.inference.runtime import TorchRuntime
from dagan.models import DaGAN

sys.path.insert(0, str(Path(__file__).resolve().parent))
from animate_speed import frames_like_video  # noqa: E402


def animate_frames(runtime, source: torch.Tensor, driving: torch.Tensor, batch_size: int) -> torch.Tensor:
    """T×3×S×S predictions through the Runtime protocol, exactly as the pipeline drives it."""
    state = runtime.prepare_source(source)
    _, kp_initial = runtime.driving_keypoints(driving[:1])
    scale = movement_scale(state.keypoints, kp_initial)
    outputs = []
    for start in range(0, driving.shape[0], batch_size):
        _, kp = runtime.driving_keypoints(driving[start : start + batch_size])
        outputs.append(runtime.generate(state, normalize_keypoints(state.keypoints, kp, kp_initial, scale=scale)))
    return torch.cat(outputs)


def best_time(fn, repeats: int):
    fn()  # warm-up: first-call allocations, ORT's and oneDNN's kernel selection
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def run_onnx_benchmark(model: DaGAN, source: torch.Tensor, driving: torch.Tensor, args) -> list[dict]:
    """Print and return one row per backend setting: frames/s, ratio to PyTorch fp32, fidelity."""
    from dagan.onnx import OnnxModel, export_onnx

    batch = getattr(args, "batch_size", 4)
    repeats = getattr(args, "repeats", 1)
    levels = _csv(getattr(args, "onnx_levels", "all,basic"))
    thread_counts = [int(t) for t in _csv(getattr(args, "onnx_threads", "1,2"))]
    torch_threads = [int(t) for t in _csv(getattr(args, "torch_threads", ""))]
    model = model.to("cpu").float().eval()
    n = driving.shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = getattr(args, "onnx_dir", None)
        export_s = 0.0
        if not onnx_dir:
            start = time.perf_counter()
            onnx_dir = export_onnx(model, Path(tmp) / "onnx")
            export_s = time.perf_counter() - start
        onnx_model = OnnxModel(onnx_dir)
        print(f"{n} frames at {model.config.image_size}², batch {batch}; torch threads {torch.get_num_threads()} "
              f"(CPU capability {torch.backends.cpu.get_cpu_capability()}); os.cpu_count {os.cpu_count()}; "
              f"export {export_s:.0f} s" if export_s else f"ONNX dir {onnx_dir}")
        rows = []
        default_threads = torch.get_num_threads()
        reference = t_ref = None
        for threads in torch_threads or [default_threads]:
            torch.set_num_threads(threads)
            for precision in ("fp32", "bf16"):
                runtime = TorchRuntime(model, torch.device("cpu"), precision)
                out, t = best_time(lambda: animate_frames(runtime, source, driving, batch), repeats)
                if reference is None:
                    reference, t_ref = out, t
                rows.append(dict(backend=f"PyTorch {precision} threads={threads}", seconds=t, out=out))
        torch.set_num_threads(default_threads)
        for level in levels:
            for threads in thread_counts:
                runtime = onnx_model.make_runtime("cpu", "fp32", threads=threads, optimization=level)
                out, t = best_time(lambda: animate_frames(runtime, source, driving, batch), repeats)
                rows.append(dict(backend=f"ORT fp32 opt={level} intra_op_threads={threads}", seconds=t, out=out,
                                 runtime=(level, threads)))
        print(f"{'networks alone':44s} {'frames/s':>9s} {'× PyTorch fp32':>15s} {'max |diff|':>11s} {'PSNR dB':>8s}")
        for row in rows:
            row["fps"] = n / row["seconds"]
            row["ratio"] = t_ref / row["seconds"]
            row["max_abs"] = float((row["out"] - reference).abs().max())
            row["psnr"] = psnr(row["out"], reference)
            print(f"{row['backend']:44s} {row['fps']:9.2f} {row['ratio']:14.2f}× {row['max_abs']:11.2g} "
                  f"{row['psnr']:8.1f}")
        if getattr(args, "pipeline", False):
            best = max((r for r in rows if "runtime" in r), key=lambda r: r["fps"])
            rows += _pipeline_rows(model, onnx_model, best["runtime"], batch)
        for row in rows:
            row.pop("out", None)
        return rows


def _pipeline_rows(model, onnx_model, setting, batch: int) -> list[dict]:
    """The whole `dagan animate` on the bundled sample: PyTorch fp32 and ORT at `setting`."""
    from dagan import assets
    from dagan.inference.pipeline import AnimateOptions, AnimationPipeline

    level, threads = setting
    rows = []
    candidates = [("PyTorch fp32", AnimationPipeline(model, device="cpu", progress=False)),
                  (f"ORT fp32 opt={level} intra_op_threads={threads}",
                   AnimationPipeline(onnx_model.make_runtime("cpu", "fp32", threads=threads, optimization=level),
                                     progress=False))]
    with tempfile.TemporaryDirectory() as tmp:
        for name, pipe in candidates:
            start = time.perf_counter()
            result = pipe.run(assets.sample_source(), assets.sample_driving(), Path(tmp) / "o.mp4",
                              AnimateOptions(batch_size=batch))
            seconds = time.perf_counter() - start
            rows.append(dict(backend=f"pipeline {name}", fps=result.frames / seconds, seconds=seconds))
    rows[1]["ratio"] = rows[0]["seconds"] / rows[1]["seconds"]
    print(f"whole pipeline, bundled sample ({result.frames} frames, decode + face crop + networks + encode):")
    for row in rows:
        extra = f" ({row['ratio']:.2f}× PyTorch fp32)" if "ratio" in row else ""
        print(f"  {row['backend']:44s} {row['fps']:7.2f} frames/s{extra}")
    return rows


def _csv(value) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model directory (default: --preset with random weights)")
    p.add_argument("--preset", default="vox-256")
    p.add_argument("--onnx-dir", default=None, help="an existing `dagan export` of --model (default: export now)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--onnx-levels", default="all,basic", help="ORT graph optimisation levels to try")
    p.add_argument("--onnx-threads", default="1,2", help="ORT intra-op thread counts to try")
    p.add_argument("--torch-threads", default="", help="PyTorch thread counts to try (default: torch's current)")
    p.add_argument("--pipeline", action="store_true", help="also time the whole pipeline on the bundled sample")
    args = p.parse_args()
    torch.manual_seed(0)
    model = DaGAN.from_pretrained(args.model) if args.model else DaGAN(get_preset(args.preset)).eval()
    with torch.no_grad():
        if not args.model:
            model.generator.attention.gamma.fill_(0.5)  # random weights: make the attention matter
    source, driving = frames_like_video(args.frames, model.config.image_size)
    print(f"model: {args.model or 'preset ' + args.preset + ' (random weights)'}")
    run_onnx_benchmark(model, source, driving, args)


if __name__ == "__main__":
    main()
