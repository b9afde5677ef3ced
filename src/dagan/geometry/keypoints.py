"""Keypoints with jacobians, and the relative-motion transfer used at inference."""

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError


@dataclass
class Keypoints:
    """value: B×K×2 in [-1, 1] (x, y); jacobian: B×K×2×2 local affine frame, or None."""

    value: torch.Tensor
    jacobian: torch.Tensor | None = None

    def __getitem__(self, index) -> "Keypoints":
        jac = None if self.jacobian is None else self.jacobian[index]
        return Keypoints(self.value[index], jac)

    def to(self, *args, **kwargs) -> "Keypoints":
        jac = None if self.jacobian is None else self.jacobian.to(*args, **kwargs)
        return Keypoints(self.value.to(*args, **kwargs), jac)

    def detach(self) -> "Keypoints":
        jac = None if self.jacobian is None else self.jacobian.detach()
        return Keypoints(self.value.detach(), jac)

    @staticmethod
    def cat(items: list["Keypoints"]) -> "Keypoints":
        value = torch.cat([k.value for k in items])
        jac = None if items[0].jacobian is None else torch.cat([k.jacobian for k in items])
        return Keypoints(value, jac)


def inverse_2x2(m: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of ...×2×2 matrices: adj(m)/det(m).

    Exact for 2×2, batched elementwise, and exportable (ONNX has no matrix inverse).
    """
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    adj = torch.stack([torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)], dim=-2)
    return adj / det[..., None, None]


def convex_hull_area(points: torch.Tensor) -> float:
    """Area of the convex hull of K×2 points (scipy's 2-D `volume`), computed in float64."""
    pts = points.detach().to("cpu", torch.float64).numpy()
    try:
        return float(ConvexHull(pts).volume)
    except (QhullError, ValueError):
        return 0.0


def movement_scale(kp_source: Keypoints, kp_initial: Keypoints) -> float:
    """sqrt(source hull area) / sqrt(initial driving hull area), from the first item of each batch."""
    src = convex_hull_area(kp_source.value[0])
    drv = convex_hull_area(kp_initial.value[0])
    if src <= 0 or drv <= 0:
        return 1.0
    return float(np.sqrt(src) / np.sqrt(drv))


def normalize_keypoints(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_initial: Keypoints,
    *,
    relative: bool = True,
    adapt_movement_scale: bool = True,
    scale: float | None = None,
) -> Keypoints:
    """Transfer driving motion onto the source keypoints, as the original `normalize_kp`.

    relative: value = (kp_d - kp_d0)·scale + kp_s and jacobian = J_d·J_d0⁻¹·J_s; absolute: kp_d unchanged.
    `scale` overrides the convex-hull movement scale (computed once per video by callers that batch).
    kp_driving may hold T frames while kp_source and kp_initial hold one.
    """
    if not relative:
        return kp_driving
    if scale is None:
        scale = movement_scale(kp_source, kp_initial) if adapt_movement_scale else 1.0
    value = (kp_driving.value - kp_initial.value) * scale + kp_source.value
    jacobian = kp_driving.jacobian
    if jacobian is not None:
        diff = torch.matmul(kp_driving.jacobian, inverse_2x2(kp_initial.jacobian))
        jacobian = torch.matmul(diff, kp_source.jacobian)
    return Keypoints(value, jacobian)
