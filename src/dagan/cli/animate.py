"""Animate a source photo with the head motion and expressions of a driving video."""

from __future__ import annotations

import time
from pathlib import Path

from dagan.errors import DaganError

DEFAULT_OUTPUT = "outputs/demo.mp4"
DEFAULT_DETECT_EVERY = 25  # AnimateOptions.detect_every (not imported here: the parser must not load torch)


def add_arguments(p):
    p.add_argument("--source", default=None, help="source photo (default: the bundled sample photo)")
    p.add_argument("--driving", default=None,
                   help="driving video, motion file (.npz from `dagan extract-motion`) or one image "
                        "(default: the bundled sample video)")
    p.add_argument("-o", "--output", default=DEFAULT_OUTPUT,
                   help=f"output .mp4/.mov, .gif, a directory of PNG frames, or .png/.jpg for an image driving "
                        f"(default: {DEFAULT_OUTPUT})")
    p.add_argument("--model", default=None,
                   help="model directory (from `dagan convert` or `dagan train`); default: the bundled demo "
                        "model; `preset:NAME` runs an untrained architecture (for testing and benchmarks only)")
    add_animate_options(p)
    p.add_argument("--profile", action="store_true",
                   help="print the time spent per stage and how busy the networks were")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the networks (needs a C++ compiler; the first batch pays the compile time)")
    p.add_argument("--overlap", choices=["on", "off"], default="on",
                   help="decode/track/crop and compose/encode on background threads while the networks run "
                        "(default on; off: every stage on one thread, for measurements)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_animate_options(p):
    """The options of one animation (not inputs, output, model or device); `dagan batch` shares them."""
    motion = p.add_mutually_exclusive_group()
    motion.add_argument("--relative", dest="relative", action="store_true", default=True,
                        help="relative motion against the initial driving frame (default)")
    motion.add_argument("--absolute", dest="relative", action="store_false", help="absolute keypoint motion")
    p.add_argument("--no-adapt-scale", dest="adapt_scale", action="store_false",
                   help="do not scale the motion by the ratio of keypoint convex-hull areas")
    p.add_argument("--best-frame", default=None, metavar="auto|N",
                   help="initial driving frame: `auto` picks the frame whose landmarks best match the source")
    p.add_argument("--smooth-keypoints", type=float, default=0.0, metavar="HZ",
                   help="One-Euro keypoint smoothing against jitter (min cutoff in Hz, e.g. 1.0; 0 = off)")
    p.add_argument("--no-crop", dest="crop", action="store_false", help="inputs are already face crops")
    p.add_argument("--paste-back", action="store_true", help="blend the face back into the full-size photo")
    p.add_argument("--faces", default="largest", metavar="largest|all|N,M",
                   help="which faces of the photo to animate, numbered left to right from 1 (default largest; "
                        "`dagan info --faces PHOTO` lists them); without --paste-back each face gets its own "
                        "file, OUTPUT_face<N>")
    p.add_argument("--side-by-side", action="store_true",
                   help="write source | driving | result | depth | keypoints panels")
    p.add_argument("--no-audio", dest="audio", action="store_false", help="do not copy the driving audio")
    p.add_argument("--audio", dest="audio_file", default=None, metavar="FILE",
                   help="audio track for the output (any file with sound), instead of the driving video's")
    p.add_argument("--batch-size", type=int, default=8, help="driving frames per batch (default 8)")
    p.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY, metavar="N",
                   help="run the full face detector every N driving frames and track the face in between; it "
                        "also runs whenever tracking confidence drops "
                        f"(default {DEFAULT_DETECT_EVERY}; 1 = every frame)")


def parse_best_frame(value):
    """None, 'auto' or a frame number from a --best-frame string."""
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise DaganError(f"--best-frame must be 'auto' or a frame number, got {value!r}") from None


def options_from_args(args):
    """AnimateOptions from arguments added by `add_animate_options`."""
    from dagan.inference.pipeline import AnimateOptions

    return AnimateOptions(relative=args.relative, adapt_movement_scale=args.adapt_scale,
                          best_frame=parse_best_frame(args.best_frame), crop=args.crop, paste_back=args.paste_back,
                          side_by_side=args.side_by_side, smooth_keypoints=args.smooth_keypoints, audio=args.audio,
                          batch_size=args.batch_size, detect_every=args.detect_every, faces=args.faces,
                          audio_file=args.audio_file)


def run(args):
    from dagan import assets
    from dagan.inference.pipeline import AnimationPipeline

    source = args.source or str(assets.sample_source())
    driving = args.driving or str(assets.sample_driving())
    options = options_from_args(args)
    output = Path(args.output)
    if args.output == DEFAULT_OUTPUT:
        output.parent.mkdir(parents=True, exist_ok=True)
    model, description = assets.resolve_model(args.model)
    print(f"model: {description}")
    pipe = AnimationPipeline(model, device=args.device, precision=args.precision, progress=not args.quiet,
                             compile=args.compile, overlap=args.overlap == "on")
    start = time.perf_counter()
    result = _run_compiled(pipe, source, driving, output, options) if args.compile \
        else pipe.run(source, driving, output, options)
    seconds = time.perf_counter() - start
    for message in result.messages:
        print(f"note: {message}")
    audio = ("with the audio of " + args.audio_file if args.audio_file else "with the driving audio") \
        if result.audio else "no audio"
    faces = f", face{'s' if len(result.faces) > 1 else ''} {','.join(map(str, result.faces))}" \
        if args.faces != "largest" else ""
    written = ", ".join(map(str, result.outputs))
    print(f"wrote {written}: {result.frames} frames at {result.fps:.3g} fps, {result.size[0]}×{result.size[1]}, "
          f"{audio}{faces} ({seconds:.1f} s, {result.frames / seconds:.2f} frames/s on {pipe.device}, {args.precision})")
    if args.profile:
        print(result.profile.table())
    return 0


def _run_compiled(pipe, source, driving, output, options):
    """`pipe.run` with torch.compile's own failures (raised at the first batch) as one-line errors."""
    from torch._dynamo.exc import TorchDynamoException

    try:
        return pipe.run(source, driving, output, options)
    except TorchDynamoException as exc:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        raise DaganError(f"--compile failed: torch.compile could not build the networks ({reason}); "
                         "run without --compile") from None
