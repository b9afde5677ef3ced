"""Convolutional blocks of the keypoint detector, dense motion network and generator.

All norms are `nn.BatchNorm2d` (eps 1e-5, momentum 0.1), numerically the original's
SynchronizedBatchNorm2d outside data-parallel training; training converts them to SyncBatchNorm.
Upsampling is nearest-neighbour ×2, as the original's `F.interpolate(scale_factor=2)`.
"""

import torch
import torch.nn.functional as F
from torch import nn


class SameBlock2d(nn.Module):
    """conv → BN → ReLU, resolution preserved. B×Cin×H×W → B×Cout×H×W."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """conv3×3 → BN → ReLU → avg-pool 2. B×Cin×H×W → B×Cout×H/2×W/2."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, 3, padding=1)
        self.norm = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class UpBlock2d(nn.Module):
    """nearest ×2 → conv3×3 → BN → ReLU. B×Cin×H×W → B×Cout×2H×2W."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, 3, padding=1)
        self.norm = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: x + conv(ReLU(BN(conv(ReLU(BN(x)))))). Shape preserved."""

    def __init__(self, features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(features, features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(features)
        self.norm2 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def _channels(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * (2**level))


class HourglassEncoder(nn.Module):
    """`num_blocks` DownBlocks; returns the input and every level (coarsest last)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else _channels(block_expansion, max_features, i),
                _channels(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    """UpBlocks with skip concatenation; output has `block_expansion + in_features` channels."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            factor = 1 if i == num_blocks - 1 else 2
            blocks.append(
                UpBlock2d(
                    factor * _channels(block_expansion, max_features, i + 1),
                    _channels(block_expansion, max_features, i),
                )
            )
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        skips = list(features)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net. B×in_features×H×W → B×out_filters×H×W (H, W divisible by 2**num_blocks)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def gaussian_kernel(scale: float) -> tuple[torch.Tensor, int]:
    """Normalised 2-D Gaussian for band-limited downsampling by `scale`, and its size.

    σ = (1/scale - 1)/2 and size 2·round(4σ)+1 (13×13 at scale 0.25).
    """
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    coords = torch.arange(size, dtype=torch.float32)
    mean = (size - 1) / 2
    g = torch.exp(-((coords - mean) ** 2) / (2 * sigma**2))
    kernel = g.view(-1, 1) * g.view(1, -1)
    return kernel / kernel.sum(), size


class AntiAliasDownsample(nn.Module):
    """Gaussian blur then stride-`1/scale` subsampling. B×C×H×W → B×C×H·scale×W·scale.

    The kernel is a persistent buffer (`kernel`, C×1×k×k) because the original checkpoints store it.
    """

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.scale = scale
        kernel, size = gaussian_kernel(scale) if scale != 1 else (torch.ones(1, 1), 1)
        self.pad = size // 2
        self.stride = int(1 / scale)
        self.register_buffer("kernel", kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        out = F.pad(x, (self.pad, self.pad, self.pad, self.pad))
        out = F.conv2d(out, self.kernel, groups=x.shape[1])
        return out[:, :, :: self.stride, :: self.stride]
