"""Pyramid perceptual loss: L1 between VGG-19 features of an image pyramid (FOMM §3.3).

The feature extractor is injected: any module mapping B×3×H×W to a list of feature maps. `VGG19`
is the one the paper uses; its parameter names are torchvision's (`features.0.weight` …
`features.34.bias`) so that torchvision's `vgg19-dcbb9e9d.pth` loads with a strict key check.
Weights are obtained through `load_vgg19`, the only function here that touches files.
"""

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dagan.errors import DaganError
from dagan.nn.blocks import AntiAliasDownsample

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"

# torchvision `vgg19().features`: conv widths, "M" = 2×2 max-pool. Each conv is followed by a ReLU.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# features[0:2] → relu1_1, [2:7] → relu2_1, [7:12] → relu3_1, [12:21] → relu4_1, [21:30] → relu5_1.
VGG19_SLICE_ENDS = (2, 7, 12, 21, 30)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=1))
            layers.append(nn.ReLU())
            in_channels = item
    return nn.Sequential(*layers)  # 37 modules, indices as torchvision


class VGG19(nn.Module):
    """ImageNet-normalised VGG-19 returning relu1_1 … relu5_1.

    Input: B×3×H×W RGB in [0, 1]. Output: 5 maps, B×64×H×W, B×128×H/2×W/2, B×256×H/4×W/4,
    B×512×H/8×W/8, B×512×H/16×W/16. The state_dict holds exactly torchvision's 32 `features.*`
    keys (features 30–34 are kept for that reason but never run); mean/std are non-persistent buffers.
    Random init; get pretrained weights with `load_vgg19`.
    """

    def __init__(self):
        super().__init__()
        self.features = _vgg19_features()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19 expects B×3×H×W, got {tuple(x.shape)}")
        out = (x - self.mean) / self.std
        maps = []
        start = 0
        for end in VGG19_SLICE_ENDS:
            for index in range(start, end):
                out = self.features[index](out)
            maps.append(out)
            start = end
        return maps


def vgg19_expected_keys() -> list[str]:
    """The 32 torchvision `features.*` parameter names, in state_dict order."""
    return list(VGG19().state_dict().keys())


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise DaganError(f"VGG-19 weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or non-torch file: report it as the user's problem
        raise DaganError(f"cannot read VGG-19 weights from {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise DaganError(f"{path} does not hold a state_dict")
    return state


def _filter_vgg19_state(state: dict[str, torch.Tensor], origin: str) -> dict[str, torch.Tensor]:
    """Drop torchvision's `classifier.*` head (explicitly ignored); any other unknown key is an error."""
    kept = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    expected = vgg19_expected_keys()
    missing = [k for k in expected if k not in kept]
    unexpected = [k for k in kept if k not in expected]
    if missing or unexpected:
        raise DaganError(
            f"{origin} is not a torchvision VGG-19 state_dict "
            f"(missing {missing[:4]}{'…' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'…' if len(unexpected) > 4 else ''})"
        )
    return kept


def load_vgg19(
    path: str | os.PathLike | None = None,
    *,
    allow_download: bool = False,
    allow_random: bool = False,
) -> VGG19:
    """A frozen (eval, requires_grad False) `VGG19` on CPU with ImageNet weights.

    Lookup order: `path` if given (a missing file is an error, never a fallback); else torchvision's
    file in the torch hub cache (`<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth`); else a
    download through `torch.hub.load_state_dict_from_url` (hash-checked) only if `allow_download`;
    else random weights only if `allow_random` (for smoke runs: a perceptual loss with random VGG
    features is meaningless), otherwise DaganError.
    """
    model = VGG19()
    if path is not None:
        path = os.fspath(path)
        state = _filter_vgg19_state(_read_state_dict(path), path)
    else:
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", VGG19_FILENAME)
        if os.path.isfile(cached):
            state = _filter_vgg19_state(_read_state_dict(cached), cached)
        elif allow_download:
            state = torch.hub.load_state_dict_from_url(VGG19_URL, map_location="cpu", check_hash=True)
            state = _filter_vgg19_state(state, VGG19_URL)
        elif allow_random:
            state = None
        else:
            raise DaganError(
                "refusing to train with random VGG weights: pass the path of torchvision's "
                f"{VGG19_FILENAME}, put it in {os.path.dirname(cached)}, or allow the download"
            )
    if state is not None:
        model.load_state_dict(state, strict=True)
    model.eval()
    model.requires_grad_(False)
    return model


def _scale_name(scale: float) -> str:
    return f"{scale:g}"  # 1 → "1", 0.5 → "0.5" (as the original's str() of the YAML values)


class ImagePyramid(nn.Module):
    """Anti-aliased downsampling at several scales (the original's `ImagePyramide`).

    B×C×H×W → {"prediction_<scale>": B×C×H·scale×W·scale}, keys in the order of `scales`; scale 1
    is the input itself. These are the keys the multi-scale discriminator reads.
    """

    def __init__(self, scales: Sequence[float], channels: int):
        super().__init__()
        if not scales:
            raise ValueError("ImagePyramid needs at least one scale")
        for scale in scales:
            if not 0 < scale <= 1 or (1 / scale) != int(1 / scale):
                raise ValueError(f"pyramid scales must be 1/n for an integer n, got {scale}")
        self.scales = tuple(float(s) for s in scales)
        # ModuleDict keys cannot contain "."; "0-5" as the original.
        self.downs = nn.ModuleDict(
            {_scale_name(s).replace(".", "-"): AntiAliasDownsample(channels, s) for s in self.scales}
        )

    @staticmethod
    def key(scale: float) -> str:
        return "prediction_" + _scale_name(scale)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.key(s): self.downs[_scale_name(s).replace(".", "-")](x) for s in self.scales}


class PyramidPerceptualLoss(nn.Module):
    """Σ_scales Σ_i w_i · mean|φ_i(pred) − φ_i(target)|, target features without gradient.

    `feature_extractor`: module, B×C×H×W → list of feature maps (len(weights) of them). The
    extractor is not trained by this loss; freeze it yourself (`load_vgg19` returns it frozen).
    Layers with weight 0 are skipped.
    """

    def __init__(
        self,
        feature_extractor: nn.Module,
        scales: Sequence[float] = (1, 0.5, 0.25, 0.125),
        weights: Sequence[float] = (10.0,) * 5,
        channels: int = 3,
    ):
        super().__init__()
        self.feature_extractor = feature_extractor
        self.pyramid = ImagePyramid(scales, channels)
        self.weights = tuple(float(w) for w in weights)

    def forward(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weights: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """prediction, target: B×C×H×W → scalar. `weights` overrides the constructor's."""
        if prediction.shape != target.shape:
            raise ValueError(f"shape mismatch: {tuple(prediction.shape)} vs {tuple(target.shape)}")
        weights = self.weights if weights is None else tuple(float(w) for w in weights)
        pyr_pred = self.pyramid(prediction)
        with torch.no_grad():
            pyr_target = self.pyramid(target)
        total = prediction.new_zeros(())
        for key, pred_level in pyr_pred.items():
            feats_pred = self.feature_extractor(pred_level)
            with torch.no_grad():
                feats_target = self.feature_extractor(pyr_target[key])
            if len(feats_pred) != len(weights):
                raise ValueError(f"{len(weights)} perceptual weights for {len(feats_pred)} feature maps")
            for weight, a, b in zip(weights, feats_pred, feats_target):
                if weight != 0:
                    total = total + weight * F.l1_loss(a, b)
        return total
