"""Animation speed: our batched, source-cached path vs the original's per-frame path, same frames.

    python benchmarks/animate_speed.py [--model DIR | --preset vox-256] [--frames 16] [--batch-size 8]
        [--device cpu] [--precision fp32] [--pipeline]

Reports frames/s for (a) the networks alone with our method (source encoded once, driving frames
in batches), (b) the original demo.py way on the same frames (source depth/features recomputed per
frame, batch 1, fp32, driving depth of frame 0 recomputed), their ratio and the max abs difference
between the two outputs; with --pipeline also (c) the whole `dagan animate` pipeline (decode, face
crop, animate, encode) on the bundled sample.
"""

from __future__ import annotations

import argparse
import time

import torch

from dagan.config import get_preset
from dagan.geometry import normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.inference.pipeline import autocast_context, resolve_device
from dagan.models import DaGAN


def frames_like_video(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, size, size, generator=g)
    base = torch.nn.functional.avg_pool2d(base, 9, 1, 4)  # smooth images
    shifts = [torch.roll(base, shifts=(i % 7 - 3, i % 5 - 2), dims=(2, 3)) for i in range(n)]
    return base.clamp(0, 1), torch.cat(shifts).clamp(0, 1)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def ours(model, source, driving, batch_size, device, precision):
    with autocast_context(device, precision):
        out = model.animate(source, driving, batch_size=batch_size)
    return out.float()


@torch.no_grad()
def original_way(model, source, driving):
    """demo.py's make_animation: per frame, the generator re-encodes source image and depth."""
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
        outs.append(model.generator(source, kp_norm, kp_src, depth_src)["prediction"])
    return torch.cat(outs)


def timed(fn, device, repeats=1):
    fn()  # warm-up
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return out, best


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--preset", default="vox-256")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--pipeline", action="store_true")
    args = p.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = DaGAN.from_pretrained(args.model) if args.model else DaGAN(get_preset(args.preset)).eval()
    model = model.to(device)
    size = model.config.image_size
    source, driving = frames_like_video(args.frames, size)
    source, driving = source.to(device), driving.to(device)
    print(f"model: {args.model or 'preset ' + args.preset + ' (random weights)'}; {args.frames} frames at {size}²; "
          f"device {device}; threads {torch.get_num_threads()}")
    ref, t_orig = timed(lambda: original_way(model, source, driving), device, args.repeats)
    fast, t_ours = timed(lambda: ours(model, source, driving, args.batch_size, device, args.precision), device,
                         args.repeats)
    n = args.frames
    print(f"original way (batch 1, source re-encoded per frame, fp32): {n / t_orig:7.2f} frames/s ({t_orig / n:.3f} s/frame)")
    print(f"ours (batch {args.batch_size}, source cached, {args.precision}):{' ' * 12}{n / t_ours:7.2f} frames/s "
          f"({t_ours / n:.3f} s/frame)")
    print(f"speed-up: {t_orig / t_ours:.2f}x; max |difference|: {float((fast - ref).abs().max()):.3g}")
    if args.pipeline:
        import tempfile
        from pathlib import Path

        from dagan import assets
        from dagan.inference.pipeline import AnimateOptions, AnimationPipeline

        pipe = AnimationPipeline(model, device=args.device, precision=args.precision, progress=False)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = pipe.run(assets.sample_source(), assets.sample_driving(), Path(tmp) / "o.mp4",
                              AnimateOptions(batch_size=args.batch_size))
            seconds = time.perf_counter() - start
        print(f"whole pipeline on the bundled sample ({result.frames} frames, decode + face crop + animate + encode): "
              f"{result.frames / seconds:.2f} frames/s")


if __name__ == "__main__":
    main()
