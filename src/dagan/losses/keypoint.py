"""Keypoint distance loss: discourage keypoints from collapsing onto each other (DaGAN).

mode="original" reproduces the official value,
    mean_{b,i,j}(1 − sign(√(‖k_i − k_j‖² + 1e-8) + t·δ_ij − t)),
i.e. 2 per ordered off-diagonal pair closer than t, divided by B·K². `torch.sign` has zero gradient,
so this term never changes the weights (it is logged but inert in the original training).

mode="hinge" (default) keeps the intent with a gradient:
    mean_{b,i,j} 2·relu(t − √(‖k_i − k_j‖² + 1e-8))/t · [i ≠ j],
same normalisation, so it equals the original when close pairs coincide and is never larger;
it decreases linearly to 0 at distance t.
Both sum the source and driving terms, as the original.
"""

import torch

from dagan.geometry.keypoints import Keypoints

MODES = ("hinge", "original")


def _pairwise_distance(value: torch.Tensor) -> torch.Tensor:
    """B×K×2 → B×K×K, √(‖k_i − k_j‖² + 1e-8) (finite gradient at 0)."""
    diff = value.unsqueeze(2) - value.unsqueeze(1)  # B×K×K×2
    return torch.sqrt((diff * diff).sum(-1) + 1e-8)


def _single(value: torch.Tensor, threshold: float, mode: str) -> torch.Tensor:
    if value.dim() != 3 or value.shape[-1] != 2:
        raise ValueError(f"keypoints must be B×K×2, got {tuple(value.shape)}")
    num_kp = value.shape[1]
    dist = _pairwise_distance(value)
    eye = torch.eye(num_kp, dtype=value.dtype, device=value.device)
    if mode == "original":
        return (1 - torch.sign(dist + eye * threshold - threshold)).mean()
    return (2 * torch.relu(threshold - dist) / threshold * (1 - eye)).mean()


def keypoint_distance_loss(
    kp_source: Keypoints | torch.Tensor,
    kp_driving: Keypoints | torch.Tensor,
    *,
    threshold: float = 0.2,
    mode: str = "hinge",
) -> torch.Tensor:
    """Source term + driving term (unweighted scalar). Accepts Keypoints or B×K×2 values."""
    if mode not in MODES:
        raise ValueError(f"keypoint distance mode must be one of {MODES}, got {mode!r}")
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    total = 0
    for kp in (kp_source, kp_driving):
        value = kp.value if isinstance(kp, Keypoints) else kp
        total = total + _single(value, threshold, mode)
    return total
