"""Self-supervised depth training (stage 1, Face-Depth-Network, a monodepth2 fork).

The depth net predicts a sigmoid disparity for the target frame; a pose net predicts the relative
camera motion to each neighbour frame and the intrinsics K. Each neighbour is warped into the target
view through the predicted depth, and the photometric error (0.85·SSIM + 0.15·L1) of the best
neighbour per pixel is minimised, with monodepth2's auto-mask and an edge-aware smoothness prior.

Conventions: pixel coordinates are (x = column, y = row); K is B×3×3 (or B×4×4, monodepth2) in
pixels; a pose T (B×4×4) maps target-camera points to the neighbour camera. Everything follows the
inputs' device and dtype.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


# --- image terms -------------------------------------------------------------------------------


def ssim_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """clamp((1 − SSIM)/2, 0, 1) per pixel on 3×3 windows with reflection padding. B×C×H×W → B×C×H×W."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"ssim_error expects two B×C×H×W tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x = F.avg_pool2d(x, 3, 1)
    mu_y = F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x**2, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y**2, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return torch.clamp((1 - numerator / denominator) / 2, 0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.85) -> torch.Tensor:
    """alpha·SSIM error + (1 − alpha)·L1, each averaged over channels. B×C×H×W → B×1×H×W."""
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    error = (1 - alpha) * (target - pred).abs().mean(1, keepdim=True)
    if alpha != 0:
        error = error + alpha * ssim_error(pred, target).mean(1, keepdim=True)
    return error


