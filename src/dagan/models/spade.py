"""SPADE decoder of the SPADEDepthAwareGenerator variant (spectral-norm SPADE resblocks)."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class SPADE(nn.Module):
    """InstanceNorm(x)·(1 + γ(seg)) + β(seg); the segmap is nearest-resized to x."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """shortcut + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x)))))), convs spectral-normalised."""

    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmiddle, fout, 3, padding=1))
        self.norm_0 = SPADE(fin, label_nc, hidden)
        self.norm_1 = SPADE(fmiddle, label_nc, hidden)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SPADE(fin, label_nc, hidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx


class SPADEDecoder(nn.Module):
    """Warped features B×C×h×w + occluded warped image B×3×H×W → image B×3×H×W in [0, 1].

    seg = [nearest-resize(compress(feat)), image]; x = expand(feat) (2C); 3 middle blocks at 2C,
    nearest ×2 → up.0 (2C→C) → ×2 → up.1 (C→out_features) → conv → sigmoid.
    """

    def __init__(self, in_features: int = 256, compress: int = 4, out_features: int = 64, hidden: int = 128):
        super().__init__()
        label_nc = 3 + compress
        ic = in_features
        self.compress = nn.Conv2d(ic, compress, 3, padding=1)
        self.expand = nn.Conv2d(ic, 2 * ic, 3, padding=1)
        self.middle = nn.ModuleList(SPADEResnetBlock(2 * ic, 2 * ic, label_nc, hidden) for _ in range(3))
        self.up = nn.ModuleList(
            [SPADEResnetBlock(2 * ic, ic, label_nc, hidden), SPADEResnetBlock(ic, out_features, label_nc, hidden)]
        )
        self.to_rgb = nn.Conv2d(out_features, 3, 3, padding=1)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        cp = F.interpolate(self.compress(features), size=image.shape[2:], mode="nearest")
        seg = torch.cat([cp, image], dim=1)
        x = self.expand(features)
        for block in self.middle:
            x = block(x, seg)
        for block in self.up:
            x = block(F.interpolate(x, scale_factor=2, mode="nearest"), seg)
        return torch.sigmoid(self.to_rgb(F.leaky_relu(x, 0.2)))
