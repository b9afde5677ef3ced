"""Coordinate grids in the FOMM convention: x, y in [-1, 1] with the corner pixels exactly at ±1.

`grid_sample` is always called with `align_corners=False` (the original's implicit default), so a
grid from `make_coordinate_grid` is *not* the identity for `grid_sample`: this is a quirk of the
original that the released weights were trained with, kept for parity.
"""

import torch
import torch.nn.functional as F


def make_coordinate_grid(height: int, width: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """H×W×2 grid of (x, y) with x = 2j/(W-1) - 1 and y = 2i/(H-1) - 1."""
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    yy = y.view(-1, 1).expand(height, width)
    xx = x.view(1, -1).expand(height, width)
    return torch.stack([xx, yy], dim=2)


def keypoint_gaussians(value: torch.Tensor, height: int, width: int, variance: float) -> torch.Tensor:
    """Unnormalised Gaussians exp(-|z - kp|² / 2σ²) around keypoints.

    value: ...×K×2 → ...×K×H×W.
    """
    grid = make_coordinate_grid(height, width, dtype=value.dtype, device=value.device)
    diff = grid - value[..., None, None, :]  # ...×K×H×W×2
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


def heatmap_to_keypoints(heatmap: torch.Tensor) -> torch.Tensor:
    """Expected coordinate of each softmax heatmap: B×K×H×W → B×K×2."""
    _, _, h, w = heatmap.shape
    grid = make_coordinate_grid(h, w, dtype=heatmap.dtype, device=heatmap.device)
    return (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))


def warp(inp: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Sample B×C×H×W `inp` at a B×h×w×2 deformation, resizing the deformation bilinearly if needed.

    Sampling runs at the deformation's dtype (float32 coordinates even for bf16 features); the
    result has `inp`'s dtype.
    """
    _, h_old, w_old, _ = deformation.shape
    _, _, h, w = inp.shape
    if (h_old, w_old) != (h, w):
        deformation = deformation.permute(0, 3, 1, 2)  # B×2×h×w
        deformation = F.interpolate(deformation, size=(h, w), mode="bilinear", align_corners=False)
        deformation = deformation.permute(0, 2, 3, 1)  # B×H×W×2
    out = F.grid_sample(inp.to(deformation.dtype), deformation, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.to(inp.dtype)
