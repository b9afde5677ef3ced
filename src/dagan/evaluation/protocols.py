"""Evaluation protocols on a dataset (`train/`, `test/` of `<identity>#<clip>` videos or frame folders).

- pairs (DaGAN/MCNet): a list of same-identity (source frame, driving frame) pairs in the original
  CSV format; each driving frame is reconstructed from its source frame;
- video (first-order-model): every test video reconstructed from its first frame;
- cross-identity reenactment: a source frame of one identity animated by another identity's video
  (relative motion), scored by CSIM to the source and head-pose error to the driving frame.

Reconstruction uses absolute keypoints, as the original training and FOMM's reconstruction (the
source and driving frames come from the same video). Metric definitions: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from dagan.data.datasets import ClipReader, list_clips
from dagan.data.pairs import EvaluationPairs
from dagan.errors import DaganError
from dagan.evaluation.headpose import pose_error
from dagan.evaluation.landmarks import cosine_similarity, detect_face
from dagan.evaluation.metrics import METRICS, evaluate_frame
from dagan.geometry import normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.models import DaGAN

RECON_KEYS = tuple(METRICS)


def _to_tensor(frames: list[np.ndarray], size: int, device) -> torch.Tensor:
    """Frames (uint8 or float, any size) → B×3×S×S float in [0, 1]."""
    out = []
    for f in frames:
        x = torch.from_numpy(np.asarray(f, dtype=np.float32) / (255.0 if f.dtype == np.uint8 else 1.0))
        x = x.permute(2, 0, 1)[None]
        if x.shape[-2:] != (size, size):
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                                antialias=True)
        out.append(x.clamp(0, 1))
    return torch.cat(out).to(device)


def _to_numpy(images: torch.Tensor) -> list[np.ndarray]:
    return list(images.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy())


class Aggregate:
    """Means of per-item metric dicts, ignoring None; counts None per key (missing faces)."""

    def __init__(self, keys: Iterable[str]):
        self.keys = tuple(keys)
        self.sums = dict.fromkeys(self.keys, 0.0)
        self.counts = dict.fromkeys(self.keys, 0)
        self.missing = dict.fromkeys(self.keys, 0)
        self.items = 0

    def add(self, values: dict) -> None:
        self.items += 1
        for k in self.keys:
            v = values.get(k)
            if v is None:
                self.missing[k] += 1
            else:
                self.sums[k] += float(v)
                self.counts[k] += 1

    def means(self) -> dict:
        return {k: (self.sums[k] / self.counts[k] if self.counts[k] else None) for k in self.keys}


@torch.no_grad()
def reconstruct(model: DaGAN, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
    """Same-identity reconstruction with absolute keypoints: B sources and B driving frames → B frames."""
    d_src, d_drv = model.estimate_depth(source), model.estimate_depth(driving)
    kp_src = model.detect_keypoints(source, d_src)
    kp_drv = model.detect_keypoints(driving, d_drv)
    return model.generator(source, kp_drv, kp_src, d_src)["prediction"]


def evaluate_pairs(model: DaGAN, pairs: EvaluationPairs, *, batch_size: int = 8, size: int = 256, lpips=None,
                   progress: Callable[[int], None] | None = None) -> dict:
    """Metrics of driving frames reconstructed from their source frames (DaGAN/MCNet protocol)."""
    if len(pairs) == 0:
        raise DaganError("the pair list is empty")
    device = next(model.parameters()).device
    s = model.config.image_size
    agg = Aggregate(RECON_KEYS)
    rows = []
    for start in range(0, len(pairs), batch_size):
        items = [pairs[i] for i in range(start, min(start + batch_size, len(pairs)))]
        src = torch.stack([it["source"] for it in items])
        drv = torch.stack([it["driving"] for it in items])
        src = _to_tensor(_to_numpy(src), s, device)
        drv = _to_tensor(_to_numpy(drv), s, device)
        pred = reconstruct(model, src, drv)
        for it, p, t in zip(items, _to_numpy(pred), _to_numpy(drv)):
            values = evaluate_frame(p, t, size=size, lpips_model=lpips)
            agg.add(values)
            rows.append({"source": it["path_source"], "driving": it["path_driving"], **values})
        if progress:
            progress(len(items))
    return {"protocol": "pairs", "num_pairs": len(pairs), "metrics": agg.means(),
            "failed_detections": {k: agg.missing[k] for k in ("AKD", "AED")}, "per_pair": rows}


def evaluate_videos(model: DaGAN, root: str | Path, split: str = "test", *, batch_size: int = 8, size: int = 256,
                    lpips=None, max_frames: int | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Every video of `split` reconstructed from its first frame (first-order-model protocol).

    Per video: metric means over its frames; overall: the mean over videos of the per-video means.
    """
    groups = list_clips(root, split)
    clips = [c for group in groups.values() for c in group]
    device = next(model.parameters()).device
    s = model.config.image_size
    reader = ClipReader(cache_size=1)
    overall = Aggregate(RECON_KEYS)
    per_video = []
    total_frames = 0
    for clip in clips:
        n = reader.num_frames(clip)
        if max_frames:
            n = min(n, max_frames)
        source = _to_tensor([reader.frame(clip, 0)], s, device)
        agg = Aggregate(RECON_KEYS)
        per_frame = []
        for start in range(0, n, batch_size):
            frames = [reader.frame(clip, i) for i in range(start, min(start + batch_size, n))]
            drv = _to_tensor(frames, s, device)
            pred = reconstruct(model, source.expand(len(frames), -1, -1, -1), drv)
            for p, t in zip(_to_numpy(pred), _to_numpy(drv)):
                values = evaluate_frame(p, t, size=size, lpips_model=lpips)
                agg.add(values)
                per_frame.append(values)
            if progress:
                progress(len(frames))
        means = agg.means()
        overall.add(means)
        total_frames += n
        per_video.append({"video": clip.name, "frames": n, "metrics": means,
                          "failed_detections": {k: agg.missing[k] for k in ("AKD", "AED")}, "per_frame": per_frame})
    return {"protocol": "video", "num_videos": len(clips), "num_frames": total_frames, "metrics": overall.means(),
            "per_video": per_video}


