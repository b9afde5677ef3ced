"""Compare a predicted and a target video frame by frame with pinned metric definitions (docs/metrics.md)."""

import json

KEYS = ("L1", "PSNR", "SSIM", "LPIPS", "AKD", "AED")


def add_arguments(p):
    p.add_argument("--pred", required=True, help="predicted video, or a folder of frames")
    p.add_argument("--target", required=True, help="target video, or a folder of frames")
    p.add_argument("--size", type=int, default=256, help="evaluation size (frames resized to size×size; default 256)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--lpips-weights", default=None,
                   help="LPIPS lin-layer file (alex.pth); its AlexNet backbone is looked for beside it")
    p.add_argument("--lpips-backbone", default=None, help="torchvision alexnet-owt-7be5be79.pth")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS")


def run(args):
    from dagan.evaluation import compute_metrics
    from dagan.evaluation.lpips import try_load_lpips
    from dagan.io.frames import iter_any_frames

    lpips = False
    if not args.no_lpips:
        model, reason = try_load_lpips(args.lpips_weights, args.lpips_backbone)
        lpips = model if model is not None else False
    result = compute_metrics(iter_any_frames(args.pred), iter_any_frames(args.target), size=args.size, lpips=lpips)
    if not args.no_lpips and result["LPIPS"] is None:
        result["LPIPS_reason"] = reason
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'metric':8s} {'value':>10s}")
    for key in KEYS:
        value = result[key]
        print(f"{key:8s} {'n/a' if value is None else format(value, '.4f'):>10s}")
    print(f"frames: {result['num_frames']}; no face found in {result['failed_detections_pred']} predicted and "
          f"{result['failed_detections_target']} target frames")
    if result.get("LPIPS_reason"):
        print(f"LPIPS n/a: {result['LPIPS_reason']}")
    return 0
