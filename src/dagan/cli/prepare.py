"""Face-crop raw videos into a training dataset (train/, test/, <identity>#<clip>.mp4), in parallel."""

import os


def add_arguments(p):
    p.add_argument("raw", help="folder of raw videos (raw/<identity>/<clip>.mp4, or flat; train/ and test/ kept)")
    p.add_argument("-o", "--output", required=True, help="dataset folder to write")
    p.add_argument("--size", type=int, default=256, help="crop size (default 256)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of identities held out for test/")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel processes")
    p.add_argument("--detect-every", type=int, default=1, help="run the face detector every N frames")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split")


def run(args):
    from tqdm import tqdm

    from dagan.data.prepare import plan, prepare
    from dagan.errors import DaganError

    if args.size < 16:
        raise DaganError(f"--size must be at least 16, got {args.size}")
    total = len(plan(args.raw, args.output, size=args.size, test_fraction=args.test_fraction))
    with tqdm(total=total, unit="video", desc="preparing") as bar:
        result = prepare(args.raw, args.output, size=args.size, test_fraction=args.test_fraction,
                         workers=args.workers, detect_every=args.detect_every, seed=args.seed, progress=bar.update)
    for f in result["failed"]:
        print(f"skipped {f['video']}: {f['error']}")
    print(f"wrote {args.output}: {result['prepared']} clips ({len(result['failed'])} skipped)")
    return 0
