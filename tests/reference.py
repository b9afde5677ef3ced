"""Rebuild the reference fixtures' weights (../shared/reference/README.md, recipes A and B) as
original-format files, so parity tests exercise the real loading path."""

from __future__ import annotations

import json
import math
import os
import zlib
from pathlib import Path

import torch

from dagan.nn import gaussian_kernel


def reference_dir() -> Path:
    env = os.environ.get("DAGAN_REFERENCE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def manifest() -> dict:
    return json.loads((reference_dir() / "dagan_state_dict_manifest.json").read_text())


def _draw(key: str, shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    return torch.randn(shape, generator=g, dtype=torch.float32)


def _constructed(key: str, shape, dtype: str) -> torch.Tensor:
    """The value a freshly built original module holds (only needed where a recipe keeps it)."""
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    if _is_antialias_kernel(key):
        channels, _, size, _ = shape
        scale = {13: 0.25, 5: 0.5, 29: 0.125}[size]
        kernel, _ = gaussian_kernel(scale)
        return kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1)
    raise KeyError(key)


def _is_antialias_kernel(key: str) -> bool:
    return key == "down.weight" or key.endswith(".down.weight")


def recipe_state(entries, recipe: str, num_kp: int = 15) -> dict[str, torch.Tensor]:
    """entries: manifest [key, shape, dtype, kind] rows of one model → recipe-A or -B state dict."""
    out: dict[str, torch.Tensor] = {}
    shapes = {k: s for k, s, _, _ in entries}
    for key, shape, dtype, _ in entries:
        if key.endswith("num_batches_tracked"):
            out[key] = _constructed(key, shape, dtype)
            continue
        v = _draw(key, shape)
        if recipe == "A":
            out[key] = v.abs() + 0.5 if key.endswith("running_var") else v * 0.05
            continue
        out[key] = _recipe_b(key, shape, v, shapes, num_kp)
    return out


def _recipe_b(key, shape, v, shapes, num_kp):
    name = key.rsplit(".", 1)[-1]
    fan_in = v[0].numel() if v.dim() > 0 else 1
    if _is_antialias_kernel(key):
        return _constructed(key, shape, "float32")
    if name == "running_var":
        return v.abs() + 0.5
    if key.endswith("jacobian.bias"):
        return torch.tensor([1.0, 0.0, 0.0, 1.0] * num_kp) + 0.05 * v
    if name in ("running_mean", "bias"):
        return 0.05 * v
    if key.endswith("jacobian.weight"):
        return 0.1 * v / math.sqrt(fan_in)
    if name == "gamma":
        return 1 + 0.1 * v
    if name in ("weight_u", "weight_v"):
        prefix = key[: -len(name)]
        w_key = prefix + "weight_orig"
        w = _recipe_b(w_key, shapes[w_key], _draw(w_key, shapes[w_key]), shapes, num_kp)
        u, _, vh = torch.linalg.svd(w.reshape(w.shape[0], -1).double(), full_matrices=False)
        return (u[:, 0] if name == "weight_u" else vh[0]).float()
    if v.dim() >= 2:
        return v / math.sqrt(fan_in)
    if name == "weight":
        return 1 + 0.1 * v
    raise KeyError(f"recipe B has no rule for {key}")


def write_original_files(directory: Path, recipe: str) -> dict[str, Path]:
    """Write recipe weights in the original layouts: DaGAN .pth.tar (DDP `module.` prefixes, as
    run.py saves them), SPADE .pth.tar, and monodepth2 encoder.pth (with height/width/use_stereo)
    and depth.pth."""
    models = manifest()["models"]
    state = {name: recipe_state(models[name]["state_dict"], recipe) for name in models}
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "checkpoint": directory / "DaGAN_vox_adv_256.pth.tar",
        "spade_checkpoint": directory / "SPADE_DaGAN_vox_adv_256.pth.tar",
        "depth_encoder": directory / "encoder.pth",
        "depth_decoder": directory / "depth.pth",
        "depth_encoder_r50": directory / "encoder_r50.pth",
        "depth_decoder_r50": directory / "depth_r50.pth",
    }
    prefixed = lambda sd: {"module." + k: v for k, v in sd.items()}  # noqa: E731
    torch.save({"generator": prefixed(state["generator"]), "kp_detector": prefixed(state["kp_detector"]),
                "discriminator": prefixed(state["discriminator"]), "epoch": 149}, paths["checkpoint"])
    torch.save({"generator": state["generator_spade"], "kp_detector": state["kp_detector"]}, paths["spade_checkpoint"])
    extra = {"height": 256, "width": 256, "use_stereo": False}
    torch.save({**state["depth_encoder_r18"], **extra}, paths["depth_encoder"])
    torch.save(state["depth_decoder_r18"], paths["depth_decoder"])
    torch.save({**state["depth_encoder_r50"], **extra}, paths["depth_encoder_r50"])
    torch.save(state["depth_decoder_r50"], paths["depth_decoder_r50"])
    return paths
