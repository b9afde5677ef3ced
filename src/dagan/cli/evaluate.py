"""Evaluate a model: same-identity reconstruction (pairs or video protocol) and cross-identity reenactment."""

import json
from pathlib import Path


def add_arguments(p):
    p.add_argument("--model", required=True, help="model directory (or preset:NAME for an untrained network)")
    p.add_argument("--data", required=True, help="dataset root with test/ (e.g. from dagan synth or dagan prepare)")
    p.add_argument("--protocol", choices=["pairs", "video"], default="video",
                   help="pairs: DaGAN/MCNet (source, driving) frame pairs; video: first-order-model whole videos")
    p.add_argument("--pairs", default=None, help="pair list CSV in the original format (default: made with --seed)")
    p.add_argument("--num-pairs", type=int, default=100, help="pairs to draw when --pairs is not given")
    p.add_argument("--cross-pairs", type=int, default=4, help="cross-identity (source, driving video) pairs; 0 = skip")
    p.add_argument("--max-frames", type=int, default=None, help="use at most N frames per video")
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="evaluation size (default 256)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-lpips", action="store_true")
    p.add_argument("--plots", action="store_true", help="write per-frame metric plots beside the report (video protocol)")
    p.add_argument("-o", "--output", required=True, help="report .json (a .md summary is written beside it)")


def run(args):
    from tqdm import tqdm

    from dagan import assets
    from dagan.cli.common import check_output_file
    from dagan.data.pairs import EvaluationPairs, make_pairs
    from dagan.errors import DaganError
    from dagan.evaluation.lpips import try_load_lpips
    from dagan.evaluation.protocols import evaluate_cross_identity, evaluate_pairs, evaluate_videos, markdown_report
    from dagan.inference.pipeline import resolve_device

    out = Path(args.output)
    check_output_file(out)
    if not (Path(args.data) / args.split).is_dir():
        raise DaganError(f"dataset {args.data} has no {args.split}/ folder (expected <identity>#<clip> videos there)")
    model, description = assets.resolve_model(args.model)
    model = model.to(resolve_device(args.device)).eval()
    lpips, reason = (None, "LPIPS disabled (--no-lpips)") if args.no_lpips else try_load_lpips()
    report = {"model": args.model, "model_description": description, "data": args.data, "split": args.split,
              "size": args.size, "seed": args.seed, "LPIPS_reason": reason}
    bar = tqdm(unit="frame", desc="evaluating")
    try:
        if args.protocol == "pairs":
            pairs = (EvaluationPairs.read_csv(args.pairs, args.data) if args.pairs
                     else make_pairs(args.data, args.split, num_pairs=args.num_pairs, seed=args.seed))
            report["reconstruction"] = evaluate_pairs(model, pairs, batch_size=args.batch_size, size=args.size,
                                                      lpips=lpips, progress=bar.update)
        else:
            report["reconstruction"] = evaluate_videos(model, args.data, args.split, batch_size=args.batch_size,
                                                       size=args.size, lpips=lpips, max_frames=args.max_frames,
                                                       progress=bar.update)
        if args.cross_pairs > 0:
            report["cross_identity"] = evaluate_cross_identity(model, args.data, args.split, num_pairs=args.cross_pairs,
                                                               seed=args.seed, batch_size=args.batch_size,
                                                               max_frames=args.max_frames, progress=bar.update)
    finally:
        bar.close()
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out)
    md = markdown_report(report)
    out.with_suffix(".md").write_text(md)
    if args.plots and args.protocol == "video":
        _plots(report, out)
    print(md)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def _plots(report, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for video in report["reconstruction"]["per_video"]:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3))
        for ax, key in zip(axes, ("L1", "SSIM", "AKD")):
            ax.plot([f[key] if f[key] is not None else float("nan") for f in video["per_frame"]])
            ax.set_title(f"{key} per frame")
            ax.set_xlabel("frame")
        fig.suptitle(video["video"])
        fig.tight_layout()
        fig.savefig(out.with_name(f"{out.stem}_{video['video'].replace('#', '_')}.png"), dpi=80)
        plt.close(fig)
