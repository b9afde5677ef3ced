"""Export a `DaGAN` to an ONNX model directory: config.json plus the graphs of `dagan.onnx.graphs`.

Every graph is checked before the directory appears: `onnx.checker.check_model(full_check=True)`,
only default-domain operators, the requested opset (18…20; GridSample needs ≥ 16), every
GridSample 4-D (TensorRT and OpenVINO lack the 5-D form), no matrix inverse, a dynamic batch axis.
The directory is written under a temporary name beside the target and renamed at the end, so a
failed or interrupted export leaves nothing behind and never touches an existing directory
unless `force` is given.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from dagan.errors import DaganError
from dagan.models import DaGAN
from dagan.onnx.graphs import BATCH, TensorSpec, build_graphs, example_inputs, graph_specs

FORMAT = "dagan-onnx"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
# GridSample needs opset 16; torch.onnx's exporter writes 18 and up (onnx's converter has no Pad-18 → 17 adapter)
MIN_OPSET, DEFAULT_OPSET, MAX_OPSET = 18, 18, 20
ALLOWED_DOMAINS = ("", "ai.onnx")
FORBIDDEN_OPS = ("Inverse",)  # com.microsoft's; a closed-form 2×2 inverse is used instead


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_supported(model: DaGAN, opset: int) -> None:
    """Refuse what this exporter cannot write correctly, before any work."""
    if not isinstance(model, DaGAN):
        raise DaganError(f"only a PyTorch DaGAN model can be exported, got {type(model).__name__}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise DaganError(f"--opset {opset} is not supported: choose {MIN_OPSET}…{MAX_OPSET} (default {DEFAULT_OPSET}; "
                         "torch.onnx writes opset 18 and up, and GridSample needs at least 16)")
    if model.config.num_channels != 3:
        raise DaganError(f"ONNX export needs RGB models (num_channels 3), this one has {model.config.num_channels}")


def export_onnx(model: DaGAN, output: str | Path, *, opset: int = DEFAULT_OPSET, force: bool = False,
                metadata: dict | None = None) -> Path:
    """Write the ONNX model directory `output` (see the module docstring); returns its path."""
    check_supported(model, opset)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise DaganError(f"{output} exists and is not a directory")
    if output.exists() and any(output.iterdir()) and not force:
        raise DaganError(f"{output} already exists; pass --force to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    param = next(model.parameters())
    if param.device.type != "cpu" or param.dtype != torch.float32 or model.training:
        model = copy.deepcopy(model).to("cpu", torch.float32).eval()  # the caller's model stays as it is
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".part", dir=output.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary directory
        graphs = {}
        specs = graph_specs(model)
        for name, module in build_graphs(model).items():
            path = tmp / f"{name}.onnx"
            export_graph(module, specs[name], path, opset)
            check_graph(path, opset)
            inputs, outputs = specs[name]
            graphs[name] = {"file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size,
                            "inputs": [s.to_dict() for s in inputs], "outputs": [s.to_dict() for s in outputs]}
        doc = {"format": FORMAT, "version": FORMAT_VERSION, "model": model.config.to_dict(), "opset": opset,
               "graphs": graphs, "exported_with": _versions(), **(metadata or {})}
        (tmp / CONFIG_NAME).write_text(json.dumps(doc, indent=2) + "\n")
        _replace_dir(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def export_graph(module: torch.nn.Module, specs: tuple[list[TensorSpec], list[TensorSpec]], path: Path,
                 opset: int) -> None:
    """torch.onnx (the torch.export-based exporter) with the batch axis dynamic, one self-contained file."""
    inputs, outputs = specs
    batch = torch.export.Dim(BATCH, min=1, max=4096)
    dynamic = tuple({0: batch} if spec.shape[0] == BATCH else None for spec in inputs)
    with _quiet(), torch.no_grad():
        try:
            torch.onnx.export(module, example_inputs(inputs), str(path), dynamo=True, opset_version=opset,
                              input_names=[s.name for s in inputs], output_names=[s.name for s in outputs],
                              dynamic_shapes=dynamic, external_data=False, optimize=True, verbose=False)
        except ImportError as exc:
            raise DaganError(f"ONNX export needs onnx and onnxscript: pip install 'dagan[onnx]' ({exc})") from None
        except Exception as exc:  # the exporter's errors are long; keep the first line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DaganError(f"exporting {path.name} failed: {first}") from None


def check_graph(path: Path, opset: int) -> None:
    """The guarantees of the module docstring, on the written file; a violation is a DaganError."""
    import onnx

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise DaganError(f"{path.name} fails onnx.checker: {str(exc).splitlines()[0]}") from None
    versions = {o.domain: o.version for o in model.opset_import}
    if versions.get("", versions.get("ai.onnx")) != opset:
        raise DaganError(f"{path.name} was written at opset {versions}, not {opset}")
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in nodes if n.domain not in ALLOWED_DOMAINS})
    if foreign or model.functions:
        raise DaganError(f"{path.name} uses non-default operators or functions: {foreign or len(model.functions)}")
    bad = sorted({n.op_type for n in nodes if n.op_type in FORBIDDEN_OPS})
    if bad:
        raise DaganError(f"{path.name} contains {bad}")
    ranks = _ranks(onnx.shape_inference.infer_shapes(model))
    for node in model.graph.node:
        if node.op_type == "GridSample" and ranks.get(node.input[0]) != 4:
            raise DaganError(f"{path.name}: GridSample {node.name} is not 4-D (rank {ranks.get(node.input[0])})")
    for value in model.graph.input:
        dim = value.type.tensor_type.shape.dim[0]
        if value.name in ("frames", "kp_value") and not dim.dim_param:
            raise DaganError(f"{path.name}: input {value.name} has a fixed batch size")


def _ranks(model) -> dict[str, int]:
    values = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values if v.type.tensor_type.HasField("shape")}


def _replace_dir(tmp: Path, output: Path) -> None:
    """Move the finished `tmp` to `output`; an old `output` is set aside first and removed last."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.{os.getpid()}.old")
        output.rename(old)
    tmp.rename(output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _versions() -> dict:
    import onnx

    from dagan import __version__

    return {"dagan": __version__, "torch": torch.__version__, "onnx": onnx.__version__}


@contextlib.contextmanager
def _quiet():
    """The exporter's warnings and registry notes (e.g. about torchvision ops) are not the user's business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