def edge_aware_smoothness(disp: torch.Tensor, img: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    """mean|∂x d|·e^{−|∂x I|} + mean|∂y d|·e^{−|∂y I|} (image gradients averaged over channels): scalar.

    disp: B×1×H×W, divided by its per-image mean (+1e-7) when `normalize`; img: B×C×H×W, same H×W.
    """
    if disp.dim() != 4 or img.dim() != 4 or disp.shape[-2:] != img.shape[-2:] or disp.shape[0] != img.shape[0]:
        raise ValueError(f"disp B×1×H×W and img B×C×H×W must match, got {tuple(disp.shape)}, {tuple(img.shape)}")
    if normalize:
        disp = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    grad_disp_x = (disp[:, :, :, :-1] - disp[:, :, :, 1:]).abs()
    grad_disp_y = (disp[:, :, :-1, :] - disp[:, :, 1:, :]).abs()
    grad_img_x = (img[:, :, :, :-1] - img[:, :, :, 1:]).abs().mean(1, keepdim=True)
    grad_img_y = (img[:, :, :-1, :] - img[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (grad_disp_x * torch.exp(-grad_img_x)).mean() + (grad_disp_y * torch.exp(-grad_img_y)).mean()


def min_reprojection_with_automask(
    reprojection_losses: torch.Tensor,
    identity_losses: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum over source frames with monodepth2 auto-masking.

    reprojection_losses, identity_losses: B×N×H×W (one channel per neighbour; identity = the
    unwarped neighbour against the target). Identity losses get 1e-5·randn to break ties, then the
    minimum is taken over the 2N candidates. Returns (B×H×W loss, B×H×W bool: True where a warped
    neighbour won, i.e. the pixel is kept). Without identity losses the mask is all True.
    """
    if reprojection_losses.dim() != 4:
        raise ValueError(f"losses must be B×N×H×W, got {tuple(reprojection_losses.shape)}")
    if identity_losses is None:
        loss = reprojection_losses.min(dim=1).values
        return loss, torch.ones_like(loss, dtype=torch.bool)
    if identity_losses.shape != reprojection_losses.shape:
        raise ValueError(f"shape mismatch: {tuple(identity_losses.shape)} vs {tuple(reprojection_losses.shape)}")
    noise_device = generator.device if generator is not None else identity_losses.device
    noise = torch.randn(identity_losses.shape, generator=generator, device=noise_device, dtype=identity_losses.dtype)
    identity_losses = identity_losses + noise.to(identity_losses.device) * 1e-5
    combined = torch.cat([identity_losses, reprojection_losses], dim=1)  # B×2N×H×W
    loss, index = combined.min(dim=1)
    return loss, index >= identity_losses.shape[1]


# --- camera geometry ---------------------------------------------------------------------------


def disp_to_depth(disp: torch.Tensor, min_depth: float = 0.1, max_depth: float = 100.0):
    """Sigmoid disparity in [0, 1] → (scaled disparity in [1/max, 1/min], depth = 1/scaled)."""
    min_disp = 1 / max_depth
    max_disp = 1 / min_depth
    scaled = min_disp + (max_disp - min_disp) * disp
    return scaled, 1 / scaled


def rotation_from_axisangle(axisangle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: B×3 (or B×1×3) axis·angle → B×4×4 homogeneous rotation.

    The axis is v/(|v| + 1e-7) as the original, so a zero vector gives the identity.
    """
    vec = axisangle.reshape(axisangle.shape[0], 3)
    angle = vec.norm(dim=1, keepdim=True)  # B×1
    axis = vec / (angle + 1e-7)  # B×3
    cos = torch.cos(angle).unsqueeze(-1)  # B×1×1
    sin = torch.sin(angle).unsqueeze(-1)
    x, y, z = axis.unbind(dim=1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    outer = axis.unsqueeze(2) * axis.unsqueeze(1)  # B×3×3
    eye3 = torch.eye(3, dtype=vec.dtype, device=vec.device)
    rot3 = cos * eye3 + sin * skew + (1 - cos) * outer
    return _homogeneous(rot3, torch.zeros_like(vec))


def translation_matrix(translation: torch.Tensor) -> torch.Tensor:
    """B×3 (or B×1×3) → B×4×4 [I | t]."""
    t = translation.reshape(translation.shape[0], 3)
    eye3 = torch.eye(3, dtype=t.dtype, device=t.device).expand(t.shape[0], 3, 3)
    return _homogeneous(eye3, t)


def _homogeneous(rot3: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """B×3×3, B×3 → B×4×4 [[R, t], [0, 1]]."""
    top = torch.cat([rot3, t.unsqueeze(2)], dim=2)  # B×3×4
    bottom = torch.zeros_like(top[:, :1, :])
    bottom[:, :, 3] = 1
    return torch.cat([top, bottom], dim=1)


def transformation_from_parameters(
    axisangle: torch.Tensor, translation: torch.Tensor, invert: bool = False
) -> torch.Tensor:
    """Pose-net output → B×4×4: T·R, or (T·R)⁻¹ = Rᵀ·T(−t) when `invert` (frames before the target)."""
    rot = rotation_from_axisangle(axisangle)
    t = translation.reshape(translation.shape[0], 3)
    if invert:
        return torch.matmul(rot.transpose(1, 2), translation_matrix(-t))
    return torch.matmul(translation_matrix(t), rot)


def intrinsics_matrix(focal: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """focal (fx, fy), offset (cx, cy), each B×2, in pixels → B×3×3 [[fx,0,cx],[0,fy,cy],[0,0,1]]."""
    if focal.shape != offset.shape or focal.dim() != 2 or focal.shape[1] != 2:
        raise ValueError(f"focal and offset must both be B×2, got {tuple(focal.shape)}, {tuple(offset.shape)}")
    k = torch.diag_embed(torch.cat([focal, torch.ones_like(focal[:, :1])], dim=1))  # B×3×3
    k = k.clone()
    k[:, :2, 2] = offset
    return k


def scale_intrinsics(intrinsics: torch.Tensor, scale: int, *, truncate: bool = True) -> torch.Tensor:
    """K for an image downscaled by 2^scale: rows 0, 1 divided by 2^scale, truncated toward zero if
    `truncate` (the original's `.trunc()`, which also cuts the gradient to K). Returns a new B×3×3."""
    k = _as_3x3(intrinsics).clone()
    rows = k[:, :2, :] / (2**scale)
    k[:, :2, :] = rows.trunc() if truncate else rows
    return k


def _as_3x3(intrinsics: torch.Tensor) -> torch.Tensor:
    if intrinsics.dim() != 3 or intrinsics.shape[1:] not in ((3, 3), (4, 4)):
        raise ValueError(f"intrinsics must be B×3×3 or B×4×4, got {tuple(intrinsics.shape)}")
    return intrinsics[:, :3, :3]


def _pixel_coords(height: int, width: int, dtype, device) -> torch.Tensor:
    """3×(H·W) homogeneous pixel coordinates (x, y, 1), row-major."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device),
        torch.arange(width, dtype=dtype, device=device),
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(height * width, dtype=dtype, device=device)])


def backproject_depth(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Depth B×1×H×W and K (B×3×3 or B×4×4) → homogeneous camera points B×4×(H·W)."""
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be B×1×H×W, got {tuple(depth.shape)}")
    b, _, h, w = depth.shape
    inv_k = torch.linalg.inv(_as_3x3(intrinsics))  # B×3×3
    pix = _pixel_coords(h, w, depth.dtype, depth.device)  # 3×HW
    cam = torch.matmul(inv_k, pix) * depth.reshape(b, 1, h * w)  # B×3×HW
    return torch.cat([cam, torch.ones_like(cam[:, :1])], dim=1)  # B×4×HW


def project_3d(
    points: torch.Tensor,
    intrinsics: torch.Tensor,
    pose: torch.Tensor,
    height: int,
    width: int,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Camera points B×4×(H·W) seen from pose T (B×4×4) through K → sampling grid B×H×W×2 in [-1, 1].

    Normalised as 2·p/(size − 1) − 1, i.e. the `align_corners=True` convention of grid_sample.
    """
    b = points.shape[0]
    k = _as_3x3(intrinsics)
    projection = torch.matmul(k, pose[:, :3, :])  # B×3×4 = (K₄·T)[:3]
    cam = torch.matmul(projection, points)  # B×3×HW
    pix = cam[:, :2, :] / (cam[:, 2:3, :] + eps)  # B×2×HW
    pix = pix.view(b, 2, height, width).permute(0, 2, 3, 1)  # B×H×W×2
    size = torch.tensor([width - 1, height - 1], dtype=pix.dtype, device=pix.device)
    return (pix / size - 0.5) * 2


def reproject(
    image: torch.Tensor,
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    pose: torch.Tensor,
    *,
    align_corners: bool = True,
) -> torch.Tensor:
    """Synthesise the target view from a neighbour `image` (B×C×H×W): sample it where each target
    pixel, at `depth` (B×1×H×W), lands in the neighbour camera (pose T: target → neighbour).
    Border padding. `align_corners=True` matches the grid normalisation; the Face-Depth-Network
    relied on grid_sample's default, which is False since torch 1.3 (a half-pixel shrink)."""
    _, _, h, w = depth.shape
    grid = project_3d(backproject_depth(depth, intrinsics), intrinsics, pose, h, w)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=align_corners)


# --- the stage-1 objective ---------------------------------------------------------------------


class DepthTrainingLoss(nn.Module):
    """The Face-Depth-Network objective, averaged over `scales` disparity scales.

    For each scale s: upsample disp_s bilinearly to full resolution, depth = disp_to_depth(·); warp
    every neighbour into the target view (K scaled by 2^0 and truncated, as the original); photometric
    error per neighbour; per-pixel minimum with auto-mask; plus `smoothness`/2^s · edge-aware
    smoothness of disp_s (at its own resolution) against the target area-downscaled to that size.

    Returns {"photometric": …, "smoothness": …} (already weighted, averaged over scales; their sum is
    the original's `losses["loss"]`); "smoothness" is absent when its weight is 0.
    """

    def __init__(
        self,
        scales: int = 4,
        alpha: float = 0.85,
        smoothness: float = 1e-3,
        *,
        min_depth: float = 0.1,
        max_depth: float = 100.0,
        automask: bool = True,
        truncate_intrinsics: bool = True,
        align_corners: bool = True,
    ):
        super().__init__()
        if scales < 1:
            raise ValueError(f"scales must be ≥ 1, got {scales}")
        self.scales = scales
        self.alpha = alpha
        self.smoothness = smoothness
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.automask = automask
        self.truncate_intrinsics = truncate_intrinsics
        self.align_corners = align_corners

    def forward(
        self,
        target: torch.Tensor,
        neighbours: Sequence[torch.Tensor],
        disparities: Sequence[torch.Tensor],
        poses: Sequence[torch.Tensor],
        intrinsics: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """target: B×3×H×W; neighbours: N × B×3×H×W; disparities: `scales` × B×1×H/2^s×W/2^s (sigmoid);
        poses: N × B×4×4 (target → neighbour); intrinsics: B×3×3 or B×4×4 at full resolution."""
        if len(disparities) != self.scales:
            raise ValueError(f"expected {self.scales} disparity maps, got {len(disparities)}")
        if not neighbours or len(neighbours) != len(poses):
            raise ValueError(f"need ≥ 1 neighbour and one pose each, got {len(neighbours)} and {len(poses)}")
        for frame in neighbours:
            if frame.shape != target.shape:
                raise ValueError(f"neighbour {tuple(frame.shape)} does not match target {tuple(target.shape)}")
        b, _, h, w = target.shape
        k = scale_intrinsics(intrinsics, 0, truncate=self.truncate_intrinsics)

        identity = None
        if self.automask:
            identity = torch.cat([photometric_error(f, target, self.alpha) for f in neighbours], dim=1)  # B×N×H×W

        photometric = target.new_zeros(())
        smooth = target.new_zeros(())
        for scale, disp in enumerate(disparities):
            if disp.dim() != 4 or disp.shape[:2] != (b, 1):
                raise ValueError(f"disparity at scale {scale} must be B×1×h×w, got {tuple(disp.shape)}")
            disp_full = F.interpolate(disp, size=(h, w), mode="bilinear", align_corners=False)
            _, depth = disp_to_depth(disp_full, self.min_depth, self.max_depth)
            warped = [
                reproject(frame, depth, k, pose, align_corners=self.align_corners)
                for frame, pose in zip(neighbours, poses)
            ]
            reprojection = torch.cat([photometric_error(p, target, self.alpha) for p in warped], dim=1)
            per_pixel, _ = min_reprojection_with_automask(reprojection, identity, generator)
            photometric = photometric + per_pixel.mean()
            if self.smoothness != 0:
                colour = target
                if disp.shape[-2:] != (h, w):
                    colour = F.interpolate(target, size=disp.shape[-2:], mode="area")  # B×3×h_s×w_s
                smooth = smooth + self.smoothness / (2**scale) * edge_aware_smoothness(disp, colour)

        terms = {"photometric": photometric / self.scales}
        if self.smoothness != 0:
            terms["smoothness"] = smooth / self.scales
        return terms
