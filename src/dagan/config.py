"""Typed, frozen configs that fully determine every network; presets by name.

A `ModelConfig` is saved as `config.json` beside the weights and is the only input of
`build_model`. YAML/JSON files are serialised instances: unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dagan.errors import DaganError


@dataclass(frozen=True)
class DepthConfig:
    """ResNet encoder + 4-scale disparity decoder (monodepth2); outputs the sigmoid disparity."""

    num_layers: int = 18  # 18 or 50
    num_scales: int = 4
    width: int = 64  # ResNet base channels; 64 = torchvision and the released depth networks


@dataclass(frozen=True)
class PoseConfig:
    """Two-frame ResNet pose encoder and pose/intrinsics decoder (depth training only)."""

    num_layers: int = 18
    width: int = 64


@dataclass(frozen=True)
class KeypointConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1
    scale_factor: float = 0.25
    use_depth: bool = True  # RGB-D input (4 channels), the released model
    estimate_jacobian: bool = True
    pad: int = 0


@dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    kp_variance: float = 0.01


@dataclass(frozen=True)
class GeneratorConfig:
    kind: str = "dagan"  # "dagan" (DepthAwareGenerator) or "spade" (SPADEDepthAwareGenerator)
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    spade_hidden: int = 128  # SPADE variant: hidden channels of each SPADE layer
    spade_out_features: int = 64  # SPADE variant: channels of the last resblock
    spade_compress: int = 4  # SPADE variant: channels of the compressed feature map in the segmap
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass(frozen=True)
class DiscriminatorConfig:
    scales: tuple[float, ...] = (1.0,)
    block_expansion: int = 32
    max_features: int = 512
    num_blocks: int = 4
    use_kp: bool = True
    kp_variance: float = 0.01


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines the DaGAN networks."""

    image_size: int = 256
    num_channels: int = 3
    num_kp: int = 15
    depth: DepthConfig = field(default_factory=DepthConfig)
    keypoint: KeypointConfig = field(default_factory=KeypointConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data, "config")

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"model": self.to_dict()}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise DaganError(f"cannot read config {path}: {exc.strerror}") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise DaganError(f"config {path} is not valid {path.suffix[1:] or 'YAML'}: {exc}") from None
        if not isinstance(data, dict) or "model" not in data:
            raise DaganError(f"config {path} has no 'model' section")
        return cls.from_dict(data["model"])


def _from_dict(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise DaganError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise DaganError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        ftype = fields[name].type
        sub = _DATACLASSES.get(ftype) if isinstance(ftype, str) else None
        if sub is not None:
            kwargs[name] = _from_dict(sub, value, f"{where}.{name}")
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


_DATACLASSES = {
    c.__name__: c
    for c in (DepthConfig, PoseConfig, KeypointConfig, DenseMotionConfig, GeneratorConfig, DiscriminatorConfig)
}


def _vox256(kind: str) -> ModelConfig:
    return ModelConfig(generator=GeneratorConfig(kind=kind))


def _tiny() -> ModelConfig:
    """64×64, 5 keypoints, narrow blocks: for tests on CPU."""
    return ModelConfig(
        image_size=64,
        num_kp=5,
        depth=DepthConfig(num_layers=18),
        keypoint=KeypointConfig(block_expansion=8, max_features=32, num_blocks=3),
        generator=GeneratorConfig(
            block_expansion=8,
            max_features=32,
            num_down_blocks=2,
            num_bottleneck_blocks=1,
            spade_hidden=8,
            spade_out_features=8,
            dense_motion=DenseMotionConfig(block_expansion=8, max_features=32, num_blocks=3),
        ),
        discriminator=DiscriminatorConfig(block_expansion=8, max_features=32, num_blocks=3),
    )


def _demo128() -> ModelConfig:
    """128×128, 10 keypoints, narrow networks (≈3.6 M parameters): the bundled CPU-trained demo model."""
    return ModelConfig(
        image_size=128,
        num_kp=10,
        depth=DepthConfig(num_layers=18, width=16),
        pose=PoseConfig(num_layers=18, width=16),
        keypoint=KeypointConfig(block_expansion=16, max_features=256, num_blocks=4),
        generator=GeneratorConfig(
            block_expansion=32,
            max_features=128,
            num_down_blocks=2,
            num_bottleneck_blocks=3,
            spade_hidden=32,
            spade_out_features=32,
            dense_motion=DenseMotionConfig(block_expansion=32, max_features=128, num_blocks=4),
        ),
        discriminator=DiscriminatorConfig(block_expansion=16, max_features=128, num_blocks=4),
    )


PRESETS = {
    "demo-128": _demo128,
    "vox-256": lambda: _vox256("dagan"),
    "vox-256-spade": lambda: _vox256("spade"),
    "tiny": _tiny,
    "tiny-spade": lambda: _tiny().replace(generator=dataclasses.replace(_tiny().generator, kind="spade")),
}


def get_preset(name: str) -> ModelConfig:
    """The named preset; `vox-256` is the released model (15 keypoints, RGB-D keypoints, ResNet-18 depth)."""
    if name not in PRESETS:
        raise DaganError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
