"""Cross-modal (depth-aware) attention: queries from source depth, keys and values from image features."""

import torch
import torch.nn.functional as F
from torch import nn


class DepthAwareAttention(nn.Module):
    """out = γ·Attn(Q(depth), K(feat), V(feat)) + feat, with ReLU on Q, K, V and no 1/√d scaling.

    depth_features, features: B×C×H×W (N = H·W) → (B×C×H×W, attention B×N×N or None).
    A[i, j] = softmax_j(Q_i·K_j): for each query position i, a distribution over key positions j.
    γ is a learned scalar, 0 at initialisation.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.query = nn.Conv2d(channels, channels // 8, 1)
        self.key = nn.Conv2d(channels, channels // 8, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, depth_features: torch.Tensor, features: torch.Tensor, return_attention: bool = False):
        b, c, h, w = features.shape
        q = F.relu(self.query(depth_features)).flatten(2).transpose(1, 2)  # B×N×C/8
        k = F.relu(self.key(features)).flatten(2)  # B×C/8×N
        v = F.relu(self.value(features)).flatten(2)  # B×C×N
        if q.shape[0] != b:
            q = q.expand(b, -1, -1)
        if return_attention:
            attention = torch.softmax(torch.bmm(q, k), dim=-1)  # B×N×N
            out = torch.bmm(v, attention.transpose(1, 2))  # B×C×N
        else:
            attention = None
            out = F.scaled_dot_product_attention(
                q.unsqueeze(1), k.transpose(1, 2).unsqueeze(1), v.transpose(1, 2).unsqueeze(1), scale=1.0
            )  # B×1×N×C
            out = out.squeeze(1).transpose(1, 2)
        out = out.reshape(b, c, h, w)
        return self.gamma * out + features, attention
