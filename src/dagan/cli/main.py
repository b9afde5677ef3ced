"""`dagan` console command: dispatches to one module per subcommand.

Every user-facing problem is a DaganError, printed as one line with exit status 2. Ctrl-C (SIGINT)
and SIGTERM (a service manager or the web app stopping a run) both unwind as KeyboardInterrupt,
so writers discard their temp files, background workers stop, and the exit status is 130 or 143.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
import threading

from dagan.errors import DaganError

# subcommand → (module, one-line help); modules define add_arguments(parser) and run(args)
COMMANDS = {
    "animate": ("dagan.cli.animate", "animate a source photo with a driving video"),
    "convert": ("dagan.cli.convert", "convert the original released checkpoints to a model directory"),
    "info": ("dagan.cli.info", "print a model's config, parameter counts and the environment"),
    "synth": ("dagan.cli.synth", "render synthetic talking-head clips with ground-truth depth, pose and landmarks"),
    "evaluate-depth": ("dagan.cli.evaluate_depth", "score a depth network on synthetic clips against a flat baseline"),
    "evaluate": ("dagan.cli.evaluate", "evaluate a model: reconstruction (pairs or video protocol) and cross-identity"),
    "pairs": ("dagan.cli.pairs", "make a reproducible evaluation pair list (original CSV format)"),
    "metrics": ("dagan.cli.metrics", "compare a predicted and a target video frame by frame (L1, PSNR, SSIM, LPIPS, AKD, AED)"),
    "prepare": ("dagan.cli.prepare", "face-crop raw videos into a training dataset"),
    "train-depth": ("dagan.cli.train_depth", "train the face depth network (stage 1)"),
    "train": ("dagan.cli.train", "train DaGAN with a frozen depth network (stage 2)"),
    "export": ("dagan.cli.export", "export a model to ONNX for onnxruntime, TensorRT or OpenVINO"),
    "serve": ("dagan.cli.serve", "serve the web app, the HTTP API and live webcam animation"),
    "extract-motion": ("dagan.cli.extract_motion", "save a driving video's motion (no pixels) to a motion file"),
    "batch": ("dagan.cli.batch", "animate many photos with many driving videos, resumable and shardable"),
}


def build_parser(commands: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagan", description="Depth-Aware GAN talking-head reenactment")
    from dagan import __version__

    parser.add_argument("--version", action="version", version=f"dagan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in commands.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def available_commands() -> dict:
    """Subcommands whose modules import (features land issue by issue)."""
    out = {}
    for name, (module_name, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module_name) is not None:
            out[name] = (module_name, help_text)
    return out


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds like Ctrl-C (every `except Exception` lets it through)."""


def _terminate(signum, frame):
    raise Terminated()


def _on_sigterm(handler):
    """Install a SIGTERM handler (main thread only; elsewhere signals cannot be caught); return the old one."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(available_commands())
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    previous = _on_sigterm(_terminate)
    try:
        return int(args._run(args) or 0)
    except DaganError as exc:
        print(f"dagan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"dagan {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"dagan {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            _on_sigterm(previous)


if __name__ == "__main__":
    sys.exit(main())
