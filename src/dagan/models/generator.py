"""DepthAwareGenerator (the paper's model) and its SPADE-decoder variant.

Both share: an image encoder and a source-depth encoder (computed once per source, see
`encode_source`), the dense motion network, feature warping with the occlusion map, and the
depth-aware cross-modal attention. They differ in the decoder.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dagan.geometry import Keypoints, warp
from dagan.models.attention import DepthAwareAttention
from dagan.models.dense_motion import DenseMotionNetwork
from dagan.models.spade import SPADEDecoder
from dagan.nn import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d


@dataclass
class SourceFeatures:
    """Encoded source: image features and depth features, each 1×C×h×w (or B×C×h×w)."""

    image: torch.Tensor
    depth: torch.Tensor


class FeatureEncoder(nn.Module):
    """SameBlock 7×7 then `num_down_blocks` DownBlocks: B×Cin×H×W → B×C×H/2^n×W/2^n."""

    def __init__(self, in_channels: int, block_expansion: int, max_features: int, num_down_blocks: int):
        super().__init__()
        self.first = SameBlock2d(in_channels, block_expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                min(max_features, block_expansion * 2**i), min(max_features, block_expansion * 2 ** (i + 1))
            )
            for i in range(num_down_blocks)
        )
        self.out_channels = min(max_features, block_expansion * 2**num_down_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.first(x)
        for block in self.down_blocks:
            out = block(out)
        return out


class ResNetDecoder(nn.Module):
    """Bottleneck ResBlocks, UpBlocks, 7×7 conv, sigmoid: B×C×h×w → B×3×H×W in [0, 1]."""

    def __init__(self, num_channels: int, block_expansion: int, max_features: int, num_down_blocks: int,
                 num_bottleneck_blocks: int):
        super().__init__()
        features = min(max_features, block_expansion * 2**num_down_blocks)
        self.bottleneck = nn.Sequential(*(ResBlock2d(features) for _ in range(num_bottleneck_blocks)))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(
                min(max_features, block_expansion * 2 ** (num_down_blocks - i)),
                min(max_features, block_expansion * 2 ** (num_down_blocks - i - 1)),
            )
            for i in range(num_down_blocks)
        )
        self.final = nn.Conv2d(block_expansion, num_channels, 7, padding=3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.bottleneck(features)
        for block in self.up_blocks:
            out = block(out)
        return torch.sigmoid(self.final(out))


class DepthAwareGenerator(nn.Module):
    """Source image + source depth + keypoints → reenacted frame.

    forward(source B_s×3×H×W, kp_driving (B), kp_source (B_s), source_depth B_s×1×H×W) → dict with
    `prediction` B×3×H×W, `deformed` (source warped at full resolution), `deformation` B×h×w×2,
    `mask`, `sparse_deformed`, `occlusion_map` B×1×h×w and `attention` (B×N×N, only when asked).
    B_s is 1 or B: one source is broadcast over a batch of driving keypoints.
    """

    def __init__(
        self,
        num_kp: int,
        num_channels: int = 3,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 2,
        num_bottleneck_blocks: int = 6,
        estimate_occlusion_map: bool = True,
        dense_motion: dict | None = None,
        decoder: str = "dagan",
        spade_hidden: int = 128,
        spade_out_features: int = 64,
        spade_compress: int = 4,
    ):
        super().__init__()
        self.decoder_kind = decoder
        self.dense_motion = DenseMotionNetwork(
            num_kp=num_kp, num_channels=num_channels, estimate_occlusion_map=estimate_occlusion_map,
            **(dense_motion or {}),
        )
        self.image_encoder = FeatureEncoder(num_channels, block_expansion, max_features, num_down_blocks)
        self.depth_encoder = FeatureEncoder(1, block_expansion, max_features, num_down_blocks)
        channels = self.image_encoder.out_channels
        self.attention = DepthAwareAttention(channels)
        if decoder == "dagan":
            self.decoder = ResNetDecoder(num_channels, block_expansion, max_features, num_down_blocks,
                                         num_bottleneck_blocks)
        elif decoder == "spade":
            self.decoder = SPADEDecoder(channels, spade_compress, spade_out_features, spade_hidden)
        else:
            raise ValueError(f"unknown generator decoder {decoder!r}")

    def encode_source(self, source: torch.Tensor, source_depth: torch.Tensor) -> SourceFeatures:
        """The per-source work, done once per source rather than once per frame."""
        return SourceFeatures(self.image_encoder(source), self.depth_encoder(source_depth))

    def forward(
        self,
        source: torch.Tensor,
        kp_driving: Keypoints,
        kp_source: Keypoints,
        source_depth: torch.Tensor | None = None,
        *,
        source_features: SourceFeatures | None = None,
        return_attention: bool = False,
    ) -> dict:
        if source_features is None:
            if source_depth is None:
                raise ValueError("source_depth or source_features is required")
            source_features = self.encode_source(source, source_depth)
        motion = self.dense_motion(source, kp_driving, kp_source)
        deformation = motion["deformation"]  # B×h×w×2
        b = deformation.shape[0]
        feat = source_features.image
        if feat.shape[0] != b:
            feat = feat.expand(b, -1, -1, -1)
        out = warp(feat, deformation)
        occlusion = motion.get("occlusion_map")
        if occlusion is not None:
            if occlusion.shape[2:] != out.shape[2:]:
                occlusion = F.interpolate(occlusion, size=out.shape[2:], mode="bilinear", align_corners=False)
            out = out * occlusion.to(out.dtype)
        out, attention = self.attention(source_features.depth, out, return_attention=return_attention)
        src = source if source.shape[0] == b else source.expand(b, -1, -1, -1)
        deformed = warp(src, deformation)
        result = dict(motion)
        result["deformed"] = deformed
        if return_attention:
            result["attention"] = attention
        if self.decoder_kind == "spade":
            image = deformed
            if occlusion is not None:
                occ = motion["occlusion_map"]
                if occ.shape[2:] != deformed.shape[2:]:
                    occ = F.interpolate(occ, size=deformed.shape[2:], mode="bilinear", align_corners=False)
                image = deformed * occ.to(deformed.dtype)
            result["prediction"] = self.decoder(out, image)
        else:
            result["prediction"] = self.decoder(out)
        return result
