"""What the training runs hand on: the stage-1 depth network and the stage-2 model directory.

A depth directory (`dagan train-depth` → `RUN/model/`, read by `dagan train --depth DIR`) holds
`config.json` ({"format": "dagan-depth", "version": 1, "depth": DepthConfig fields, "image_size": …})
and `model.safetensors` (the `DepthNetwork` state_dict). `load_depth` also accepts a full DaGAN model
directory (`save_pretrained` / `dagan convert`) and takes its depth network, so the released depth
network can be reused without retraining stage 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from torch import nn

from dagan.config import DepthConfig, ModelConfig
from dagan.errors import DaganError
from dagan.models.dagan import CONFIG_NAME, WEIGHTS_NAME, load_model_config, load_strict, read_weights
from dagan.models.depth import DepthNetwork

DEPTH_FORMAT = "dagan-depth"
DEPTH_VERSION = 1


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_depth(
    directory: str | os.PathLike,
    depth_net: nn.Module,
    config: ModelConfig | DepthConfig,
    metadata: dict | None = None,
) -> Path:
    """Write `config.json` + `model.safetensors` for a `DepthNetwork` (weights first, each atomically)."""
    from safetensors.torch import save_file

    depth_cfg = config.depth if isinstance(config, ModelConfig) else config
    if not isinstance(depth_cfg, DepthConfig):
        raise TypeError(f"config must be a ModelConfig or DepthConfig, got {type(config).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in depth_net.state_dict().items()}
    tmp = directory / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp), metadata={"format": DEPTH_FORMAT, "version": str(DEPTH_VERSION)})
    tmp.replace(directory / WEIGHTS_NAME)
    doc = {"format": DEPTH_FORMAT, "version": DEPTH_VERSION, "depth": dataclasses.asdict(depth_cfg)}
    if isinstance(config, ModelConfig):
        doc["image_size"] = config.image_size
    doc.update(metadata or {})
    _atomic_write_text(directory / CONFIG_NAME, json.dumps(doc, indent=2) + "\n")
    return directory


def read_depth_config(directory: str | os.PathLike) -> DepthConfig:
    """The DepthConfig of a depth directory or of a full DaGAN model directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DaganError(f"depth directory {directory} does not exist")
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise DaganError(f"depth directory {directory} has no {CONFIG_NAME} "
                         "(expected the RUN/model of dagan train-depth)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DaganError(f"{path} is not valid JSON: {exc}") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt == "dagan":
        return load_model_config(directory).depth
    if fmt != DEPTH_FORMAT or "depth" not in doc:
        raise DaganError(f"{path} is neither a dagan depth network nor a dagan model (format {fmt!r})")
    if doc.get("version", 0) > DEPTH_VERSION:
        raise DaganError(f"{path} has format version {doc['version']}; this dagan reads up to {DEPTH_VERSION}")
    try:
        return DepthConfig(**doc["depth"])
    except TypeError as exc:
        raise DaganError(f"{path}: bad depth config: {exc}") from None


def load_depth(directory: str | os.PathLike, device: str | torch.device = "cpu") -> DepthNetwork:
    """The `DepthNetwork` of a depth directory (or of a DaGAN model directory), in eval mode."""
    directory = Path(directory)
    cfg = read_depth_config(directory)
    weights = directory / WEIGHTS_NAME
    state = read_weights(weights, f"depth directory {directory}")
    if any(k.startswith("depth.") for k in state):  # a full DaGAN model: keep its depth network
        state = {k[len("depth."):]: v for k, v in state.items() if k.startswith("depth.")}
    net = DepthNetwork(cfg.num_layers, cfg.num_scales, cfg.width)
    load_strict(net, state, str(weights))
    return net.to(device).eval()
