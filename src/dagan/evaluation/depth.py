"""Depth validation on synthetic clips: scale-invariant agreement with rendered ground truth.

For every clip of a split the depth network's full-resolution sigmoid disparity is turned into
depth as in training (`disp_to_depth`, min 0.1, max 100: depth = 1 / (0.01 + 9.99·disp)),
median-scaled to the truth and compared on the head mask (`depth_agreement`: abs-rel, δ < 1.25,
Pearson correlation); a flat (constant) depth map is scored the same way as the baseline. Results
are frame-weighted means over clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dagan.data.synth import load_truth
from dagan.errors import DaganError
from dagan.io import iter_frames
from dagan.losses.photometric import disp_to_depth

KEYS = ("abs_rel", "abs_rel_affine", "delta_1_25", "pearson")


def depth_agreement(pred, gt, mask, *, pred_is_disparity: bool = False) -> dict[str, float]:
    """How well a predicted depth map matches the truth up to scale, on the face mask.

    Per frame: pixels with mask, finite positive truth and finite positive prediction count;
    the prediction is inverted first if `pred_is_disparity` (DaGAN's depth network outputs a
    disparity-like map: larger = nearer), then multiplied by median(gt) / median(pred) (median
    scaling: monocular depth has no scale). Then

    * abs_rel = mean |p − g| / g,
    * delta_1_25 = share of pixels with max(p/g, g/p) < 1.25,
    * pearson = correlation of p and g (0 when either is constant: a flat map has no shape),

    averaged over frames that have at least 2 valid pixels.

    Args:
        pred, gt: H×W or T×H×W (numpy arrays or tensors); gt in any unit, background ignored.
        mask: bool, same shape: where to compare (the `mask` of the ground truth).
        pred_is_disparity: invert `pred` before scaling.

    Returns:
        {"abs_rel", "delta_1_25", "pearson", "frames"}.

    Raises:
        ValueError: shape mismatch, or no frame with valid pixels.
    """
    p = _as_frames(pred)
    g = _as_frames(gt)
    m = _as_frames(mask).astype(bool)
    if not (p.shape == g.shape == m.shape):
        raise ValueError(f"pred, gt and mask must have the same shape, got {p.shape}, {g.shape}, {m.shape}")
    rows = []
    for pf, gf, mf in zip(p, g, m):
        valid = mf & np.isfinite(gf) & (gf > 0) & np.isfinite(pf) & (pf > 0)
        if valid.sum() < 2:
            continue
        pv, gv = pf[valid], gf[valid]
        if pred_is_disparity:
            pv = 1.0 / pv
        pv = pv * (np.median(gv) / np.median(pv))
        ratio = np.maximum(pv / gv, gv / pv)
        if pv.std() > 0 and gv.std() > 0:
            pearson = float(np.corrcoef(pv, gv)[0, 1])
        else:
            pearson = 0.0
        rows.append((float(np.mean(np.abs(pv - gv) / gv)), float(np.mean(ratio < 1.25)), pearson))
    if not rows:
        raise ValueError("no frame has valid pixels (mask ∧ gt > 0 ∧ pred > 0)")
    arr = np.array(rows)
    return {
        "abs_rel": float(arr[:, 0].mean()),
        "delta_1_25": float(arr[:, 1].mean()),
        "pearson": float(arr[:, 2].mean()),
        "frames": len(rows),
    }


def flat_depth_baseline(gt, mask) -> dict[str, float]:
    """`depth_agreement` of a constant prediction (after median scaling: every pixel at the
    median depth of the face): the score a depth network must beat to have learned any shape."""
    g = _as_frames(gt)
    return depth_agreement(np.ones_like(g), g, mask)


def _as_frames(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    arr = arr.astype(np.float64) if arr.dtype != bool else arr
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected H×W or T×H×W, got shape {arr.shape}")
    return arr


def affine_abs_rel(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Mean over frames of abs-rel after a least-squares scale-and-shift fit of pred to gt on the mask.

    Median scaling fixes only the scale; with learned intrinsics, monocular self-supervision also
    leaves the depth *range* ambiguous (a longer focal length with a flatter face looks alike), so
    this affine-invariant error (as MiDaS evaluates relative depth) isolates the learned shape. A
    flat map scores the abs-rel of the mean depth.
    """
    errors = []
    for p, g, m in zip(pred, gt, mask.astype(bool)):
        valid = m & np.isfinite(p) & (g > 0)
        if valid.sum() < 2:
            continue
        a = np.stack([p[valid], np.ones(valid.sum())], axis=1)
        coef, *_ = np.linalg.lstsq(a, g[valid], rcond=None)
        errors.append(float(np.mean(np.abs(a @ coef - g[valid]) / g[valid])))
    return float(np.mean(errors)) if errors else float("nan")


@torch.no_grad()
def predict_disparity(depth_net, frames: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """T×H×W×3 uint8 → T×H×W disparity (scale 0)."""
    device = next(depth_net.parameters()).device
    out = []
    for start in range(0, len(frames), batch_size):
        x = torch.from_numpy(frames[start : start + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255
        out.append(depth_net(x)[0][:, 0].float().cpu().numpy())
    return np.concatenate(out)


def evaluate_depth(depth_net, data_dir: str | Path, split: str = "test", batch_size: int = 16) -> dict:
    """{'model': {...}, 'flat_baseline': {...}, 'clips': [...], 'frames': N} over a synthetic split."""
    root = Path(data_dir) / split
    if not root.is_dir():
        raise DaganError(f"{root} does not exist (expected a `dagan synth` dataset with {split}/)")
    clips = sorted(root.glob("*.mp4"))
    if not clips:
        raise DaganError(f"{root} holds no .mp4 clips")
    per_clip = []
    for clip in clips:
        truth = load_truth(clip)
        frames = np.stack(list(iter_frames(clip)))
        if frames.shape[:3] != truth["depth"].shape:
            raise DaganError(f"{clip}: frames {frames.shape[:3]} do not match its ground truth {truth['depth'].shape}")
        disp = predict_disparity(depth_net, frames, batch_size)
        _, depth = disp_to_depth(torch.from_numpy(disp), 0.1, 100.0)
        model = depth_agreement(depth.numpy(), truth["depth"], truth["mask"])
        model["abs_rel_affine"] = affine_abs_rel(depth.numpy().astype(np.float64), truth["depth"], truth["mask"])
        flat = flat_depth_baseline(truth["depth"], truth["mask"])
        flat["abs_rel_affine"] = affine_abs_rel(np.ones_like(truth["depth"], dtype=np.float64), truth["depth"],
                                                truth["mask"])
        per_clip.append({"clip": clip.name, "frames": model["frames"], "model": model, "flat_baseline": flat})
    total = sum(c["frames"] for c in per_clip)

    def mean(which):
        return {k: float(sum(c[which][k] * c["frames"] for c in per_clip) / total) for k in KEYS}

    return {"split": split, "frames": total, "model": mean("model"), "flat_baseline": mean("flat_baseline"),
            "clips": per_clip}
