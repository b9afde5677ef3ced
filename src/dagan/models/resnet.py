"""ResNet-18/50 trunks with torchvision's parameter names (conv1, bn1, layer1.0.conv1, …).

`width` (64 in torchvision) scales every stage; narrower trunks are for small models.

No `fc` head: `load_torchvision_weights` drops torchvision's `fc.*` explicitly, so an ImageNet file
(`resnet18-f37072fd.pth`) loads directly. `num_input_images` widens conv1 for stacked frames.
"""

from pathlib import Path

import torch
from torch import nn

from dagan.errors import DaganError

LAYERS = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]), 50: ("bottleneck", [3, 4, 6, 3])}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Trunk only. forward returns the 5 feature maps at H/2, H/4, H/8, H/16, H/32."""

    def __init__(self, num_layers: int = 18, num_input_images: int = 1, width: int = 64):
        super().__init__()
        if num_layers not in LAYERS:
            raise DaganError(f"unsupported ResNet depth {num_layers}; choose one of {sorted(LAYERS)}")
        kind, counts = LAYERS[num_layers]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.num_layers = num_layers
        self.inplanes = width
        self.conv1 = nn.Conv2d(3 * num_input_images, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, width, counts[0])
        self.layer2 = self._make_layer(block, 2 * width, counts[1], 2)
        self.layer3 = self._make_layer(block, 4 * width, counts[2], 2)
        self.layer4 = self._make_layer(block, 8 * width, counts[3], 2)
        self.channels = [width] + [c * width * block.expansion for c in (1, 2, 4, 8)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]


def load_torchvision_weights(resnet: ResNet, path: str | Path) -> None:
    """Load a torchvision ImageNet ResNet file; conv1 is repeated and divided for stacked frames."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise DaganError(f"cannot load ResNet weights {path}: {exc}") from None
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    n = resnet.conv1.weight.shape[1] // 3
    if n > 1:
        state["conv1.weight"] = torch.cat([state["conv1.weight"]] * n, 1) / n
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DaganError(
            f"{path} is not a torchvision ResNet-{resnet.num_layers} file "
            f"(missing {len(missing)} keys, unexpected {len(unexpected)})"
        )
