"""Dense motion network: keypoint offsets → dense deformation, motion mask and occlusion map."""

import torch
import torch.nn.functional as F
from torch import nn

from dagan.geometry import Keypoints, keypoint_gaussians, make_coordinate_grid
from dagan.geometry.keypoints import inverse_2x2
from dagan.nn import AntiAliasDownsample, Hourglass


class DenseMotionNetwork(nn.Module):
    """Combine K+1 local affine motions (background = identity) with a predicted soft mask.

    forward(source B×C×H×W, kp_driving, kp_source) → dict at the downsampled size h×w:
    `sparse_deformed` B×(K+1)×C×h×w, `mask` B×(K+1)×h×w, `deformation` B×h×w×2 and
    `occlusion_map` B×1×h×w (when estimated). The source may have batch 1 while the
    keypoints have batch B (the source is broadcast).

    Keypoint Gaussians, sparse motions, sampling and the mask softmax stay in the keypoints' dtype
    (float32); the hourglass runs at the source's dtype, the mask/occlusion heads at their own.
    """

    def __init__(
        self,
        num_kp: int,
        num_channels: int,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        estimate_occlusion_map: bool = True,
        scale_factor: float = 0.25,
        kp_variance: float = 0.01,
    ):
        super().__init__()
        self.num_kp = num_kp
        self.kp_variance = kp_variance
        self.downsample = AntiAliasDownsample(num_channels, scale_factor)
        self.hourglass = Hourglass(block_expansion, (num_kp + 1) * (num_channels + 1), num_blocks, max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, 7, padding=3)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, 7, padding=3) if estimate_occlusion_map else None
        )

    def heatmap_representation(self, h: int, w: int, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
        """G(kp_driving) - G(kp_source) with a zero background channel: B×(K+1)×1×h×w."""
        gd = keypoint_gaussians(kp_driving.value, h, w, self.kp_variance)
        gs = keypoint_gaussians(kp_source.value, h, w, self.kp_variance)
        heatmap = gd - gs  # B×K×h×w
        zeros = heatmap.new_zeros(heatmap.shape[0], 1, h, w)
        return torch.cat([zeros, heatmap], dim=1).unsqueeze(2)

    def sparse_motions(self, h: int, w: int, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
        """T_k(z) = J_s J_d⁻¹ (z - p_d) + p_s per keypoint, identity first: B×(K+1)×h×w×2."""
        value_d = kp_driving.value
        b = value_d.shape[0]
        grid = make_coordinate_grid(h, w, dtype=value_d.dtype, device=value_d.device).view(1, 1, h, w, 2)
        coords = grid - value_d.view(b, self.num_kp, 1, 1, 2)
        if kp_driving.jacobian is not None:
            jac = torch.matmul(kp_source.jacobian, inverse_2x2(kp_driving.jacobian))  # B×K×2×2
            jac = jac.view(b, self.num_kp, 1, 1, 2, 2).expand(b, self.num_kp, h, w, 2, 2)
            coords = torch.matmul(jac, coords.unsqueeze(-1)).squeeze(-1)
        driving_to_source = coords + kp_source.value.view(-1, self.num_kp, 1, 1, 2)
        identity = grid.expand(b, 1, h, w, 2)
        return torch.cat([identity, driving_to_source], dim=1)

    def deformed_sources(self, source: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """Source warped by each sparse motion: B×(K+1)×C×h×w, sampled at the motions' dtype."""
        b, n, h, w, _ = motions.shape
        c = source.shape[1]
        repeated = source.to(motions.dtype).unsqueeze(1).expand(b, n, c, h, w).reshape(b * n, c, h, w)
        out = F.grid_sample(repeated, motions.reshape(b * n, h, w, 2), align_corners=False)
        return out.view(b, n, c, h, w)

    def forward(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> dict:
        source = self.downsample(source)
        _, _, h, w = source.shape
        heatmap = self.heatmap_representation(h, w, kp_driving, kp_source)
        motions = self.sparse_motions(h, w, kp_driving, kp_source)
        b = motions.shape[0]
        deformed = self.deformed_sources(source, motions)
        # interleaved per keypoint: [h0, r0, g0, b0, h1, …] as the original's weights expect
        inp = torch.cat([heatmap.expand(b, -1, -1, -1, -1), deformed], dim=2).view(b, -1, h, w)
        prediction = self.hourglass(inp.to(source.dtype))
        mask = F.softmax(self.mask(prediction.to(self.mask.weight.dtype)).to(motions.dtype), dim=1)  # B×(K+1)×h×w
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)  # B×h×w×2
        out = {"sparse_deformed": deformed, "mask": mask, "deformation": deformation}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction.to(self.occlusion.weight.dtype)))
        return out
