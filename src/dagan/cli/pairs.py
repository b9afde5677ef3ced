"""Make a reproducible same-identity evaluation pair list in the original CSV format."""


def add_arguments(p):
    p.add_argument("data", help="dataset root")
    p.add_argument("-o", "--output", required=True, help="output CSV")
    p.add_argument("--split", default="test")
    p.add_argument("--num-pairs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)


def run(args):
    from dagan.data.pairs import make_pairs
    from dagan.errors import DaganError

    if args.num_pairs < 1:
        raise DaganError(f"--num-pairs must be positive, got {args.num_pairs}")
    pairs = make_pairs(args.data, args.split, num_pairs=args.num_pairs, seed=args.seed)
    pairs.write_csv(args.output)
    print(f"wrote {args.output}: {len(pairs)} pairs from {args.data}/{args.split} (seed {args.seed})")
    return 0
