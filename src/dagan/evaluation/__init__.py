"""Evaluation: the metric registry (L1, PSNR, SSIM, LPIPS, AKD, AED), face landmarks and head pose.

Definitions and their relation to the published protocols: docs/metrics.md.
"""

from dagan.evaluation.headpose import HeadPose, head_pose, pose_error
from dagan.evaluation.landmarks import (
    Face,
    cosine_similarity,
    detect_face,
    detect_landmarks,
    face_embedding,
    identity_distance,
    keypoint_distance,
)
from dagan.evaluation.lpips import LPIPS, LpipsUnavailable, find_lpips_weights, load_lpips, try_load_lpips
from dagan.evaluation.metrics import (
    METRICS,
    PSNR_CAP_DB,
    Metric,
    compute_metrics,
    evaluate_frame,
    l1,
    prepare,
    psnr,
    register_metric,
    ssim,
)

__all__ = [
    "LPIPS",
    "METRICS",
    "PSNR_CAP_DB",
    "Face",
    "HeadPose",
    "LpipsUnavailable",
    "Metric",
    "compute_metrics",
    "cosine_similarity",
    "detect_face",
    "detect_landmarks",
    "evaluate_frame",
    "face_embedding",
    "find_lpips_weights",
    "head_pose",
    "identity_distance",
    "keypoint_distance",
    "l1",
    "load_lpips",
    "pose_error",
    "prepare",
    "psnr",
    "register_metric",
    "ssim",
    "try_load_lpips",
]
