"""Export a model to an ONNX model directory for onnxruntime, TensorRT or OpenVINO."""

from __future__ import annotations

import time
from pathlib import Path

from dagan.errors import DaganError

FORMATS = ("onnx",)


def add_arguments(p):
    p.add_argument("--model", default=None,
                   help="model directory (from `dagan convert` or `dagan train`); default: the bundled demo model")
    p.add_argument("--format", default="onnx", help="export format (only onnx)")
    p.add_argument("-o", "--output", required=True, help="output directory (config.json and the .onnx graphs)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 18…20 (default 18)")


def run(args):
    from dagan import assets
    from dagan.cli.common import check_output_dir

    if args.format not in FORMATS:
        raise DaganError(f"--format {args.format!r} is not supported; choose {', '.join(FORMATS)}")
    try:
        from dagan.onnx import DEFAULT_OPSET, export_onnx, is_onnx_dir
    except ImportError as exc:
        raise DaganError(f"dagan export needs the onnx extra: pip install 'dagan[onnx]' ({exc})") from None
    if args.model and is_onnx_dir(args.model):
        raise DaganError(f"{args.model} is already an ONNX model directory; export its PyTorch model directory")
    output = Path(args.output)
    check_output_dir(output)
    if output.exists() and any(output.iterdir()) and not args.force:
        raise DaganError(f"{output} already exists; pass --force to replace it")
    model, description = assets.resolve_model(args.model)
    print(f"model: {description}")
    start = time.perf_counter()
    out = export_onnx(model, output, opset=args.opset or DEFAULT_OPSET, force=args.force,
                      metadata={"description": f"exported from {description}"})
    files = sorted(p for p in out.iterdir())
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in files if p.suffix == ".onnx")
    print(f"wrote {out} ({sizes}; {time.perf_counter() - start:.0f} s)")
    print(f"run it: dagan animate --model {out}")
    return 0
