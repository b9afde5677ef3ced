"""Pose network for self-supervised depth training: relative pose and camera intrinsics K.

Encoder: ResNet on two stacked frames (6 channels). Decoder (monodepth2 + learned intrinsics):
squeeze 1×1 → two 3×3 convs → 1×1 to 6·F channels, spatial mean ×0.01 → axis-angle and
translation; K from softplus heads: f = mean(softplus(conv))·(W, H), c = (mean(softplus(conv)) + 0.5)·(W, H).
"""

import torch
import torch.nn.functional as F
from torch import nn

from dagan.models.depth import ResnetEncoder


class PoseDecoder(nn.Module):
    def __init__(self, encoder_channels: list[int], num_frames_to_predict_for: int = 2):
        super().__init__()
        self.num_frames = num_frames_to_predict_for
        self.squeeze = nn.Conv2d(encoder_channels[-1], 256, 1)
        self.pose_convs = nn.ModuleList([nn.Conv2d(256, 256, 3, 1, 1), nn.Conv2d(256, 256, 3, 1, 1)])
        self.pose_out = nn.Conv2d(256, 6 * num_frames_to_predict_for, 1)
        self.focal = nn.Conv2d(256, 2, 3, 1, 1)
        self.offset = nn.Conv2d(256, 2, 3, 1, 1)

    def forward(self, feature: torch.Tensor, image_size: tuple[int, int]):
        """feature: B×C×h×w deepest encoder map; image_size (H, W).

        Returns axisangle B×F×1×3, translation B×F×1×3 and intrinsics B×3×3.
        """
        feat = F.relu(self.squeeze(feature))
        for conv in self.pose_convs:
            feat = F.relu(conv(feat))
        out = self.pose_out(feat).mean(dim=(2, 3))
        out = 0.01 * out.view(-1, self.num_frames, 1, 6)
        h, w = image_size
        scale = feat.new_tensor([w, h])
        focal = F.softplus(self.focal(feat)).mean(dim=(2, 3)) * scale  # B×2
        centre = (F.softplus(self.offset(feat)).mean(dim=(2, 3)) + 0.5) * scale  # B×2
        b = feat.shape[0]
        K = feat.new_zeros(b, 3, 3)
        K[:, 0, 0] = focal[:, 0]
        K[:, 1, 1] = focal[:, 1]
        K[:, 0, 2] = centre[:, 0]
        K[:, 1, 2] = centre[:, 1]
        K[:, 2, 2] = 1
        return out[..., :3], out[..., 3:], K


class PoseNetwork(nn.Module):
    """(frame_a, frame_b), each B×3×H×W in [0, 1] → (axisangle, translation, K) from a to b."""

    def __init__(self, num_layers: int = 18, width: int = 64):
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, num_input_images=2, width=width)
        self.decoder = PoseDecoder(self.encoder.channels)

    def forward(self, frame_a: torch.Tensor, frame_b: torch.Tensor):
        features = self.encoder(torch.cat([frame_a, frame_b], 1))
        return self.decoder(features[-1], frame_a.shape[-2:])
