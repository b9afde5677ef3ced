"""Shared fixtures for the training tests: a two-clip synthetic dataset, a depth directory, a tiny
feature extractor for the perceptual loss (so no VGG weights are needed), a CLI runner.

Tests use these through fixtures only (no `from conftest import`: tests/conftest.py has the same name)."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch import nn

SRC = str(Path(__file__).resolve().parents[2] / "src")


def synthetic_frames(clip: int, num_frames: int, size: int) -> list[np.ndarray]:
    """H×W×3 uint8 frames: a coloured gradient background and an 'face' ellipse with two eyes that
    moves and nods smoothly; each clip has its own colours and motion."""
    rng = np.random.default_rng(clip)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    bg = np.stack([0.3 + 0.4 * xx, 0.3 + 0.4 * yy, np.full_like(xx, 0.5)], -1) * rng.uniform(0.6, 1.0, 3)
    face_colour = rng.uniform(0.5, 1.0, 3)
    frames = []
    for t in range(num_frames):
        phase = 2 * np.pi * t / num_frames
        cx = 0.5 + 0.12 * np.sin(phase + clip)
        cy = 0.5 + 0.08 * np.cos(phase)
        ax, ay = 0.22, 0.3 + 0.03 * np.sin(2 * phase)
        img = bg.copy()
        face = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1
        img[face] = face_colour
        for ex in (-0.08, 0.08):
            eye = (xx - cx - ex) ** 2 + (yy - cy + 0.08) ** 2 <= 0.03**2
            img[eye] = (0.05, 0.05, 0.05)
        mouth = (np.abs(xx - cx) < 0.08) & (np.abs(yy - cy - 0.14) < 0.015 + 0.01 * (1 + np.sin(3 * phase)))
        img[mouth] = (0.6, 0.1, 0.1)
        frames.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps), options={"preset": "ultrafast", "crf": "5"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def make_dataset(root: Path, num_clips: int = 2, num_frames: int = 8, size: int = 64) -> Path:
    (root / "train").mkdir(parents=True, exist_ok=True)
    for c in range(num_clips):
        write_clip(root / "train" / f"id{c:02d}#clip0.mp4", synthetic_frames(c, num_frames, size))
    return root


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def depth_dir(tmp_path_factory) -> Path:
    """A depth directory with a randomly initialised tiny-preset depth network."""
    from dagan.config import get_preset
    from dagan.models import DepthNetwork
    from dagan.training import save_depth

    cfg = get_preset("tiny")
    torch.manual_seed(0)
    net = DepthNetwork(cfg.depth.num_layers, cfg.depth.num_scales)
    return save_depth(tmp_path_factory.mktemp("depth") / "model", net, cfg)


class TinyFeatures(nn.Module):
    """5 feature maps like VGG-19's relu1_1…relu5_1, from a few random convolutions."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        chans = [3, 4, 6, 8, 8, 8]
        self.convs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(5))
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.3)
                conv.bias.zero_()

    def forward(self, x):
        out, maps = x, []
        for i, conv in enumerate(self.convs):
            if i > 0:
                out = torch.nn.functional.avg_pool2d(out, 2) if min(out.shape[-2:]) >= 2 else out
            out = torch.relu(conv(out))
            maps.append(out)
        return maps


@pytest.fixture
def tiny_features():
    """A factory: tiny_features() → a new TinyFeatures; tiny_features.cls is the class."""

    def make():
        return TinyFeatures()

    make.cls = TinyFeatures
    return make


@pytest.fixture
def dagan_cli():
    return run_cli


def run_cli(args: list[str], *, timeout: float = 300, torchrun: int | None = None, env_extra=None,
            wait: bool = True):
    """`python -m dagan ARGS` (or under torch.distributed.run) in a subprocess, sources from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1" if torchrun else "2")
    env.update(env_extra or {})
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}",
               "-m", "dagan", *args]
    else:
        cmd = [sys.executable, "-m", "dagan", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
