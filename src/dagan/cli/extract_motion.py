"""Save a driving video's motion (keypoints and jacobians per frame, no pixels) to a motion file."""

from __future__ import annotations

import time

from dagan.cli.animate import DEFAULT_DETECT_EVERY


def add_arguments(p):
    p.add_argument("--driving", required=True, help="driving video")
    p.add_argument("-o", "--output", required=True, metavar="MOTION.npz", help="motion file to write (.npz)")
    p.add_argument("--model", default=None, help="model directory (default: the bundled demo model); the file "
                   "only works with models that share its depth and keypoint networks")
    p.add_argument("--landmarks", action="store_true",
                   help="also store each frame's facial landmarks, for `dagan animate --best-frame auto`")
    p.add_argument("--no-crop", dest="crop", action="store_false", help="the video is already a face crop")
    p.add_argument("--batch-size", type=int, default=8, help="frames per batch (default 8)")
    p.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY, metavar="N",
                   help=f"full face detection every N frames, tracked in between (default {DEFAULT_DETECT_EVERY}, "
                        "as `dagan animate`)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])


def run(args):
    from dagan import assets
    from dagan.errors import DaganError
    from dagan.inference.pipeline import AnimateOptions, AnimationPipeline

    if args.batch_size < 1:
        raise DaganError(f"--batch-size must be at least 1, got {args.batch_size}")
    model, description = assets.resolve_model(args.model)
    print(f"model: {description}")
    pipe = AnimationPipeline(model, device=args.device, precision=args.precision, progress=False)
    start = time.perf_counter()
    options = AnimateOptions(crop=args.crop, batch_size=args.batch_size, detect_every=args.detect_every)
    motion, messages = pipe.extract_motion(args.driving, args.output, options, landmarks=args.landmarks)
    for message in messages:
        print(f"note: {message}")
    extra = ", with landmarks" if motion.landmarks is not None else ""
    print(f"wrote {args.output}: {motion.num_frames} frames at {motion.frame_rate} fps{extra}, model {motion.model_id} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0
