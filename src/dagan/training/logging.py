"""Run logging: `metrics.jsonl`, TensorBoard scalars and image grids (rank 0 only).

`metrics.jsonl` holds one JSON object per logged step: {"step": int, <every loss term>: float, …}
plus a few non-loss fields (epoch, learning rates, seconds_per_step, samples_per_second). On resume,
lines after the checkpoint's step (written by the interrupted run) and any torn last line are
dropped, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

METRICS_NAME = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The parsed lines of a metrics.jsonl, skipping a torn (unparsable) line."""
    out = []
    path = Path(path)
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "step" in obj:
            out.append(obj)
    return out


class RunLogger:
    """Writes metrics.jsonl and TensorBoard events into `run_dir`; does nothing when not `enabled`.

    resume_step: None for a fresh run (an existing metrics.jsonl is replaced), else the step of the
    checkpoint being resumed (later lines are dropped; TensorBoard events after it are purged).
    """

    def __init__(self, run_dir: str | os.PathLike, *, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS_NAME
        self.writer = None
        if not enabled:
            return
        kept = [m for m in read_metrics(self.path) if m["step"] <= resume_step] if resume_step is not None else []
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(m) + "\n" for m in kept))
        tmp.replace(self.path)
        self._file = open(self.path, "a")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # pragma: no cover - tensorboard is a dependency
                warnings.warn(f"TensorBoard logging disabled: {exc}", stacklevel=2)
            else:
                purge = None if resume_step is None else resume_step + 1
                self.writer = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR), purge_step=purge)

    def log(self, step: int, losses: Mapping[str, float], extra: Mapping[str, float] | None = None) -> None:
        """One metrics line; TensorBoard `loss/<term>` and `train/<key>` scalars."""
        if not self.enabled:
            return
        record = {"step": int(step), **{k: float(v) for k, v in losses.items()}, **dict(extra or {})}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.writer is not None:
            for key, value in losses.items():
                self.writer.add_scalar(f"loss/{key}", float(value), step)
            for key, value in (extra or {}).items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.writer.add_scalar(f"train/{key}", float(value), step)

    def image(self, step: int, tag: str, image: torch.Tensor) -> None:
        """3×H×W float image in [0, 1]."""
        if self.enabled and self.writer is not None:
            self.writer.add_image(tag, image.detach().float().clamp(0, 1).cpu(), step)

    def flush(self) -> None:
        if self.enabled and self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self._file.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def format_line(step: int, total: int, epoch: int, losses: Mapping[str, float], seconds: float) -> str:
    terms = " ".join(f"{k} {v:.4g}" for k, v in losses.items())
    return f"step {step}/{total} epoch {epoch} | {terms} | {seconds:.2f} s/step"


# ------------------------------------------------------------------------------- image grids


def _colours(n: int) -> torch.Tensor:
    """n×3 distinct colours around the hue wheel (like the original's gist_rainbow)."""
    return torch.tensor([colorsys.hsv_to_rgb(i / max(n, 1), 1.0, 1.0) for i in range(n)], dtype=torch.float32)


def draw_keypoints(images: torch.Tensor, keypoints: torch.Tensor, radius: int | None = None) -> torch.Tensor:
    """Filled coloured discs at keypoints. images: B×3×H×W in [0, 1]; keypoints: B×K×2 (x, y) in [-1, 1]
    with the corners at ±1 (make_coordinate_grid). Returns a new B×3×H×W tensor."""
    b, _, h, w = images.shape
    k = keypoints.shape[1]
    radius = radius if radius is not None else max(1, round(min(h, w) / 50))
    out = images.detach().float().clone()
    kp = keypoints.detach().float().to(out.device)
    px = (kp[..., 0] + 1) / 2 * (w - 1)  # B×K
    py = (kp[..., 1] + 1) / 2 * (h - 1)
    ys = torch.arange(h, device=out.device, dtype=out.dtype).view(1, 1, h, 1)
    xs = torch.arange(w, device=out.device, dtype=out.dtype).view(1, 1, 1, w)
    inside = (xs - px.view(b, k, 1, 1)) ** 2 + (ys - py.view(b, k, 1, 1)) ** 2 <= radius**2  # B×K×H×W
    colours = _colours(k).to(out.device)
    for i in range(k):
        mask = inside[:, i : i + 1]  # B×1×H×W
        out = torch.where(mask, colours[i].view(1, 3, 1, 1), out)
    return out


def to_rgb(maps: torch.Tensor, size: tuple[int, int] | None = None, normalize: bool = True) -> torch.Tensor:
    """B×1×h×w (depth, occlusion) → B×3×H×W grey, min-max normalised per image when `normalize`."""
    x = maps.detach().float()
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if normalize:
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - lo) / (hi - lo).clamp_min(1e-8)
    return x.clamp(0, 1).expand(-1, 3, -1, -1)


def image_grid(columns: Sequence[torch.Tensor], max_rows: int = 4, pad: int = 2) -> torch.Tensor:
    """Columns of B×3×H×W images → one 3×(rows·(H+pad))×(cols·(W+pad)) image (white padding)."""
    rows = min(max_rows, columns[0].shape[0])
    _, _, h, w = columns[0].shape
    grid = torch.ones(3, rows * (h + pad) + pad, len(columns) * (w + pad) + pad)
    for c, col in enumerate(columns):
        col = col.detach().float().cpu().clamp(0, 1)
        if col.shape[-2:] != (h, w):
            col = F.interpolate(col, size=(h, w), mode="bilinear", align_corners=False)
        for r in range(rows):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[:, y : y + h, x : x + w] = col[r]
    return grid


def is_finite_mapping(values: Mapping[str, float]) -> bool:
    return all(math.isfinite(v) for v in values.values())
