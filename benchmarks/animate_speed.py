"""Animation speed of the networks, as ratios against the original's per-frame way, same frames, one run.

    python benchmarks/animate_speed.py [--preset vox-256 | --model DIR] [--frames 8] [--batch-size 8]
        [--device cpu] [--repeats 2] [--compile] [--ablation] [--profile] [--pipeline] [--onnx]

Variants (each timed on the same frames; best of --repeats, interleaved so load noise hits all alike):
- original: demo.py's make_animation (batch 1, source re-encoded every frame, fp32, the loaded model);
- ours fp32 / ours bf16 (fp16 on CUDA): the inference form (`dagan.inference.optimize`: BatchNorm
  folded, weights cast once, channels_last, tiled attention), source encoded once, batches of frames;
- with --compile, the same under torch.compile (its compile time is reported);
- with --ablation, the previous way (the loaded model under autocast), bf16 without channels_last,
  fp32 without the sub-pixel upsampling convolutions, without Winograd convolutions and without
  the narrow heads, and, where the form rewrites bf16 convs (no AMX), bf16 without each of those two
  (with AMX, bf16 with both forced instead).
On a CPU without native bf16 (no AMX-BF16 / AVX-512-BF16) the bf16 variant is emulated, tens of times
slower than fp32: it is timed once, on the first EMULATED_FRAMES frames, and says so; the other bf16
ablation rows and the bf16 limit are left out there (minutes per frame, nothing learnt).
Quality: PSNR of bf16 against our fp32, and of our fp32 against the original way.
Also printed: the CPU and its flags, which oneDNN kernels ran, FLOPs per frame (FlopCounterMode)
against the measured fp32/bf16 matmul peak, and how far each variant is from that limit.
--pipeline calls `run_pipeline_benchmark(model, args)` from benchmarks/pipeline_speed.py and --onnx
`run_onnx_benchmark(model, source, driving, args)` from benchmarks/onnx_speed.py; each returns rows
(dicts with `variant` and `fps`, optional `note`) that join the table, or None when it prints its own.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch  # before dagan: libgomp keeps its default spinning, which the original's batch-1 way runs best with
import torch.nn.functional as F

from dagan._openmp import spin_setting
from dagan.config import get_preset
from dagan.geometry import normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.inference.hardware import cpu_flags, cpu_name, native_bf16, precision_note
from dagan.inference.memory import keep_freed_memory
from dagan.inference.optimize import DTYPES, conv_rewrite_dtypes, inference_form
from dagan.inference.pipeline import autocast_context, resolve_device
from dagan.models import DaGAN

TARGETS = {"ours fp32": "≥1.9×", "ours bf16": "≥5× AMX / ≥3× AVX-512-BF16"}
EMULATED_FRAMES = 2  # frames an emulated-precision variant is timed on (once: it is far too slow to repeat)


def frames_like_video(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, size, size, generator=g)
    base = F.avg_pool2d(base, 9, 1, 4)  # smooth images
    shifts = [torch.roll(base, shifts=(i % 7 - 3, i % 5 - 2), dims=(2, 3)) for i in range(n)]
    return base.clamp(0, 1), torch.cat(shifts).clamp(0, 1)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def ours(model, source, driving, batch_size, device, precision):
    """The previous way: the loaded model under autocast (kept for --ablation)."""
    with autocast_context(device, precision):
        out = model.animate(source, driving, batch_size=batch_size)
    return out.float()


@torch.no_grad()
def original_way(model, source, driving):
    """demo.py's make_animation: per frame, the generator re-encodes source image and depth.

    `return_attention=True` runs the attention as the original's code does: it materialises and
    returns the B×N×N map (`bmm` → softmax → `bmm`, ../shared/reference/ANATOMY.md).
    """
    depth_src = model.estimate_depth(source)
    kp_src = model.detect_keypoints(source, depth_src)
    d0 = model.estimate_depth(driving[:1])
    kp_init = model.detect_keypoints(driving[:1], d0)
    scale = movement_scale(kp_src, kp_init)
    outs = []
    for i in range(driving.shape[0]):
        frame = driving[i : i + 1]
        kp = model.detect_keypoints(frame, model.estimate_depth(frame))
        kp_norm = normalize_keypoints(kp_src, kp, kp_init, relative=True, scale=scale)
        outs.append(model.generator(source, kp_norm, kp_src, depth_src, return_attention=True)["prediction"])
    return torch.cat(outs)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


# ---------------------------------------------------------------- the machine
def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best measured FLOP/s of an n×n×n torch.mm at `dtype`."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


@contextlib.contextmanager
def captured_stdout_fd():
    """Capture what C code (oneDNN verbose) writes to file descriptor 1; yields a list filled on exit."""
    lines: list[str] = []
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+") as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            yield lines
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().splitlines())


def onednn_kernels() -> dict[str, str]:
    """Implementation names oneDNN chose for a 3×3 conv (channels_last) and a matmul, fp32 and bf16."""
    found: dict[str, str] = {}
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        c = conv.to(dtype).to(memory_format=torch.channels_last)
        x = torch.randn(2, 64, 32, 32).to(dtype).contiguous(memory_format=torch.channels_last)
        a = torch.randn(256, 256).to(dtype)
        with torch.no_grad(), captured_stdout_fd() as lines:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                c(x)
                torch.mm(a, a)
        for line in lines:
            m = re.match(r"onednn_verbose,(?:[^,]*,)*?exec,cpu,(\w+),([^,]+),", line)
            if m:
                found.setdefault(f"{m.group(1)} {name}", m.group(2))
        found.setdefault(f"matmul {name}", "not oneDNN (MKL/OpenBLAS gemm)")
    return found


def machine_report(device: torch.device) -> list[str]:
    flags = cpu_flags() or set()
    have = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    lines = [f"CPU: {cpu_name()}; flags: {', '.join(have) or 'unknown'}; "
             f"torch.backends.cpu.get_cpu_capability(): {torch.backends.cpu.get_cpu_capability()}; "
             f"threads {torch.get_num_threads()}; torch {torch.__version__}"]
    if device.type == "cuda":
        lines.append(f"GPU: {torch.cuda.get_device_name(device)}")
    else:
        kernels = onednn_kernels()
        lines.append("oneDNN kernels: " + "; ".join(f"{k} → {v}" for k, v in sorted(kernels.items())))
        kept = keep_freed_memory()  # process-wide, so every variant (the original's way too) runs with it
        lines.append("allocator: " + ("freed blocks kept for reuse (dagan.inference.memory), for every variant"
                                      if kept else "as the system has it (DAGAN_KEEP_FREED_MEMORY=0 or not glibc)"))
        lines.append(f"OpenMP idle threads: {spin_setting()} (dagan._openmp)")
    note = precision_note(device, "bf16")
    if note:
        lines.append(note)
    return lines


@torch.no_grad()
def flops_per_frame(fast, source, driving, batch_size) -> tuple[float, float]:
    """(per-frame FLOPs, once-per-source FLOPs) of the inference form, counted by FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    frames = driving[:batch_size]
    with FlopCounterMode(display=False) as once:
        state = fast.prepare_source(source)
    with FlopCounterMode(display=False) as per_batch:
        kp = fast.driving_keypoints(frames)
        fast.generate(state, normalize_keypoints(state.keypoints, kp, kp[0:1]))
    return per_batch.get_total_flops() / frames.shape[0], once.get_total_flops()


