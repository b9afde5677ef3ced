"""Score a depth network against the ground truth of synthetic clips, next to a flat-depth baseline."""

import json
from pathlib import Path


def add_arguments(p):
    p.add_argument("--depth", required=True, help="depth directory (RUN/model of train-depth) or a DaGAN model directory")
    p.add_argument("--data", required=True, help="a `dagan synth` dataset")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("-o", "--output", default=None, help="also write the JSON report here")


def run(args):
    from dagan.evaluation.depth import KEYS, evaluate_depth
    from dagan.inference.pipeline import resolve_device
    from dagan.training.export import load_depth

    net = load_depth(args.depth, device=resolve_device(args.device))
    report = evaluate_depth(net, args.data, args.split)
    report["depth"] = str(args.depth)
    if args.output:
        out = Path(args.output)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(out)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['frames']} frames of {len(report['clips'])} {args.split} clips in {args.data}")
    print(f"{'':14s} {'abs_rel ↓':>10s} {'affine ↓':>10s} {'δ<1.25 ↑':>10s} {'pearson ↑':>10s}")
    for name in ("model", "flat_baseline"):
        row = report[name]
        print(f"{name:14s} " + " ".join(f"{row[k]:10.4f}" for k in KEYS))
    return 0
