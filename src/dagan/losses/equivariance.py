"""Random affine + thin-plate-spline transform and the keypoint equivariance losses (FOMM §3.3).

A transform T maps coordinates z (x, y in [-1, 1]) of the *transformed* frame to coordinates of the
original frame; `transform_frame` samples the original frame at T(grid). Keypoints detected on the
transformed frame should therefore satisfy kp_d ≈ T(kp_t) and J_d ≈ ∂T/∂z(kp_t) · J_t.

T(z) = A·z + b + Σ_k w_k · φ(‖z − c_k‖₁) · (1, 1), φ(d) = d²·log(d + 1e-6), with the original's
quirks kept: the radius is the L1 distance and the same scalar TPS offset is added to x and y.
"""

import torch
import torch.nn.functional as F
from torch.autograd import grad

from dagan.geometry.grid import make_coordinate_grid
from dagan.geometry.keypoints import Keypoints


class RandomTransform:
    """Per-sample random warp: θ = [I|0] + N(0, σ_affine²) (B×2×3), TPS weights N(0, σ_tps²) on a
    points_tps × points_tps control grid over [-1, 1] (B×1×P²). No TPS if sigma_tps or points_tps is None.

    Draws on `generator`'s device (CPU by default), in float32 as the original, then moves the
    parameters to `device`. Use `from_parameters` for explicit, deterministic transforms.
    """

    def __init__(
        self,
        batch: int,
        sigma_affine: float,
        sigma_tps: float | None = None,
        points_tps: int | None = None,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ):
        draw_device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.randn(batch, 2, 3, generator=generator, device=draw_device) * sigma_affine
        theta = noise + torch.eye(2, 3, device=draw_device).view(1, 2, 3)
        control_points = control_params = None
        if sigma_tps is not None and points_tps is not None:
            control_points = make_coordinate_grid(points_tps, points_tps, device=draw_device).view(-1, 2)
            control_params = (
                torch.randn(batch, 1, points_tps**2, generator=generator, device=draw_device) * sigma_tps
            )
        self._set(theta, control_points, control_params, device)

    @classmethod
    def from_parameters(
        cls,
        theta: torch.Tensor,
        control_points: torch.Tensor | None = None,
        control_params: torch.Tensor | None = None,
    ) -> "RandomTransform":
        """theta: B×2×3; control_points: P×2; control_params: B×1×P (both or neither)."""
        if theta.dim() != 3 or theta.shape[1:] != (2, 3):
            raise ValueError(f"theta must be B×2×3, got {tuple(theta.shape)}")
        if (control_points is None) != (control_params is None):
            raise ValueError("give both control_points and control_params, or neither")
        if control_points is not None:
            n = control_points.shape[0]
            if control_points.shape != (n, 2) or control_params.shape != (theta.shape[0], 1, n):
                raise ValueError(
                    f"control_points must be P×2 and control_params B×1×P, got "
                    f"{tuple(control_points.shape)} and {tuple(control_params.shape)}"
                )
        obj = cls.__new__(cls)
        obj._set(theta, control_points, control_params, None)
        return obj

    def _set(self, theta, control_points, control_params, device) -> None:
        self.batch = theta.shape[0]
        self.theta = theta.to(device) if device is not None else theta
        self.control_points = control_points
        self.control_params = control_params
        if device is not None and control_points is not None:
            self.control_points = control_points.to(device)
            self.control_params = control_params.to(device)

    @property
    def tps(self) -> bool:
        return self.control_points is not None

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        """coordinates: B×N×2 or 1×N×2 (broadcast over the batch) → B×N×2."""
        if coordinates.dim() != 3 or coordinates.shape[-1] != 2 or coordinates.shape[0] not in (1, self.batch):
            raise ValueError(
                f"coordinates must be B×N×2 or 1×N×2 with B={self.batch}, got {tuple(coordinates.shape)}"
            )
        theta = self.theta.to(coordinates.device, coordinates.dtype).unsqueeze(1)  # B×1×2×3
        out = torch.matmul(theta[..., :2], coordinates.unsqueeze(-1)) + theta[..., 2:]  # B×N×2×1
        out = out.squeeze(-1)  # B×N×2
        if self.tps:
            points = self.control_points.to(coordinates.device, coordinates.dtype)
            params = self.control_params.to(coordinates.device, coordinates.dtype)
            diff = coordinates.unsqueeze(2) - points.view(1, 1, -1, 2)  # b×N×P×2
            dist = diff.abs().sum(-1)  # b×N×P, L1 radius (as the original)
            radial = dist**2 * torch.log(dist + 1e-6) * params  # B×N×P
            out = out + radial.sum(dim=2, keepdim=True)  # same offset on x and y
        return out

    def jacobian(self, coordinates: torch.Tensor) -> torch.Tensor:
        """∂T/∂z at B×N×2 coordinates → B×N×2×2 (row i: gradient of output component i).

        Computed by autograd with create_graph=True, so it stays differentiable w.r.t. the
        coordinates when they require grad (the keypoints of the transformed frame, in training).
        """
        with torch.enable_grad():
            if not coordinates.requires_grad:
                coordinates = coordinates.detach().requires_grad_(True)
            warped = self.warp_coordinates(coordinates)
            grad_x = grad(warped[..., 0].sum(), coordinates, create_graph=True)[0]
            grad_y = grad(warped[..., 1].sum(), coordinates, create_graph=True)[0]
        return torch.stack([grad_x, grad_y], dim=-2)  # B×N×2×2

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """B×C×H×W → B×C×H×W, sampled at T(grid) with reflection padding."""
        if frame.dim() != 4 or frame.shape[0] != self.batch:
            raise ValueError(f"frame must be B×C×H×W with B={self.batch}, got {tuple(frame.shape)}")
        _, _, h, w = frame.shape
        grid = make_coordinate_grid(h, w, dtype=frame.dtype, device=frame.device).view(1, h * w, 2)
        grid = self.warp_coordinates(grid).view(self.batch, h, w, 2)  # B×H×W×2
        return F.grid_sample(frame, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def equivariance_value_loss(
    kp_driving: Keypoints, kp_transformed: Keypoints, transform: RandomTransform
) -> torch.Tensor:
    """mean|kp_d − T(kp_t)|: scalar (unweighted)."""
    return (kp_driving.value - transform.warp_coordinates(kp_transformed.value)).abs().mean()


def equivariance_jacobian_loss(
    kp_driving: Keypoints, kp_transformed: Keypoints, transform: RandomTransform
) -> torch.Tensor:
    """mean|I − J_d⁻¹ · ∂T/∂z(kp_t) · J_t|: scalar (unweighted)."""
    if kp_driving.jacobian is None or kp_transformed.jacobian is None:
        raise ValueError("the equivariance jacobian loss needs keypoint jacobians")
    jac_transformed = torch.matmul(transform.jacobian(kp_transformed.value), kp_transformed.jacobian)  # B×K×2×2
    value = torch.matmul(torch.inverse(kp_driving.jacobian), jac_transformed)  # B×K×2×2
    eye = torch.eye(2, dtype=value.dtype, device=value.device).view(1, 1, 2, 2)
    return (eye - value).abs().mean()
