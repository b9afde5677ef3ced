"""Keypoint detector on RGB-D (FOMM's, with the depth map as a 4th input channel)."""

import torch
import torch.nn.functional as F
from torch import nn

from dagan.geometry import Keypoints, heatmap_to_keypoints
from dagan.nn import AntiAliasDownsample, Hourglass


class KeypointDetector(nn.Module):
    """B×C×H×W (RGB, or RGB+depth) → Keypoints(value B×K×2, jacobian B×K×2×2).

    Input is anti-alias downsampled by `scale_factor`, an hourglass predicts K heatmaps
    (7×7 conv, padding `pad`: 0 in the original, so 64² → 58²), softmax with `temperature`
    over positions; values are heatmap-weighted grid means, jacobians heatmap-weighted 2×2 maps.
    The heads run at their own weights' dtype: the inference form keeps them (and so the heatmap
    softmax, keypoints and jacobians) in float32 while the hourglass runs in bf16/fp16.
    """

    def __init__(
        self,
        num_kp: int,
        num_channels: int,
        block_expansion: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        scale_factor: float = 0.25,
        estimate_jacobian: bool = True,
        pad: int = 0,
    ):
        super().__init__()
        self.num_kp = num_kp
        self.num_channels = num_channels
        self.temperature = temperature
        self.downsample = AntiAliasDownsample(num_channels, scale_factor)
        self.hourglass = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.heatmap_head = nn.Conv2d(self.hourglass.out_filters, num_kp, 7, padding=pad)
        self.jacobian_head = None
        if estimate_jacobian:
            self.jacobian_head = nn.Conv2d(self.hourglass.out_filters, 4 * num_kp, 7, padding=pad)
            nn.init.zeros_(self.jacobian_head.weight)
            with torch.no_grad():
                self.jacobian_head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * num_kp))

    def forward(self, x: torch.Tensor) -> Keypoints:
        feature_map = self.hourglass(self.downsample(x))
        feature_map = feature_map.to(self.heatmap_head.weight.dtype)
        logits = self.heatmap_head(feature_map)  # B×K×h×w
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.reshape(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        value = heatmap_to_keypoints(heatmap)
        jacobian = None
        if self.jacobian_head is not None:
            maps = self.jacobian_head(feature_map).reshape(b, k, 4, h, w)
            jacobian = (heatmap.unsqueeze(2) * maps).view(b, k, 4, -1).sum(-1).view(b, k, 2, 2)
        return Keypoints(value, jacobian)