@torch.no_grad()
def original_flops_per_frame(model, source, driving) -> float:
    """Per-frame FLOPs of the original's way: (3 frames − 1 frame) / 2, so the once-per-video part cancels."""
    from torch.utils.flop_counter import FlopCounterMode

    counts = []
    for k in (1, 3):
        with FlopCounterMode(display=False) as counter:
            original_way(model, source, driving[:k])
        counts.append(counter.get_total_flops())
    return (counts[1] - counts[0]) / 2


# ---------------------------------------------------------------- the run
def emulated(device, precision: str) -> bool:
    """This CPU only emulates `precision` (ten times slower or worse): such variants are timed once, on few frames."""
    return precision != "fp32" and device.type == "cpu" and native_bf16(device) is False


def emulation_note(device, precision: str) -> str:
    return f"; no native {precision} here: emulated, timed once on {EMULATED_FRAMES} frames" \
        if emulated(device, precision) else ""


def build_variants(model, args, device, reduced: str):
    """name → (callable returning frames, note); `slow`: the names timed once (emulated precision).

    Forms are built here, outside the timings. Returns (variants, slow).
    """
    b = args.batch_size
    variants = {"original": (lambda s, d: original_way(model, s, d), "batch 1, source per frame, fp32")}
    for precision in ("fp32", reduced):
        form = inference_form(model, device, precision)
        note = f"batch {b}, inference form" + emulation_note(device, precision)
        variants[f"ours {precision}"] = (lambda s, d, f=form: f.animate(s, d, batch_size=b).float(), note)
        if args.compile:
            cform = inference_form(model, device, precision, compile=True)
            variants[f"ours {precision} compiled"] = (lambda s, d, f=cform: f.animate(s, d, batch_size=b).float(),
                                                      f"batch {b}, torch.compile")
    if args.ablation:
        plain = inference_form(model, device, "fp32", subpixel=False)
        variants["ours fp32 no subpixel"] = (lambda s, d, f=plain: f.animate(s, d, batch_size=b).float(),
                                             "upsampling blocks as nearest ×2 → 3×3 conv")
        direct = inference_form(model, device, "fp32", winograd=False)
        variants["ours fp32 direct convs"] = (lambda s, d, f=direct: f.animate(s, d, batch_size=b).float(),
                                              "no Winograd: every 3×3 conv by oneDNN")
        wide = inference_form(model, device, "fp32", narrow=False)
        variants["ours fp32 direct heads"] = (lambda s, d, f=wide: f.animate(s, d, batch_size=b).float(),
                                              "7×7 convs to ≤4 channels by oneDNN, not as k×1 + shifts")
        variants["previous fp32"] = (lambda s, d: ours(model, s, d, b, device, "fp32"), "loaded model, no folding")
        if emulated(device, reduced):  # minutes per frame, and nothing to learn about the hardware's bf16
            print(f"ablation: the {reduced} rows other than 'ours {reduced}' are left out: no native {reduced} here")
        else:
            variants[f"previous {reduced}"] = (lambda s, d: ours(model, s, d, b, device, reduced), "autocast")
            nchw = inference_form(model, device, reduced, channels_last=False)
            variants[f"ours {reduced} NCHW"] = (lambda s, d, f=nchw: f.animate(s, d, batch_size=b).float(),
                                                "inference form without channels_last")
            if reduced == "bf16" and device.type == "cpu":
                variants.update(bf16_rewrite_variants(model, device, b))
    slow = {name for name in variants if emulated(device, reduced) and reduced in name}
    return variants, slow


