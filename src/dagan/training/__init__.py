"""Training: stage 1 (`train_depth`: depth + pose networks) and stage 2 (`train`: keypoint detector,
generator, discriminator with the frozen depth network); configs, checkpoints, logging, DDP helpers."""

from dagan.training.checkpoint import find_latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from dagan.training.config import (
    DEPTH_PRESETS,
    TRAIN_PRESETS,
    DepthTrainConfig,
    TrainConfig,
    TransformConfig,
    apply_overrides,
    get_depth_preset,
    get_train_preset,
    load_config,
    save_config,
)
from dagan.training.depth_loop import train_depth
from dagan.training.export import load_depth, read_depth_config, save_depth
from dagan.training.common import NonFiniteLossError
from dagan.training.loop import train

__all__ = [
    "DEPTH_PRESETS",
    "TRAIN_PRESETS",
    "DepthTrainConfig",
    "NonFiniteLossError",
    "TrainConfig",
    "TransformConfig",
    "apply_overrides",
    "find_latest_checkpoint",
    "get_depth_preset",
    "get_train_preset",
    "list_checkpoints",
    "load_checkpoint",
    "load_config",
    "load_depth",
    "read_depth_config",
    "save_checkpoint",
    "save_config",
    "save_depth",
    "train",
    "train_depth",
]
