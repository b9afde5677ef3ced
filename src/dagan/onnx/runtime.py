"""An exported ONNX model directory, loaded and checked, and the onnxruntime `Runtime` over it.

    model = OnnxModel("exported/")                     # config.json + keypoints/source/generate.onnx
    runtime = model.make_runtime("cpu", "fp32")         # what AnimationPipeline does with it
    state = runtime.prepare_source(source)              # 1×3×S×S float32 in [0, 1]

Tensors cross the boundary as float32 CPU torch tensors (the pipeline's protocol); inside they
are NumPy arrays fed to onnxruntime sessions on the chosen execution provider.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dagan.config import ModelConfig
from dagan.errors import DaganError
from dagan.geometry import Keypoints
from dagan.models.dagan import validate_images
from dagan.onnx.export import CONFIG_NAME, FORMAT, FORMAT_VERSION, sha256

GRAPHS = ("keypoints", "source", "generate")
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
OPTIMIZATION = ("disable", "basic", "extended", "all")
GPU_PACKAGE = "onnxruntime-gpu (pip uninstall onnxruntime && pip install onnxruntime-gpu)"


def is_onnx_dir(path: str | Path) -> bool:
    """True when `path` is a directory whose config.json says it is a dagan ONNX export."""
    config = Path(path) / CONFIG_NAME
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("format") == FORMAT
    except (json.JSONDecodeError, AttributeError, OSError, UnicodeDecodeError):
        return False


class OnnxModel:
    """An ONNX model directory: its config and verified graph files. Sessions come from `make_runtime`."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        config_path = self.directory / CONFIG_NAME
        if not config_path.is_file():
            raise DaganError(f"ONNX model directory {self.directory} has no {CONFIG_NAME}")
        try:
            doc = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DaganError(f"{config_path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("graphs"), dict):
            raise DaganError(f"{config_path} is not a dagan ONNX config (no 'format': '{FORMAT}' / 'graphs')")
        if doc.get("version", 0) > FORMAT_VERSION:
            raise DaganError(f"{config_path} has format version {doc['version']}; this dagan reads up to {FORMAT_VERSION}")
        self.doc = doc
        self.config = ModelConfig.from_dict(doc.get("model", {}))
        self.graphs = {}
        for name in GRAPHS:
            entry = doc["graphs"].get(name)
            if not isinstance(entry, dict) or "file" not in entry or "sha256" not in entry:
                raise DaganError(f"{config_path} describes no '{name}' graph")
            self.graphs[name] = entry
            self._check_file(name, entry)
            self._check_interface(name, entry, config_path)

    def _check_file(self, name: str, entry: dict) -> None:
        path = self.directory / entry["file"]
        if not path.is_file():
            raise DaganError(f"ONNX model directory {self.directory} is missing {entry['file']}")
        size = path.stat().st_size
        if "bytes" in entry and size != entry["bytes"]:
            raise DaganError(f"{path} has {size} bytes, config.json says {entry['bytes']} (truncated or replaced?)")
        if sha256(path) != entry["sha256"]:
            raise DaganError(f"{path} does not match the sha256 in config.json (modified, or from another export)")

    def _check_interface(self, name: str, entry: dict, config_path: Path) -> None:
        """The described shapes must be those the model config implies (a hand-edited config is caught)."""
        s, k = self.config.image_size, self.config.num_kp
        expected = {"frames": [3, s, s], "source": [3, s, s], "depth": [1, s, s], "kp_value": [k, 2],
                    "prediction": [3, s, s]}
        for spec in entry.get("inputs", []) + entry.get("outputs", []):
            want = expected.get(spec.get("name"))
            if want is not None and spec.get("shape", [None])[1:] != want:
                raise DaganError(f"{config_path}: {entry['file']} {spec['name']} has shape {spec['shape']}, "
                                 f"but the model config implies [*, {', '.join(map(str, want))}] (a different config)")

    @property
    def description(self) -> str:
        note = self.doc.get("description")
        return f"ONNX model {self.directory}" + (f" ({note})" if note else "")

    def make_runtime(self, device: str = "auto", precision: str = "fp32", *, threads: int | None = None,
                     optimization: str = "all") -> "OnnxRuntime":
        """onnxruntime sessions for the three graphs on `device` (auto, cpu, cuda[:N], tensorrt[:N]);
        `threads` intra-op threads per session (default: `torch.get_num_threads()`)."""
        if precision != "fp32":
            raise DaganError(f"ONNX models run in fp32; --precision {precision} is for PyTorch model directories")
        return OnnxRuntime(self, device, threads=threads, optimization=optimization)


def execution_providers(device: str, available: list[str]) -> list:
    """onnxruntime providers for a --device name; a missing provider names the package to install."""
    kind, _, index = device.partition(":")
    if kind == "auto":
        return [PROVIDERS["cuda"], PROVIDERS["cpu"]] if PROVIDERS["cuda"] in available else [PROVIDERS["cpu"]]
    if kind not in PROVIDERS or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise DaganError(f"unknown device {device!r} for an ONNX model; choose auto, cpu, cuda, cuda:N, tensorrt "
                         "or tensorrt:N")
    if PROVIDERS[kind] not in available:
        extra = " and TensorRT (pip install tensorrt)" if kind == "tensorrt" else ""
        raise DaganError(f"--device {device}: this onnxruntime has no {PROVIDERS[kind]} "
                         f"(it has {', '.join(available)}); install {GPU_PACKAGE}{extra}")
    options = {"device_id": int(index or 0)}
    chain = {"cpu": [], "cuda": ["cuda"], "tensorrt": ["tensorrt", "cuda"]}[kind]
    return [(PROVIDERS[k], options) for k in chain] + [PROVIDERS["cpu"]]


@dataclass
class OnnxSourceState:
    """The per-photo work: the source, its depth and keypoints (torch), its encoder features (NumPy)."""

    image: np.ndarray  # 1×3×S×S
    depth: torch.Tensor  # 1×1×S×S
    keypoints: Keypoints
    features: dict[str, np.ndarray]  # image_features, depth_features: 1×C×h×w


class OnnxRuntime:
    """The pipeline's `Runtime` (dagan.inference.runtime) on onnxruntime sessions."""

    precision = "fp32"

    def __init__(self, model: OnnxModel, device: str = "auto", *, threads: int | None = None,
                 optimization: str = "all"):
        try:
            import onnxruntime as ort
        except ImportError:
            raise DaganError("running an ONNX model needs onnxruntime: pip install 'dagan[onnx]'") from None
        if optimization not in OPTIMIZATION:
            raise DaganError(f"unknown graph optimisation level {optimization!r}; choose {', '.join(OPTIMIZATION)}")
        self.model = model
        self.config = model.config
        self.device = torch.device("cpu")  # where tensors cross the boundary; the provider runs the graphs
        providers = execution_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        # as many threads as torch runs (its default: one per core); ONNX Runtime's own default
        # ignores a process that has asked torch for fewer, and its spinning threads then fight them
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        self.sessions = {}
        for name, entry in model.graphs.items():
            path = model.directory / entry["file"]
            try:
                self.sessions[name] = ort.InferenceSession(str(path), sess_options=options, providers=providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise DaganError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
        used = self.sessions["generate"].get_providers()
        wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        if wanted not in used:
            raise DaganError(f"--device {device}: onnxruntime could not start {wanted} (CUDA/cuDNN libraries "
                             f"missing?) and fell back to {used[0]}; see the onnxruntime-gpu install notes")
        self.providers = used
        self.jacobian = self.config.keypoint.estimate_jacobian

    def _run(self, name: str, feed: dict) -> list[np.ndarray]:
        return self.sessions[name].run(None, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feed.items()})

    def _keypoints(self, frames: torch.Tensor, name: str) -> tuple[np.ndarray, np.ndarray, Keypoints]:
        frames = validate_images(frames, self.config, name).detach().to("cpu", torch.float32).numpy()
        depth, value, *jac = self._run("keypoints", {"frames": frames})
        kp = Keypoints(torch.from_numpy(value), torch.from_numpy(jac[0]) if jac else None)
        return frames, depth, kp

    def prepare_source(self, source: torch.Tensor) -> OnnxSourceState:
        """1×3×S×S in [0, 1] → the source state (depth, keypoints, features), once per photo."""
        if isinstance(source, torch.Tensor) and source.dim() == 4 and source.shape[0] != 1:
            raise DaganError(f"source must be a single image (1×3×H×W), got batch {source.shape[0]}")
        image, depth, kp = self._keypoints(source, "source")
        image_features, depth_features = self._run("source", {"source": image, "source_depth": depth})
        return OnnxSourceState(image, torch.from_numpy(depth), kp,
                               {"image_features": image_features, "depth_features": depth_features})

    def driving_keypoints(self, frames: torch.Tensor) -> tuple[torch.Tensor, Keypoints]:
        """B×3×S×S → depth B×1×S×S, Keypoints (B×K×2, B×K×2×2)."""
        _, depth, kp = self._keypoints(frames, "frames")
        return torch.from_numpy(depth), kp

    def generate(self, state: OnnxSourceState, kp_norm: Keypoints) -> torch.Tensor:
        """Normalised driving keypoints (batch B) → B×3×S×S in [0, 1]."""
        feed = {"source": state.image, "source_kp_value": state.keypoints.value.numpy(), **state.features,
                "kp_value": kp_norm.value.detach().cpu().numpy()}
        if self.jacobian:
            feed["source_kp_jacobian"] = state.keypoints.jacobian.numpy()
            feed["kp_jacobian"] = kp_norm.jacobian.detach().cpu().numpy()
        (prediction,) = self._run("generate", feed)
        return torch.from_numpy(prediction).clamp_(0, 1)
