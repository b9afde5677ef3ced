"""The three exported graphs, as torch modules over a loaded `DaGAN`, and their interface.

The work splits three ways, and so do the graphs (no network is stored twice):

    keypoints.onnx   frames B×3×S×S            → depth B×1×S×S, kp_value B×K×2, kp_jacobian B×K×2×2
    source.onnx      source 1×3×S×S, its depth → image_features 1×C×h×w, depth_features 1×C×h×w
    generate.onnx    source, its keypoints and features, normalised driving keypoints (batch B)
                                               → prediction B×3×S×S

A photo costs keypoints + source once; each batch of driving frames costs keypoints + generate.
Keypoint normalisation (relative motion, convex-hull scale, smoothing) runs between the two
per-frame graphs, outside them, in NumPy or torch: it needs the convex hull of the keypoints (no
ONNX operator), and the pipeline changes the keypoints there anyway (smoothing, best frame).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from dagan.geometry import Keypoints
from dagan.models import DaGAN
from dagan.models.generator import SourceFeatures

BATCH = "batch"  # the name of the dynamic axis


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: shape (ints, or "batch" for the dynamic axis), dtype, value range."""

    name: str
    shape: tuple
    range: tuple  # (low, high); None where unbounded
    dtype: str = "float32"
    meaning: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "range": list(self.range),
                "meaning": self.meaning}


class KeypointsGraph(nn.Module):
    """frames B×3×S×S in [0, 1] → depth B×1×S×S, kp_value B×K×2 (, kp_jacobian B×K×2×2)."""

    def __init__(self, model: DaGAN):
        super().__init__()
        self.depth = model.depth
        self.keypoint_detector = model.keypoint_detector
        self.use_depth = model.config.keypoint.use_depth

    def forward(self, frames: torch.Tensor):
        depth = self.depth(frames)[0]  # B×1×S×S, the finest of the disparity scales
        kp = self.keypoint_detector(torch.cat([frames, depth], dim=1) if self.use_depth else frames)
        return (depth, kp.value) if kp.jacobian is None else (depth, kp.value, kp.jacobian)


class SourceGraph(nn.Module):
    """source 1×3×S×S, source_depth 1×1×S×S → image_features, depth_features (each 1×C×h×w)."""

    def __init__(self, model: DaGAN):
        super().__init__()
        self.generator = model.generator

    def forward(self, source: torch.Tensor, source_depth: torch.Tensor):
        features = self.generator.encode_source(source, source_depth)
        return features.image, features.depth


class GenerateGraph(nn.Module):
    """Source state + normalised driving keypoints (batch B) → prediction B×3×S×S in [0, 1].

    Inputs: source 1×3×S×S, source_kp_value 1×K×2, source_kp_jacobian 1×K×2×2, image_features and
    depth_features 1×C×h×w, kp_value B×K×2, kp_jacobian B×K×2×2.

    The attention runs in its explicit form (`return_attention=True`: MatMul and Softmax), which
    every runtime has, rather than whichever fused kernel PyTorch picks.
    """

    def __init__(self, model: DaGAN):
        super().__init__()
        self.generator = without_spectral_norm(model.generator)

    def forward(self, source, source_kp_value, source_kp_jacobian, image_features, depth_features, kp_value,
                kp_jacobian):
        out = self.generator(source, Keypoints(kp_value, kp_jacobian), Keypoints(source_kp_value, source_kp_jacobian),
                             source_features=SourceFeatures(image_features, depth_features), return_attention=True)
        return out["prediction"]


class GenerateGraphNoJacobian(GenerateGraph):
    """`GenerateGraph` for models without jacobians (keypoint.estimate_jacobian false)."""

    def forward(self, source, source_kp_value, image_features, depth_features, kp_value):
        return super().forward(source, source_kp_value, None, image_features, depth_features, kp_value, None)


def without_spectral_norm(module: nn.Module) -> nn.Module:
    """A copy with spectral norm folded into plain weights (weight_orig/σ, σ from the stored u, v).

    In eval mode this is what the spectral-norm hook computes on every call, so it is exact.
    """
    module = copy.deepcopy(module)
    for sub in module.modules():
        for hook in list(sub._forward_pre_hooks.values()):
            if type(hook).__name__ == "SpectralNorm":
                torch.nn.utils.remove_spectral_norm(sub, name=hook.name)
    return module


def build_graphs(model: DaGAN) -> dict[str, nn.Module]:
    return {"keypoints": KeypointsGraph(model).eval(), "source": SourceGraph(model).eval(),
            "generate": (GenerateGraph if model.config.keypoint.estimate_jacobian else GenerateGraphNoJacobian)(model).eval()}


def graph_specs(model: DaGAN) -> dict[str, tuple[list[TensorSpec], list[TensorSpec]]]:
    """(inputs, outputs) of each graph, in call order, for `config.json` and the runtime's checks."""
    cfg = model.config
    s, k, jac = cfg.image_size, cfg.num_kp, cfg.keypoint.estimate_jacobian
    c = model.generator.image_encoder.out_channels
    h = s // 2**cfg.generator.num_down_blocks
    img, unit, coords, free, pos = (0.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (None, None), (0.0, None)

    def kp(prefix: str, batch, who: str) -> list[TensorSpec]:
        out = [TensorSpec(f"{prefix}kp_value", (batch, k, 2), coords, meaning=f"{who} keypoints (x, y)")]
        if jac:
            out.append(TensorSpec(f"{prefix}kp_jacobian", (batch, k, 2, 2), free,
                                  meaning=f"{who} keypoints' local 2×2 affine frames"))
        return out

    frames = TensorSpec("frames", (BATCH, 3, s, s), img, meaning="RGB frames (or the source), NCHW")
    depth = TensorSpec("depth", (BATCH, 1, s, s), unit, meaning="sigmoid disparity (DaGAN's depth)")
    source = TensorSpec("source", (1, 3, s, s), img, meaning="the source photo, RGB, NCHW")
    source_depth = TensorSpec("source_depth", (1, 1, s, s), unit, meaning="the source's depth from keypoints.onnx")
    features = [TensorSpec("image_features", (1, c, h, h), pos, meaning="encoded source image"),
                TensorSpec("depth_features", (1, c, h, h), pos, meaning="encoded source depth")]
    prediction = TensorSpec("prediction", (BATCH, 3, s, s), img, meaning="generated frames, RGB, NCHW")
    return {
        "keypoints": ([frames], [depth, *kp("", BATCH, "detected")]),
        "source": ([source, source_depth], features),
        "generate": ([source, *kp("source_", 1, "source"), *features, *kp("", BATCH, "normalised driving")],
                     [prediction]),
    }


def example_inputs(specs: list[TensorSpec], batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Deterministic tensors of the given specs (batch `batch` on the dynamic axis), inside their ranges."""
    g = torch.Generator().manual_seed(0)
    out = []
    for spec in specs:
        shape = tuple(batch if d == BATCH else d for d in spec.shape)
        x = torch.rand(shape, generator=g)
        if spec.name.endswith("kp_jacobian"):
            x = torch.eye(2).expand(shape) + 0.1 * (x - 0.5)
        elif spec.range == (-1.0, 1.0):
            x = 1.6 * x - 0.8
        out.append(x)
    return tuple(out)