def cross_identity_pairs(root: str | Path, split: str = "test", num_pairs: int = 10, seed: int = 0):
    """Reproducible (source clip, driving clip) pairs of different identities."""
    groups = list_clips(root, split)
    ids = sorted(groups)
    if len(ids) < 2:
        raise DaganError(f"cross-identity evaluation needs at least 2 identities in {Path(root) / split}, "
                         f"found {len(ids)}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num_pairs):
        a, b = rng.choice(len(ids), size=2, replace=False)
        src = groups[ids[a]][int(rng.integers(len(groups[ids[a]])))]
        drv = groups[ids[b]][int(rng.integers(len(groups[ids[b]])))]
        out.append((src, drv))
    return out


@torch.no_grad()
def evaluate_cross_identity(model: DaGAN, root: str | Path, split: str = "test", *, num_pairs: int = 10, seed: int = 0,
                            batch_size: int = 8, max_frames: int | None = None,
                            progress: Callable[[int], None] | None = None) -> dict:
    """CSIM (source vs result identity) and head-pose error (result vs driving), relative motion."""
    device = next(model.parameters()).device
    s = model.config.image_size
    reader = ClipReader(cache_size=2)
    agg = Aggregate(("CSIM", "pose_error"))
    rows = []
    for src_clip, drv_clip in cross_identity_pairs(root, split, num_pairs, seed):
        source_np = reader.frame(src_clip, 0)
        state = model.prepare_source(_to_tensor([source_np], s, device))
        src_face = detect_face(_to_numpy(state.image)[0])
        n = reader.num_frames(drv_clip)
        if max_frames:
            n = min(n, max_frames)
        kp_init = None
        scale = 1.0
        pair = Aggregate(("CSIM", "pose_error"))
        for start in range(0, n, batch_size):
            drv = _to_tensor([reader.frame(drv_clip, i) for i in range(start, min(start + batch_size, n))], s, device)
            kp = model.driving_keypoints(drv)
            if kp_init is None:
                kp_init = kp[0:1]
                scale = movement_scale(state.keypoints, kp_init)
            norm = normalize_keypoints(state.keypoints, kp, kp_init, relative=True, scale=scale)
            pred = model.generate(state, norm)["prediction"]
            for p, t in zip(_to_numpy(pred), _to_numpy(drv)):
                face, target = detect_face(p), detect_face(t)
                values = {
                    "CSIM": None if face is None or src_face is None else cosine_similarity(src_face.embedding,
                                                                                            face.embedding),
                    "pose_error": None if face is None or target is None else pose_error(face.landmarks,
                                                                                         target.landmarks, s),
                }
                pair.add(values)
                agg.add(values)
            if progress:
                progress(drv.shape[0])
        rows.append({"source": src_clip.name, "driving": drv_clip.name, "frames": n, "metrics": pair.means(),
                     "failed_detections": pair.missing["CSIM"]})
    return {"protocol": "cross-identity", "num_pairs": len(rows), "metrics": agg.means(),
            "failed_detections": agg.missing, "per_pair": rows,
            }


def markdown_report(report: dict) -> str:
    """A short markdown summary of an evaluation report."""
    lines = [f"# Evaluation of `{report.get('model', '?')}` on `{report.get('data', '?')}`", ""]
    rec = report.get("reconstruction")
    if rec:
        keys = list(rec["metrics"])
        lines += [f"## Same-identity reconstruction ({rec['protocol']} protocol)", "",
                  "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
                  "| " + " | ".join(_fmt(rec["metrics"][k]) for k in keys) + " |", ""]
        if rec["protocol"] == "video":
            lines += ["| video | frames | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
            for v in rec["per_video"]:
                lines.append(f"| {v['video']} | {v['frames']} | " + " | ".join(_fmt(v["metrics"][k]) for k in keys) + " |")
            lines.append("")
    cross = report.get("cross_identity")
    if cross:
        lines += ["## Cross-identity reenactment", "", "| CSIM ↑ | head-pose error (°) ↓ | pairs |", "|---|---|---|",
                  f"| {_fmt(cross['metrics']['CSIM'])} | {_fmt(cross['metrics']['pose_error'])} | {cross['num_pairs']} |",
                  ""]
    lines.append("Definitions: docs/metrics.md (L1, PSNR, SSIM on [0, 1] images at the evaluation size; AKD in "
                 "pixels from dlib 68-point landmarks; AED: L2 distance of dlib 128-d identity embeddings).")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
