"""Animate many photos with many driving videos: a CSV of jobs or a cross product, resumable and shardable.

Under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set) each process takes its own shard and, with CUDA,
its own GPU (cuda:LOCAL_RANK); `--shard I/N` splits the jobs for Slurm arrays or indexed jobs.
"""

from __future__ import annotations

import os
import time


def add_arguments(p):
    from dagan.cli.animate import add_animate_options

    p.add_argument("jobs", nargs="?", default=None, metavar="JOBS.csv",
                   help="CSV with columns source,driving[,output][,OPTION...] (output relative to OUTDIR; options "
                        "as columns: relative, adapt_scale, best_frame, smooth_keypoints, crop, paste_back, faces, "
                        "side_by_side, audio, audio_file, batch_size, detect_every)")
    p.add_argument("--sources", default=None, metavar="DIR", help="every photo in DIR (instead of JOBS.csv) ...")
    p.add_argument("--driving", default=None, metavar="DIR_OR_FILE", help="... × every driving video/motion file/image")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output folder (outputs, batch_report.json, .motion/ with the extracted motion)")
    p.add_argument("--format", default="mp4", choices=["mp4", "mov", "gif"],
                   help="output type of jobs without an output column (default mp4; image drivings give .png)")
    p.add_argument("--shard", default=None, metavar="I/N", help="run only part I of N (0 ≤ I < N), e.g. a Slurm "
                   "array's $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")
    p.add_argument("--model", default=None, help="model directory (default: the bundled demo model)")
    add_animate_options(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto; cuda:LOCAL_RANK "
                   "under torchrun)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])


def run(args):
    import torch

    from dagan import assets
    from dagan.cli.animate import options_from_args
    from dagan.errors import DaganError
    from dagan.inference.batch import cross_jobs, read_jobs_csv, resolve_shard, run_batch, shard_jobs
    from dagan.inference.pipeline import AnimationPipeline

    defaults = options_from_args(args)
    suffix = "." + args.format
    if args.jobs and (args.sources or args.driving):
        raise DaganError("give JOBS.csv or --sources with --driving, not both")
    if args.jobs:
        jobs = read_jobs_csv(args.jobs, defaults, suffix)
    elif args.sources and args.driving:
        jobs = cross_jobs(args.sources, args.driving, defaults, suffix)
    else:
        raise DaganError("give JOBS.csv, or --sources DIR and --driving DIR_OR_FILE")
    index, count = resolve_shard(args.shard)
    mine = shard_jobs(jobs, index, count)
    device = args.device
    if device == "auto" and "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    model, description = assets.resolve_model(args.model)
    pipe = AnimationPipeline(model, device=device, precision=args.precision, progress=False)
    print(f"model: {description}")
    print(f"shard {index}/{count}: {len(mine)} of {len(jobs)} jobs on {pipe.device}")
    start = time.perf_counter()
    counts = run_batch(pipe, mine, args.output, shard=(index, count))
    print(f"done in {time.perf_counter() - start:.1f} s: {counts['ok']} ok, {counts['skipped']} finished before, "
          f"{counts['failed']} failed (see {os.path.join(args.output, 'batch_report.json')})")
    return 1 if counts["failed"] else 0