def bf16_rewrite_variants(model, device, b: int) -> dict:
    """Ablation rows for the bf16 conv rewrites: without each where the form applies them (no AMX),
    or with both forced where it does not (AMX), so either kind of machine shows whether they pay."""
    if torch.bfloat16 in conv_rewrite_dtypes(True):
        direct = inference_form(model, device, "bf16", winograd=False)
        wide = inference_form(model, device, "bf16", narrow=False)
        return {"ours bf16 direct convs": (lambda s, d, f=direct: f.animate(s, d, batch_size=b).float(),
                                           "no bf16 Winograd (no AMX here, so the form uses it)"),
                "ours bf16 direct heads": (lambda s, d, f=wide: f.animate(s, d, batch_size=b).float(),
                                           "bf16 7×7 convs to ≤4 channels by oneDNN")}
    forced = inference_form(model, device, "bf16", winograd=True, narrow=True)
    return {"ours bf16 rewrites": (lambda s, d, f=forced: f.animate(s, d, batch_size=b).float(),
                                   "bf16 Winograd and narrow heads forced (AMX here: the form leaves them out)")}


def time_variants(variants, slow, source, driving, device, repeats):
    """Warm up every variant (compile time = first call - best call), then interleave timed repeats.

    Returns (first, best, outputs, frames): seconds per frame of the first and best call, each
    variant's output, and how many frames each was timed on (EMULATED_FRAMES for those in `slow`).
    """
    first, best, outputs, frames = {}, {}, {}, {}
    for name, (fn, _) in variants.items():
        d = driving[:EMULATED_FRAMES] if name in slow else driving
        frames[name] = d.shape[0]
        sync(device)
        start = time.perf_counter()
        outputs[name] = fn(source, d)
        sync(device)
        first[name] = (time.perf_counter() - start) / frames[name]
        if name in slow:
            best[name] = first[name]
    for _ in range(repeats):
        for name, (fn, _) in variants.items():
            if name in slow:
                continue
            sync(device)
            start = time.perf_counter()
            fn(source, driving)
            sync(device)
            best[name] = min(best.get(name, math.inf), (time.perf_counter() - start) / frames[name])
    return first, best, outputs, frames


def external_rows(module: str, function: str, *call_args) -> list[dict]:
    path = Path(__file__).with_name(module + ".py")
    sys.path.insert(0, str(path.parent))
    try:
        fn = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        print(f"skipped: benchmarks/{module}.py with {function}() does not exist yet (another branch adds it)")
        return []
    return fn(*call_args) or []


def print_table(rows: list[tuple]):
    header = ("variant", "frames/s", "s/frame", "× original", "PSNR dB", "vs", "target", "note")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def profile_variant(fn, source, driving, name):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn(source, driving)
    print(f"profile of {name} (top 8 by self CPU time):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--preset", default="vox-256")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd inference forms")
    p.add_argument("--ablation", action="store_true", help="also time the previous (autocast) way and NCHW")
    p.add_argument("--profile", action="store_true", help="torch.profiler table of the bf16 and original runs")
    p.add_argument("--pipeline", action="store_true")
    p.add_argument("--onnx", action="store_true")
    return p.parse_args()


