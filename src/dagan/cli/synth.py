"""Render synthetic 3D talking-head clips with ground-truth depth, pose and 68 landmarks."""

from pathlib import Path


def add_arguments(p):
    p.add_argument("-o", "--output", required=True, help="output dataset directory (train/, test/)")
    p.add_argument("--identities", type=int, default=6, help="number of identities (default 6)")
    p.add_argument("--clips", type=int, default=2, help="clips per identity (default 2)")
    p.add_argument("--frames", type=int, default=32, help="frames per clip (default 32)")
    p.add_argument("--size", type=int, default=128, help="frame size in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--test-identities", type=int, default=None, help="identities held out in test/ (default ~1/3)")
    p.add_argument("--photos", nargs="*", default=None,
                   help="face photos to build identities from (default: photos shipped in installed packages)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def run(args):
    from tqdm import tqdm

    from dagan.data.synth import synthesize
    from dagan.errors import DaganError

    for name in ("identities", "clips", "frames", "size"):
        if getattr(args, name) < 1:
            raise DaganError(f"--{name} must be positive, got {getattr(args, name)}")
    total = args.identities * args.clips
    with tqdm(total=total, unit="clip", desc="rendering") as bar:
        summary = synthesize(Path(args.output), identities=args.identities, clips=args.clips, frames=args.frames,
                             size=args.size, seed=args.seed, photos=args.photos, fps=args.fps,
                             test_identities=args.test_identities, overwrite=args.overwrite,
                             progress=lambda *a, **k: bar.update(1))
    print(f"wrote {args.output}: {len(summary['train'])} train and {len(summary['test'])} test clips "
          f"({args.frames} frames at {args.size}², ground truth in .npz beside each clip)")
    return 0
