"""Networks-only animate speed over batch sizes × precisions × (eager, CUDA graphs, torch.compile), one table.

    python benchmarks/gpu_speed.py [--device cuda] [--preset vox-256] [--batches 1 8 32]
        [--precisions fp32 bf16 fp16] [--compile] [--budget-s 330]

Each cell times the steady-state network step the pipeline runs per batch (depth + keypoints of a
driving batch, keypoint normalisation, generator; the source prepared once), best of 3 rounds
after a warm-up, on the inference form (dagan.inference.optimize). Modes:
- `eager, no autotune`: as TorchRuntime runs it (torch.backends.cudnn.benchmark off);
- `eager`: cuDNN autotuned (not a default until this measures it: other algorithms round differently);
- `graphs`: the same step captured once in a CUDA graph and replayed;
- `compile`: the form under torch.compile (its compile time in the note);
- `compile+graphs`: the compiled step captured in a CUDA graph.
The last three run with autotuning on. The original's per-frame way (fp32, eager) is timed first,
as the "× original" column's base, and the machine's measured matmul peaks with the counted FLOPs
per frame give each row's share of peak. Eager and graph rows run first; compiled rows, slowest to
compile last, only while the elapsed time is under --budget-s (the rest print as skipped), so the
whole run stays bounded.
"""

from __future__ import annotations

import argparse
import time

import torch

from animate_speed import flops_per_frame, frames_like_video, matmul_peak, original_way, psnr, sync
from dagan.config import get_preset
from dagan.geometry.keypoints import normalize_keypoints
from dagan.inference.optimize import inference_form
from dagan.models import DaGAN

HEADER = (f"{'batch':>5}  {'precision':9}  {'mode':18}  {'frames/s':>9}  {'ms/frame':>9}  {'× original':>10}  "
          f"{'% of peak':>9}  {'PSNR vs fp32':>12}  note")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ["eager, no autotune", "eager", "graphs", "compile", "compile+graphs"]


def network_step(form, source):
    """frames (B×3×H×W, the form's dtype) → predictions: the per-batch work of the pipeline, with no
    host synchronisation (the DaGAN methods' input checks read values back), so it can be captured."""
    state = form.prepare_source(source)
    kp_initial = form.driving_keypoints(source)
    use_depth = form.config.keypoint.use_depth

    def step(frames):
        images = torch.cat([frames, form.depth(frames)[0].to(frames)], dim=1) if use_depth else frames
        kp = normalize_keypoints(state.keypoints, form.keypoint_detector(images), kp_initial, scale=1.0)
        return form.generator(state.image, kp, state.keypoints, source_features=state.features)["prediction"]

    return step


def cuda_graphed(step, example):
    """`step` captured in a CUDA graph on a static copy of `example`; the returned function copies
    its input in, replays and returns the static output (valid until the next call)."""
    static_in = example.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm-up off the capture stream (cuDNN plans, compiled kernels)
            step(static_in)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = step(static_in)

    def replay(frames):
        static_in.copy_(frames)
        graph.replay()
        return static_out

    return replay


def time_step(run, frames, device, rounds: int = 3) -> tuple[torch.Tensor, float, float]:
    """(output, first call's seconds, best seconds per call over `rounds` rounds)."""
    sync(device)
    start = time.perf_counter()
    out = run(frames).float().clone()
    sync(device)
    first = time.perf_counter() - start
    calls = max(3, 48 // frames.shape[0])
    best = float("inf")
    for _ in range(rounds):
        sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            run(frames)
        sync(device)
        best = min(best, (time.perf_counter() - start) / calls)
    return out, first, best


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="vox-256")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"], choices=list(DTYPES))
    p.add_argument("--compile", action="store_true", help="add the torch.compile rows")
    p.add_argument("--budget-s", type=float, default=330, help="start no compiled row after this many seconds")
    return p.parse_args()


class Table:
    """Rows printed as they come (a killed run keeps them) and again, sorted, at the end."""

    def __init__(self, base_fps: float, peaks: dict, flops: float):
        self.base_fps, self.peaks, self.flops, self.rows = base_fps, peaks, flops, []

    def add(self, batch, precision, mode, best=None, quality=None, note=""):
        if best is None:
            cells = f"{'':>9}  {'':>9}  {'':>10}  {'':>9}  {'':>12}"
        else:
            fps = batch / best
            share = 100 * self.flops * fps / self.peaks[precision]
            cells = (f"{fps:9.1f}  {1000 / fps:9.2f}  {fps / self.base_fps:9.1f}×  {share:8.1f}%  "
                     f"{quality:12.1f}")
        row = f"{batch:>5}  {precision:9}  {mode:18}  {cells}  {note}"
        self.rows.append((batch, list(DTYPES).index(precision), MODES.index(mode), row))
        print(row, flush=True)

    def print_sorted(self):
        print("\nsorted:\n" + HEADER)
        for *_, row in sorted(self.rows, key=lambda r: r[:3]):
            print(row)


