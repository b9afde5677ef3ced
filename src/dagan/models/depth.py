"""Self-supervised face depth network: ResNet encoder + 4-scale disparity decoder (monodepth2).

The output DaGAN uses as "depth" is the sigmoid disparity at full resolution, in (0, 1).
"""

import torch
import torch.nn.functional as F
from torch import nn

from dagan.models.resnet import ResNet

DECODER_CHANNELS = (16, 32, 64, 128, 256)


class ResnetEncoder(nn.Module):
    """Normalises RGB in [0, 1] as (x - 0.45)/0.225, then a ResNet trunk. B×3n×H×W → 5 maps."""

    def __init__(self, num_layers: int = 18, num_input_images: int = 1, width: int = 64):
        super().__init__()
        self.resnet = ResNet(num_layers, num_input_images, width)
        self.channels = self.resnet.channels

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.resnet((images - 0.45) / 0.225)


class ConvBlock(nn.Module):
    """Reflection-padded 3×3 conv, optionally followed by ELU."""

    def __init__(self, in_channels: int, out_channels: int, elu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3)
        self.elu = elu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        return F.elu(out) if self.elu else out


class DepthDecoder(nn.Module):
    """U-Net decoder: for level i = 4…0, conv → nearest ×2 → concat skip i-1 → conv.

    Returns the sigmoid disparities [scale 0 (H×W), scale 1 (H/2), …], one channel each.
    """

    def __init__(self, encoder_channels: list[int], num_scales: int = 4, decoder_channels=DECODER_CHANNELS):
        super().__init__()
        dec = decoder_channels
        self.num_scales = num_scales
        self.upconv0 = nn.ModuleList(
            ConvBlock(encoder_channels[-1] if i == 4 else dec[i + 1], dec[i]) for i in range(5)
        )
        self.upconv1 = nn.ModuleList(
            ConvBlock(dec[i] + (encoder_channels[i - 1] if i > 0 else 0), dec[i]) for i in range(5)
        )
        self.disp_heads = nn.ModuleList(ConvBlock(dec[s], 1, elu=False) for s in range(num_scales))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        disps: list[torch.Tensor] = [None] * self.num_scales  # type: ignore[list-item]
        x = features[-1]
        for i in range(4, -1, -1):
            x = F.interpolate(self.upconv0[i](x), scale_factor=2, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], 1)
            x = self.upconv1[i](x)
            if i < self.num_scales:
                disps[i] = torch.sigmoid(self.disp_heads[i](x))
        return disps


class DepthNetwork(nn.Module):
    """RGB B×3×H×W in [0, 1] → list of disparities (scale 0 first), each B×1×H/2^s×W/2^s.

    `width` scales the encoder (64 = the released networks) and the decoder proportionally.
    """

    def __init__(self, num_layers: int = 18, num_scales: int = 4, width: int = 64):
        super().__init__()
        self.encoder = ResnetEncoder(num_layers, width=width)
        decoder_channels = tuple(max(8, c * width // 64) for c in DECODER_CHANNELS)
        self.decoder = DepthDecoder(self.encoder.channels, num_scales, decoder_channels)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.decoder(self.encoder(images))