def table_rows(variants, first, best, outputs, counted) -> list[tuple]:
    """One row per variant: speed, ratio to the original, PSNR against its reference, target, note."""
    t_orig = best["original"]  # seconds per frame
    rows = []
    for name, (_, note) in variants.items():
        t, k = best[name], counted[name]
        if name == "original":
            quality, against = "", ""
        elif name.startswith(("ours fp32", "previous fp32")):
            quality, against = f"{psnr(outputs[name], outputs['original'][:k]):.1f}", "original"
        else:
            quality, against = f"{psnr(outputs[name], outputs['ours fp32'][:k]):.1f}", "ours fp32"
        if name.endswith("compiled"):
            note += f"; compile {(first[name] - t) * k:.0f} s"
        target = TARGETS.get(name, "")
        if name in TARGETS:
            target += "; PSNR ≥45" if name == "ours fp32" else "; PSNR ≥40"
        rows.append((name, f"{1 / t:.2f}", f"{t:.3f}", f"{t_orig / t:.2f}×", quality, against, target, note))
    return rows


def print_limits(model, args, device, reduced, source, driving, best) -> None:
    """FLOPs per frame of each form against the measured matmul peaks, and how far each is from them."""
    slow = emulated(device, reduced)
    counts = {precision: flops_per_frame(inference_form(model, device, precision), source, driving,
                                         1 if precision != "fp32" and slow else args.batch_size)
              for precision in ("fp32", reduced)}  # the forms differ: the conv rewrites depend on dtype and CPU
    per_frame, once = counts["fp32"]
    peaks = {"fp32": matmul_peak(torch.float32, device),
             reduced: matmul_peak(DTYPES[reduced], device, n=512 if slow else 2048, repeats=2 if slow else 5)}
    original = original_flops_per_frame(model, source, driving)
    print(f"physical limit: {per_frame / 1e9:.1f} GFLOP per frame in fp32, {counts[reduced][0] / 1e9:.1f} in {reduced} "
          f"(+{once / 1e9:.1f} GFLOP once per source; "
          f"the original's way: {original / 1e9:.1f} GFLOP per frame, "
          f"{100 * original / best['original'] / peaks['fp32']:.0f} % of the fp32 peak; "
          f"FlopCounterMode, convs and matmuls as executed); measured torch.mm peak (2048², {reduced} "
          f"{512 if slow else 2048}²): " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    for precision, peak in peaks.items():
        name, flops = f"ours {precision}", counts[precision][0]
        if precision != "fp32" and slow:
            print(f"  {name}: no native {precision} on this CPU: its emulated matmul is no hardware limit")
            continue
        achieved = flops / best[name]
        print(f"  {name}: limit {peak / flops:.2f} frames/s at the matmul peak; measured {1 / best[name]:.2f} "
              f"= {100 * achieved / peak:.0f} % of peak ({achieved / 1e9:.0f} GFLOP/s)")


def main():
    args = parse_args()
    device = resolve_device(args.device)
    reduced = "fp16" if device.type == "cuda" and not torch.cuda.is_bf16_supported() else "bf16"
    torch.manual_seed(0)
    model = DaGAN.from_pretrained(args.model) if args.model else DaGAN(get_preset(args.preset)).eval()
    if not args.model:
        with torch.no_grad():
            model.generator.attention.gamma.fill_(1.0)  # γ = 0 at init would hide the attention's error
    model = model.to(device)
    size = model.config.image_size
    source, driving = frames_like_video(args.frames, size)
    source, driving = source.to(device), driving.to(device)
    print(f"model: {args.model or 'preset ' + args.preset + ' (random weights, attention γ = 1)'}; "
          f"{args.frames} frames at {size}²; device {device}; best of {args.repeats}")
    for line in machine_report(device):
        print(line)

    variants, slow_variants = build_variants(model, args, device, reduced)
    first, best, outputs, counted = time_variants(variants, slow_variants, source, driving, device, args.repeats)
    if args.profile:
        for name in ("original", f"ours {reduced}"):
            profile_variant(variants[name][0], source, driving, name)
    rows = table_rows(variants, first, best, outputs, counted)
    extra = []
    if args.pipeline:
        extra += external_rows("pipeline_speed", "run_pipeline_benchmark", model, args)
    if args.onnx:
        extra += external_rows("onnx_speed", "run_onnx_benchmark", model, source, driving, args)
    for r in extra:
        fps = r["fps"]
        rows.append((r["variant"], f"{fps:.2f}", f"{1 / fps:.3f}", "", "", "", "", r.get("note", "")))
    print_table(rows)
    print_limits(model, args, device, reduced, source, driving, best)


if __name__ == "__main__":
    main()
