"""Multi-scale patch discriminator conditioned on keypoint heatmaps (FOMM / pix2pix)."""

import torch
import torch.nn.functional as F
from torch import nn

from dagan.geometry import Keypoints, keypoint_gaussians


class DiscriminatorBlock(nn.Module):
    """4×4 conv (no padding) → InstanceNorm (affine, optional) → LeakyReLU 0.2 → avg-pool 2 (optional)."""

    def __init__(self, in_features: int, out_features: int, norm: bool, pool: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, 4)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        return F.avg_pool2d(out, 2) if self.pool else out


class Discriminator(nn.Module):
    """B×3×H×W (+ K keypoint Gaussians) → (feature maps, B×1×h×w patch scores)."""

    def __init__(self, num_channels: int, num_kp: int, block_expansion: int, num_blocks: int,
                 max_features: int, use_kp: bool = True, kp_variance: float = 0.01):
        super().__init__()
        self.use_kp = use_kp
        self.kp_variance = kp_variance
        blocks = []
        for i in range(num_blocks):
            cin = num_channels + num_kp * use_kp if i == 0 else min(max_features, block_expansion * 2**i)
            cout = min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(DiscriminatorBlock(cin, cout, norm=i != 0, pool=i != num_blocks - 1))
        self.down_blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(blocks[-1].conv.out_channels, 1, 1)

    def forward(self, x: torch.Tensor, kp: Keypoints | None = None):
        out = x
        if self.use_kp:
            heatmap = keypoint_gaussians(kp.value, x.shape[2], x.shape[3], self.kp_variance)
            out = torch.cat([out, heatmap], dim=1)
        features = []
        for block in self.down_blocks:
            out = block(out)
            features.append(out)
        return features, self.head(out)


def scale_key(scale: float) -> str:
    """'1', '0.5', … as used in the pyramid dict keys (`prediction_1`)."""
    return str(int(scale)) if float(scale).is_integer() else str(scale)


class MultiScaleDiscriminator(nn.Module):
    """One discriminator per pyramid scale.

    forward({'prediction_<s>': image}, kp) → {'feature_maps_<s>': [...], 'prediction_map_<s>': map}.
    """

    def __init__(self, scales=(1,), **kwargs):
        super().__init__()
        self.scales = tuple(scales)
        self.discriminators = nn.ModuleDict(
            {scale_key(s).replace(".", "-"): Discriminator(**kwargs) for s in self.scales}
        )

    def forward(self, pyramid: dict, kp: Keypoints | None = None) -> dict:
        out = {}
        for key, disc in self.discriminators.items():
            s = key.replace("-", ".")
            features, prediction = disc(pyramid["prediction_" + s], kp)
            out["feature_maps_" + s] = features
            out["prediction_map_" + s] = prediction
        return out