def measure(table, step, frames, batch, precision, mode, device, reference, note=""):
    """One cell: time `step`, compare with the fp32 eager output at this batch, add the row."""
    try:
        run = cuda_graphed(step, frames) if mode.endswith("graphs") else step
        with torch.no_grad():
            out, first, best = time_step(run, frames, device)
    except Exception as exc:  # a mode that cannot run here is a row saying why, not a lost table
        table.add(batch, precision, mode, note=f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:90]}")
        return None
    reference.setdefault(batch, out)
    table.add(batch, precision, mode, best, psnr(out, reference[batch]), note(first, best) if callable(note) else note)
    return out


def compiled_rows(table, model, source, driving, args, device, begin, reference, graphs):
    """The torch.compile rows, the precisions in order of interest and each at the largest batch
    first, until the time budget is spent; no compiler is a row saying so, not a lost table."""
    modes = ["compile", "compile+graphs"][: len(graphs)]
    for precision in sorted(args.precisions, key=["bf16", "fp16", "fp32"].index):
        reason = "skipped (time budget)" if time.perf_counter() - begin > args.budget_s else None
        if reason is None:
            try:
                form = inference_form(model, device, precision, compile=True)
                step = network_step(form, source)
            except Exception as exc:
                reason = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
        for batch in sorted(args.batches, reverse=True):
            for mode in modes:
                if reason is None and time.perf_counter() - begin > args.budget_s:
                    reason = "skipped (time budget)"
                if reason is not None:
                    table.add(batch, precision, mode, note=reason)
                    continue
                note = (lambda first, best: f"compile {first - best:.0f} s") if mode == "compile" else ""
                measure(table, step, driving[:batch].to(DTYPES[precision]), batch, precision, mode, device,
                        reference, note)
        if reason is None:
            del form, step
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main():
    args = parse_args()
    device = torch.device(args.device)
    begin = time.perf_counter()
    torch.manual_seed(0)
    model = DaGAN(get_preset(args.preset)).eval().to(device)
    with torch.no_grad():
        model.generator.attention.gamma.fill_(1.0)
    size = model.config.image_size
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    source, driving = frames_like_video(max(args.batches), size)
    source, driving = source.to(device), driving.to(device)
    peaks = {p: matmul_peak(d, device, n=8192 if device.type == "cuda" else 1024) for p, d in DTYPES.items()}
    with torch.no_grad():
        original_way(model, source, driving[:2])
        sync(device)
        start = time.perf_counter()
        original_way(model, source, driving[:16])
        sync(device)
        base_fps = 16 / (time.perf_counter() - start)
        flops, _ = flops_per_frame(inference_form(model, device, "fp32"), source, driving, 8)
    print(f"{args.preset} (random weights) at {size}² on {name}; torch {torch.__version__}")
    print("matmul peak (8192³ on CUDA): " + ", ".join(f"{p} {v / 1e12:.0f} TFLOP/s" for p, v in peaks.items())
          + f"; {flops / 1e9:.1f} GFLOP per frame (FlopCounterMode)")
    print(f"original's per-frame way (fp32, eager): {base_fps:.1f} frames/s\n\n{HEADER}", flush=True)
    table, reference = Table(base_fps, peaks, flops), {}
    graphs = ["eager", "graphs"] if device.type == "cuda" else ["eager"]
    for precision in args.precisions:  # the first (fp32 by default) is the PSNR reference at each batch
        form = inference_form(model, device, precision)
        step = network_step(form, source)
        for batch in args.batches:
            frames = driving[:batch].to(DTYPES[precision])
            for mode in (["eager, no autotune"] if device.type == "cuda" else []) + graphs:
                torch.backends.cudnn.benchmark = mode != "eager, no autotune"
                measure(table, step, frames, batch, precision, mode, device, reference)
        del form, step
    if args.compile:
        compiled_rows(table, model, source, driving, args, device, begin, reference, graphs)
    table.print_sorted()
    print(f"gpu_speed: {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
