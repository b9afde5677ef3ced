"""Training configs for both stages: typed, frozen dataclasses; presets by name; YAML; `--set` overrides.

* `DepthTrainConfig`: stage 1 (`dagan train-depth`), the depth and pose networks (Face-Depth-Network).
* `TrainConfig`: stage 2 (`dagan train`), keypoint detector + generator + discriminator.

Dataclass defaults are the paper's run (preset `vox-256`); preset `tiny` is 64×64 for CPU tests.
A YAML file is a serialised instance: top-level keys are field names, missing keys take the
defaults, unknown keys are errors. `model:` is either a model preset name (`tiny`) or a mapping of
`dagan.config.ModelConfig` fields. Overrides are dotted `key=value` strings whose value is coerced
to the field's type (`batch_size=8`, `lr_generator=1e-4`, `loss_weights.perceptual=[1,1,1,1,1]`,
`model.num_kp=10`, `model=tiny`, `vgg19_weights=none`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from dagan.config import ModelConfig, get_preset
from dagan.errors import DaganError
from dagan.losses.objective import LossWeights

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TransformConfig:
    """Random affine + thin-plate-spline warp of the equivariance losses (`train_params.transform_params`)."""

    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise DaganError(message)


def _check_common(cfg) -> None:
    _check(cfg.batch_size >= 1, f"batch_size must be ≥ 1, got {cfg.batch_size}")
    _check(cfg.num_workers >= 0, f"num_workers must be ≥ 0, got {cfg.num_workers}")
    _check(cfg.num_repeats >= 1, f"num_repeats must be ≥ 1, got {cfg.num_repeats}")
    _check(cfg.epochs >= 1, f"epochs must be ≥ 1, got {cfg.epochs}")
    _check(cfg.max_steps is None or cfg.max_steps >= 1, f"max_steps must be ≥ 1 or null, got {cfg.max_steps}")
    for name in ("log_every", "image_every", "checkpoint_every", "keep_last"):
        _check(getattr(cfg, name) >= 1, f"{name} must be ≥ 1, got {getattr(cfg, name)}")
    _check(len(cfg.betas) == 2 and all(0 <= b < 1 for b in cfg.betas),
           f"betas must be two numbers in [0, 1), got {cfg.betas}")
    _check(cfg.lr_gamma > 0, f"lr_gamma must be positive, got {cfg.lr_gamma}")
    _check(cfg.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    _check(cfg.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, got {cfg.device!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Stage 2: `dagan train`. Defaults are `config/vox-adv-256.yaml` with the released model (15 keypoints,
    RGB-D keypoint detector). `batch_size` is per process (the global batch is batch_size × processes)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    # data (the README's run: --batchsize 12 per GPU on 8 GPUs; the YAML's 4 is overridden by it)
    batch_size: int = 12
    num_workers: int = 4
    id_sampling: bool = True
    augment: bool = True
    num_repeats: int = 75
    # schedule
    epochs: int = 150
    max_steps: int | None = None  # stop after this many optimisation steps (default: epochs × steps per epoch)
    # optimisation: Adam per network, MultiStepLR over epochs (no milestones = constant, as the original)
    lr_generator: float = 2e-4
    lr_keypoint_detector: float = 2e-4
    lr_discriminator: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    # losses
    loss_weights: LossWeights = field(default_factory=LossWeights)
    perceptual_scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    transform: TransformConfig = field(default_factory=TransformConfig)
    vgg19_weights: str | None = None  # torchvision's vgg19-dcbb9e9d.pth; default: the torch hub cache
    vgg19_download: bool = False  # allow downloading it into the torch hub cache
    allow_random_vgg: bool = False  # smoke runs only: a perceptual loss on random VGG features is meaningless
    # logging and checkpoints (in optimisation steps)
    log_every: int = 100
    image_every: int = 1000
    checkpoint_every: int = 2000
    keep_last: int = 3
    # reproducibility and hardware
    seed: int = 0
    precision: str = "auto"  # auto: bf16 (or fp16) autocast on CUDA, fp32 on CPU
    device: str = "auto"

    def __post_init__(self):
        _check_common(self)
        for name in ("lr_generator", "lr_keypoint_detector", "lr_discriminator"):
            _check(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        _check(len(self.perceptual_scales) >= 1, "perceptual_scales must not be empty")
        _check(all(0 < s <= 1 for s in self.perceptual_scales),
               f"perceptual_scales must be in (0, 1], got {self.perceptual_scales}")
        w = self.loss_weights
        _check(len(w.perceptual) == 5,
               f"loss_weights.perceptual needs 5 weights (VGG relu1_1…relu5_1), got {len(w.perceptual)}")
        blocks = self.model.discriminator.num_blocks
        _check(
            len(w.feature_matching) == blocks,
            f"loss_weights.feature_matching needs one weight per discriminator block ({blocks}), "
            f"got {len(w.feature_matching)}",
        )
        _check(
            any(v != 0 for v in (*w.perceptual, w.generator_gan, *w.feature_matching, w.equivariance_value,
                                 w.equivariance_jacobian, w.keypoint_distance)),
            "every generator loss weight is 0: nothing to train",
        )
        t = self.transform
        _check(t.sigma_affine >= 0 and t.sigma_tps >= 0 and t.points_tps >= 1, f"bad transform parameters {t}")

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


@dataclass(frozen=True)
class DepthTrainConfig:
    """Stage 1: `dagan train-depth` (Face-Depth-Network, a monodepth2 fork). The depth and pose networks
    come from `model.depth` and `model.pose`, the resolution from `model.image_size`; the number of
    loss scales is `model.depth.num_scales` (4). Adam lr 1e-4 with StepLR(15 epochs, ×0.1), 20 epochs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    # data: target frame first, then its neighbours (offsets in frames)
    batch_size: int = 32
    num_workers: int = 4
    augment: bool = True
    num_repeats: int = 1
    frame_offsets: tuple[int, ...] = (0, -1, 1)
    # schedule
    epochs: int = 20
    max_steps: int | None = None
    # optimisation: one Adam over the depth and pose networks, StepLR over epochs
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    lr_step: int = 15
    lr_gamma: float = 0.1
    # loss: alpha·(1 − SSIM)/2 + (1 − alpha)·L1, per-pixel min + auto-mask, smoothness/2^s
    alpha: float = 0.85
    smoothness: float = 1e-3
    min_depth: float = 0.1
    max_depth: float = 100.0
    automask: bool = True
    # The original truncates K to whole pixels (`K.trunc()`), which also zeroes K's gradient so its
    # intrinsics heads never learn; False (default) keeps K differentiable: the intrinsics are learned.
    truncate_intrinsics: bool = False
    # logging and checkpoints (in optimisation steps)
    log_every: int = 100
    image_every: int = 1000
    checkpoint_every: int = 2000
    keep_last: int = 3
    # reproducibility and hardware
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"

    def __post_init__(self):
        _check_common(self)
        _check(self.lr > 0, f"lr must be positive, got {self.lr}")
        _check(self.lr_step >= 1, f"lr_step must be ≥ 1, got {self.lr_step}")
        offsets = self.frame_offsets
        _check(
            len(offsets) >= 2 and offsets[0] == 0 and 0 not in offsets[1:] and len(set(offsets)) == len(offsets),
            f"frame_offsets must start with 0 followed by distinct non-zero neighbours, got {offsets}",
        )
        _check(0 <= self.alpha <= 1, f"alpha must be in [0, 1], got {self.alpha}")
        _check(self.smoothness >= 0, f"smoothness must be ≥ 0, got {self.smoothness}")
        _check(0 < self.min_depth < self.max_depth,
               f"need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        size = self.model.image_size
        _check(size % 32 == 0, f"model.image_size must be a multiple of 32 for the ResNet depth network, got {size}")

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


AnyTrainConfig = Union[TrainConfig, DepthTrainConfig]

# ---------------------------------------------------------------------------------------- presets


def _train_vox256() -> TrainConfig:
    return TrainConfig(model=get_preset("vox-256"))


def _train_tiny() -> TrainConfig:
    """64×64, 5 keypoints, narrow blocks, batch 2, no workers, logs every step: seconds per step on CPU.

    The perceptual pyramid stops at ¼: VGG-19's relu5_1 needs ≥ 16 pixels (64 · ⅛ = 8 is too small).
    """
    model = get_preset("tiny")
    return TrainConfig(
        model=model,
        batch_size=2,
        num_workers=0,
        num_repeats=4,
        epochs=10,
        loss_weights=LossWeights(feature_matching=(10.0,) * model.discriminator.num_blocks),
        perceptual_scales=(1.0, 0.5, 0.25),
        log_every=1,
        image_every=10,
        checkpoint_every=5,
        keep_last=2,
        precision="fp32",
    )


def _depth_vox256() -> DepthTrainConfig:
    # Face-Depth-Network README: --batch_size 32 --height 256 --width 256, ResNet-18 (num_layers default).
    return DepthTrainConfig(model=get_preset("vox-256"))


def _depth_tiny() -> DepthTrainConfig:
    return DepthTrainConfig(
        model=get_preset("tiny"),
        batch_size=2,
        num_workers=0,
        num_repeats=4,
        epochs=10,
        log_every=1,
        image_every=10,
        checkpoint_every=5,
        keep_last=2,
        precision="fp32",
    )


TRAIN_PRESETS = {"vox-256": _train_vox256, "tiny": _train_tiny}
DEPTH_PRESETS = {"vox-256": _depth_vox256, "tiny": _depth_tiny}
_PRESETS = {TrainConfig: TRAIN_PRESETS, DepthTrainConfig: DEPTH_PRESETS}


def get_train_preset(name: str) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise DaganError(f"unknown training preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}")
    return TRAIN_PRESETS[name]()


def get_depth_preset(name: str) -> DepthTrainConfig:
    if name not in DEPTH_PRESETS:
        raise DaganError(f"unknown depth-training preset {name!r}; choose one of {', '.join(DEPTH_PRESETS)}")
    return DEPTH_PRESETS[name]()


# ---------------------------------------------------------------------------------------- loading


def load_config(cls: type, source: str | Path, overrides: Iterable[str] = ()):
    """`cls` (TrainConfig or DepthTrainConfig) from a preset name or a YAML file, then `key=value` overrides."""
    presets = _PRESETS[cls]
    text = str(source)
    path = Path(text)
    if path.is_file():
        cfg = _load_yaml(cls, path)
    elif text in presets:
        cfg = presets[text]()
    elif path.suffix in (".yaml", ".yml", ".json") or "/" in text:
        raise DaganError(f"config file {text} does not exist")
    else:
        raise DaganError(f"unknown preset {text!r} and no such file; presets: {', '.join(presets)}")
    return apply_overrides(cfg, overrides)


def _load_yaml(cls: type, path: Path):
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise DaganError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise DaganError(f"config {path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    return build(cls, data, where=str(path))


def save_config(cfg: AnyTrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically); `load_config(type(cfg), path)` gives it back."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(to_plain(cfg), sort_keys=False))
    tmp.replace(path)


def to_plain(obj: Any) -> Any:
    """Dataclasses → dicts, tuples → lists (YAML/JSON-friendly), recursively."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs (or plain dicts)."""
    pa, pb = to_plain(a), to_plain(b)
    if isinstance(pa, dict) and isinstance(pb, dict):
        out = []
        for key in list(pa) + [k for k in pb if k not in pa]:
            out += config_differences(pa.get(key), pb.get(key), f"{prefix}{key}.")
        return out
    return [] if pa == pb else [prefix.rstrip(".")]


# ------------------------------------------------------------------------------- typed building


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def build(tp: Any, value: Any, where: str = "config") -> Any:
    """Check `value` (plain YAML data) against the type `tp` and build it; DaganError on any mismatch."""
    optional, inner = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise DaganError(f"{where}: must not be null")
    tp = inner
    if tp is ModelConfig and isinstance(value, str):
        return get_preset(value)
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise DaganError(f"{where}: expected a mapping, got {type(value).__name__}")
        hints = _hints(tp)
        names = [f.name for f in dataclasses.fields(tp) if f.init]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise DaganError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; valid: {', '.join(names)}")
        kwargs = {name: build(hints[name], v, f"{where}.{name}") for name, v in value.items()}
        try:
            return tp(**kwargs)
        except DaganError as exc:
            raise DaganError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise DaganError(f"{where}: {exc}") from None
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise DaganError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise DaganError(f"{where}: expected a list of {len(args)}, got {len(value)}")
        return tuple(build(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    else:  # pragma: no cover - a field type this builder does not know
        raise DaganError(f"{where}: unsupported field type {tp}")
    raise DaganError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


# ------------------------------------------------------------------------------------ overrides

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NULL = {"null", "none", "~", ""}


def _from_text(tp: Any, text: str, where: str) -> Any:
    """Parse an override's text into plain data of type `tp` (then checked by `build`)."""
    optional, inner = _is_optional(tp)
    if optional and text.strip().lower() in _NULL:
        return None
    tp = inner
    if tp is ModelConfig:
        return text.strip() if not text.strip().startswith("{") else _yaml(text, where)
    if dataclasses.is_dataclass(tp):
        return _yaml(text, where)
    if typing.get_origin(tp) is tuple:
        stripped = text.strip()
        if stripped.startswith("[") or stripped.startswith("("):
            stripped = stripped[1:-1]
        items = [s.strip() for s in stripped.split(",") if s.strip()]
        args = typing.get_args(tp)
        elem = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        return [_from_text(elem if elem is not None else args[min(i, len(args) - 1)], s, f"{where}[{i}]")
                for i, s in enumerate(items)]
    t = text.strip()
    if tp is bool:
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise DaganError(f"{where}: expected true or false, got {text!r}")
    if tp is int:
        try:
            return int(t)
        except ValueError:
            raise DaganError(f"{where}: expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(t)
        except ValueError:
            raise DaganError(f"{where}: expected a number, got {text!r}") from None
    return text


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DaganError(f"{where}: cannot parse {text!r}: {exc}") from None


def apply_overrides(cfg: Any, overrides: Iterable[str]):
    """New config with each `dotted.key=value` applied in order (values coerced to the field types)."""
    overrides = list(overrides or ())
    if not overrides:
        return cfg
    cls = type(cfg)
    data = to_plain(cfg)
    for item in overrides:
        if "=" not in item:
            raise DaganError(f"override {item!r} is not key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or not all(parts):
            raise DaganError(f"override {item!r}: empty key")
        tp: Any = cls
        node = data
        for depth, part in enumerate(parts):
            _, tp = _is_optional(tp)
            if not dataclasses.is_dataclass(tp):
                raise DaganError(f"override {key}: {'.'.join(parts[:depth])} is not a section")
            hints = _hints(tp)
            if part not in hints:
                names = ", ".join(f.name for f in dataclasses.fields(tp))
                where = ".".join(parts[:depth]) or "config"
                raise DaganError(f"override {key}: {where} has no key {part!r}; valid: {names}")
            tp = hints[part]
            if depth < len(parts) - 1:
                if isinstance(node.get(part), str) and hints[part] is ModelConfig:
                    node[part] = to_plain(get_preset(node[part]))
                node = node[part]
        node[parts[-1]] = _from_text(tp, text, key)
    return build(cls, data, where="config")
