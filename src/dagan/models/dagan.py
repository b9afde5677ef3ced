"""The DaGAN container: depth network, keypoint detector and generator, with the inference API.

Images are float tensors in [0, 1], B×3×H×W with H = W = config.image_size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dagan.config import ModelConfig
from dagan.errors import DaganError
from dagan.geometry import Keypoints, normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.models.depth import DepthNetwork
from dagan.models.discriminator import MultiScaleDiscriminator
from dagan.models.generator import DepthAwareGenerator, SourceFeatures
from dagan.models.keypoint_detector import KeypointDetector

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1


def build_keypoint_detector(cfg: ModelConfig) -> KeypointDetector:
    k = cfg.keypoint
    return KeypointDetector(
        num_kp=cfg.num_kp,
        num_channels=cfg.num_channels + (1 if k.use_depth else 0),
        block_expansion=k.block_expansion,
        max_features=k.max_features,
        num_blocks=k.num_blocks,
        temperature=k.temperature,
        scale_factor=k.scale_factor,
        estimate_jacobian=k.estimate_jacobian,
        pad=k.pad,
    )


def build_generator(cfg: ModelConfig) -> DepthAwareGenerator:
    g = cfg.generator
    d = g.dense_motion
    return DepthAwareGenerator(
        num_kp=cfg.num_kp,
        num_channels=cfg.num_channels,
        block_expansion=g.block_expansion,
        max_features=g.max_features,
        num_down_blocks=g.num_down_blocks,
        num_bottleneck_blocks=g.num_bottleneck_blocks,
        estimate_occlusion_map=g.estimate_occlusion_map,
        dense_motion=dict(block_expansion=d.block_expansion, max_features=d.max_features, num_blocks=d.num_blocks,
                          scale_factor=d.scale_factor, kp_variance=d.kp_variance),
        decoder=g.kind,
        spade_hidden=g.spade_hidden,
        spade_out_features=g.spade_out_features,
        spade_compress=g.spade_compress,
    )


def build_discriminator(cfg: ModelConfig) -> MultiScaleDiscriminator:
    d = cfg.discriminator
    return MultiScaleDiscriminator(
        scales=d.scales, num_channels=cfg.num_channels, num_kp=cfg.num_kp, block_expansion=d.block_expansion,
        num_blocks=d.num_blocks, max_features=d.max_features, use_kp=d.use_kp, kp_variance=d.kp_variance,
    )


@dataclass
class SourceState:
    """Everything computed once per source image."""

    image: torch.Tensor  # 1×3×H×W
    depth: torch.Tensor  # 1×1×H×W
    keypoints: Keypoints
    features: SourceFeatures


class DaGAN(nn.Module):
    """Depth network + keypoint detector + generator, built from a `ModelConfig`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.generator.kind not in ("dagan", "spade"):
            raise DaganError(f"unknown generator kind {config.generator.kind!r}; choose 'dagan' or 'spade'")
        self.config = config
        self.depth = DepthNetwork(config.depth.num_layers, config.depth.num_scales, config.depth.width)
        self.keypoint_detector = build_keypoint_detector(config)
        self.generator = build_generator(config)

    # ---------------------------------------------------------------- input checks
    def check_images(self, images: torch.Tensor, name: str = "images") -> torch.Tensor:
        """Validate B×3×S×S float images in [0, 1] and move them to the model's device and dtype."""
        s = self.config.image_size
        if not isinstance(images, torch.Tensor):
            raise DaganError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != self.config.num_channels or tuple(images.shape[2:]) != (s, s):
            raise DaganError(f"{name} must have shape B×{self.config.num_channels}×{s}×{s}, got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise DaganError(f"{name} must be a float tensor in [0, 1], got {images.dtype}")
        if images.shape[0] == 0:
            raise DaganError(f"{name} is empty")
        lo, hi = float(images.min()), float(images.max())
        if not (lo >= -1e-3 and hi <= 1 + 1e-3):
            raise DaganError(f"{name} must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}] (divide uint8 by 255)")
        param = next(self.parameters())
        return images.to(device=param.device, dtype=param.dtype)

    # ---------------------------------------------------------------- components
    def estimate_depth(self, images: torch.Tensor, all_scales: bool = False):
        """B×3×H×W → B×1×H×W sigmoid disparity (the "depth" DaGAN uses), or all scales as a list."""
        disps = self.depth(self.check_images(images))
        return disps if all_scales else disps[0]

    def detect_keypoints(self, images: torch.Tensor, depth: torch.Tensor | None = None) -> Keypoints:
        """B×3×H×W (+ B×1×H×W depth) → Keypoints(value B×K×2, jacobian B×K×2×2)."""
        images = self.check_images(images)
        if self.config.keypoint.use_depth:
            if depth is None:
                depth = self.depth(images)[0]  # images are checked already
            if depth.shape != (images.shape[0], 1, *images.shape[2:]):
                raise DaganError(f"depth must have shape {(images.shape[0], 1, *images.shape[2:])}, got {tuple(depth.shape)}")
            images = torch.cat([images, depth.to(images)], dim=1)
        return self.keypoint_detector(images)

    def prepare_source(self, source: torch.Tensor) -> SourceState:
        """Depth, keypoints and encoder features of a 1×3×H×W source, computed once."""
        source = self.check_images(source, "source")
        if source.shape[0] != 1:
            raise DaganError(f"source must be a single image (1×3×H×W), got batch {source.shape[0]}")
        depth = self.depth(source)[0]
        kp = self.detect_keypoints(source, depth)
        return SourceState(source, depth, kp, self.generator.encode_source(source, depth))

    def driving_keypoints(self, frames: torch.Tensor) -> Keypoints:
        """Keypoints of B×3×H×W driving frames, their depth estimated on the way."""
        return self.detect_keypoints(frames)

    def generate(self, state: SourceState, kp_driving: Keypoints, return_attention: bool = False) -> dict:
        """Generator outputs for a batch of (already normalised) driving keypoints."""
        return self.generator(state.image, kp_driving, state.keypoints, source_features=state.features,
                              return_attention=return_attention)

    # ---------------------------------------------------------------- animation
    @torch.no_grad()
    def animate(
        self,
        source: torch.Tensor,
        driving: torch.Tensor,
        relative: bool = True,
        adapt_movement_scale: bool = True,
        initial: torch.Tensor | None = None,
        batch_size: int = 8,
    ) -> torch.Tensor:
        """Animate a 1×3×H×W source with T×3×H×W driving frames → T×3×H×W predictions.

        relative: motion relative to the first driving frame (or `initial`), scaled by the ratio of
        the keypoints' convex-hull areas when `adapt_movement_scale`; otherwise absolute keypoints.
        """
        driving = self.check_images(driving, "driving")
        state = self.prepare_source(source)
        kp_initial = self.driving_keypoints(driving[:1] if initial is None else initial)
        scale = movement_scale(state.keypoints, kp_initial) if (relative and adapt_movement_scale) else 1.0
        outputs = []
        for start in range(0, driving.shape[0], batch_size):
            kp = self.driving_keypoints(driving[start : start + batch_size])
            kp_norm = normalize_keypoints(state.keypoints, kp, kp_initial, relative=relative, scale=scale)
            outputs.append(self.generate(state, kp_norm)["prediction"])
        return torch.cat(outputs)

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, directory: str | Path, metadata: dict | None = None) -> Path:
        """Write `config.json` and `model.safetensors` (atomically) into `directory`."""
        from safetensors.torch import save_file

        if getattr(self, "inference_precision", None) is not None:
            raise DaganError("this is an inference form (dagan.inference.optimize), which is never saved; "
                             "save the model it was derived from")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        tmp = directory / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "dagan", "version": str(FORMAT_VERSION)})
        tmp.replace(directory / WEIGHTS_NAME)
        doc = {"format": "dagan", "version": FORMAT_VERSION, "model": self.config.to_dict(), **(metadata or {})}
        tmp = directory / (CONFIG_NAME + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(directory / CONFIG_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "DaGAN":
        """Load a directory written by `save_pretrained` (or `dagan convert`), in eval mode."""
        directory = Path(directory)
        config = load_model_config(directory)
        model = cls(config)
        weights = directory / WEIGHTS_NAME
        load_strict(model, read_weights(weights, f"model directory {directory}"), str(weights))
        return model.to(device).eval()


def read_weights(path: Path, owner: str) -> dict:
    """A safetensors state dict; a missing, truncated or foreign file is one clear DaganError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise DaganError(f"{owner} has no {path.name}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise DaganError(f"cannot read {path}: {exc} (truncated or not a safetensors file?)") from None


def load_model_config(directory: Path) -> ModelConfig:
    if not directory.is_dir():
        raise DaganError(f"model directory {directory} does not exist")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise DaganError(f"model directory {directory} has no {CONFIG_NAME}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DaganError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != "dagan" or "model" not in doc:
        raise DaganError(f"{path} is not a dagan model config (no 'format': 'dagan' / 'model')")
    if doc.get("version", 0) > FORMAT_VERSION:
        raise DaganError(f"{path} has format version {doc['version']}; this dagan reads up to {FORMAT_VERSION}")
    return ModelConfig.from_dict(doc["model"])


def load_strict(module: nn.Module, state: dict, source: str) -> None:
    """load_state_dict(strict=True) with shape checks reported as one clear DaganError."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if bad:
            k = bad[0]
            parts.append(f"{len(bad)} with wrong shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise DaganError(f"weights in {source} do not match the config: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
