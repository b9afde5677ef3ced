"""LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018), rebuilt without torchvision or `lpips`.

    d(x0, x1) = Σ_l mean_{h,w} ( w_l · (f̂_l(x0) − f̂_l(x1))² )

x0, x1: B×3×H×W in [−1, 1]; first the LPIPS scaling layer (x − shift) / scale with
shift = (−0.030, −0.088, −0.188), scale = (0.458, 0.448, 0.450); f_l: the five ReLU outputs of
AlexNet's `features` (after conv `features.0`, `.3`, `.6`, `.8`, `.10`; 64, 192, 384, 256, 256
channels); f̂_l = f_l / (‖f_l‖₂ over channels + 1e-10); w_l: the non-negative 1×1 convolutions
`lin{l}.model.1.weight` (1×C×1×1) of the released v0.1 linear calibration.

Weights are never downloaded and never random: two local files are needed.

- the linear layers: the `lpips` pip package's `weights/v0.1/alex.pth` (keys `lin0.model.1.weight`
  … `lin4.model.1.weight`, nothing else);
- the backbone: torchvision's ImageNet AlexNet `alexnet-owt-7be5be79.pth` (keys `features.N.*`,
  `classifier.*` ignored).

They are looked for, in this order (`find_lpips_weights`):

1. the `weights` / `backbone` arguments (a file, or a directory that holds the file by its standard name);
2. `$DAGAN_LPIPS_WEIGHTS`: a directory holding `alex.pth` (and optionally `alexnet-owt-7be5be79.pth`),
   or the path of the `alex.pth` file itself (the backbone is then looked for beside it);
3. `alex.pth` inside an installed `lpips` package (located with `importlib.util.find_spec`, not imported);
   the backbone in the torch hub cache `torch.hub.get_dir()/checkpoints/` — `$TORCH_HOME/hub/checkpoints`,
   by default `~/.cache/torch/hub/checkpoints`, where torchvision (and so `lpips`) downloads it.

Both files are read with `torch.load(..., weights_only=True)` and converted by a strict table
(`convert_lpips_state_dict`): every key is used or explicitly ignored, shapes must match.
"""

import functools
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dagan.errors import DaganError

ENV_VAR = "DAGAN_LPIPS_WEIGHTS"
LIN_FILENAME = "alex.pth"
BACKBONE_FILENAME = "alexnet-owt-7be5be79.pth"
LPIPS_CHANNELS = (64, 192, 384, 256, 256)
CONV_INDICES = (0, 3, 6, 8, 10)  # torchvision AlexNet `features` indices of the convolutions
TAP_INDICES = (1, 4, 7, 9, 11)  # the ReLUs whose outputs LPIPS compares
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LpipsUnavailable(DaganError):
    """The LPIPS weight files were not found where they are looked for automatically."""


class AlexNetFeatures(nn.Module):
    """torchvision's `alexnet().features` with the same parameter names (`features.0.weight`, …).

    forward: B×3×H×W → the five ReLU outputs, B×{64,192,384,256,256}×h_l×w_l.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features[: TAP_INDICES[-1] + 1]):
            x = layer(x)
            if index in TAP_INDICES:
                taps.append(x)
        return taps


class NetLinLayer(nn.Module):
    """LPIPS's per-layer 1×1 weighting, `model = Sequential(Dropout, Conv2d(C, 1, 1, bias=False))`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unit_normalize(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """B×C×H×W divided by its L2 norm over channels (+eps), as `lpips.normalize_tensor`."""
    return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 (AlexNet). forward(x0, x1): two B×3×H×W tensors in [−1, 1] → B distances (≥ 0).

    Parameters: `net.features.{0,3,6,8,10}.{weight,bias}` and `lin{0..4}.model.1.weight`. A freshly
    built instance has random weights and is only for tests; use `load_lpips` for real numbers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = AlexNetFeatures()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.lin0, self.lin1, self.lin2, self.lin3, self.lin4 = (NetLinLayer(c) for c in LPIPS_CHANNELS)
        self.eval()

    @property
    def lins(self) -> list[NetLinLayer]:
        return [self.lin0, self.lin1, self.lin2, self.lin3, self.lin4]

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[1] != 3:
            shapes = f"{tuple(x0.shape)}, {tuple(x1.shape)}"
            raise DaganError(f"LPIPS needs two B×3×H×W tensors of equal shape, got {shapes}")
        feats0 = self.net((x0 - self.shift) / self.scale)
        feats1 = self.net((x1 - self.shift) / self.scale)
        total = x0.new_zeros(x0.shape[0])
        for lin, f0, f1 in zip(self.lins, feats0, feats1):
            diff = (_unit_normalize(f0) - _unit_normalize(f1)) ** 2  # B×C×h×w
            total = total + lin(diff).mean(dim=(1, 2, 3))  # B×1×h×w → B
        return total


@torch.no_grad()
def lpips_distance(model: LPIPS, pred: np.ndarray, target: np.ndarray) -> float:
    """LPIPS between two H×W×3 float images in [0, 1] (mapped to [−1, 1]), on the model's device."""
    param = next(model.parameters())

    def to_tensor(image: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(image)).to(param.device, param.dtype)
        return t.permute(2, 0, 1).unsqueeze(0) * 2.0 - 1.0  # H×W×3 → 1×3×H×W in [−1, 1]

    return float(model(to_tensor(pred), to_tensor(target))[0])


# --- weight files ------------------------------------------------------------------------------


def _read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for non-checkpoints
        raise DaganError(f"cannot read LPIPS weights {path}: {type(err).__name__}: {err}".splitlines()[0]) from err
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DaganError(f"{path} is not a state dict of tensors")
    return state


def convert_lpips_state_dict(
    lin_state: Mapping[str, torch.Tensor], backbone_state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """`alex.pth` + torchvision AlexNet state dicts → the state dict of `LPIPS` (strict).

    lin file: exactly `lin{l}.model.1.weight`, l = 0…4. backbone: `features.{i}.{weight,bias}` for
    the five convolutions; `classifier.*` is ignored; any other key is an error.
    """
    out: dict[str, torch.Tensor] = {}
    expected_lin = {f"lin{l}.model.1.weight" for l in range(len(LPIPS_CHANNELS))}
    if set(lin_state) != expected_lin:
        extra = sorted(set(lin_state) - expected_lin)[:3]
        missing = sorted(expected_lin - set(lin_state))[:3]
        raise DaganError(f"LPIPS linear-layer file has unexpected keys {extra} / missing {missing}")
    out.update(lin_state)
    conv_keys = {f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")}
    for key, value in backbone_state.items():
        if key.startswith("classifier."):
            continue
        if key not in conv_keys:
            raise DaganError(f"AlexNet backbone file has an unexpected key {key!r}")
        out[f"net.{key}"] = value
    missing = sorted(conv_keys - set(backbone_state))
    if missing:
        raise DaganError(f"AlexNet backbone file lacks {missing[0]} (and {len(missing) - 1} more)")
    reference = LPIPS().state_dict()
    for key, value in out.items():
        if tuple(value.shape) != tuple(reference[key].shape):
            want = tuple(reference[key].shape)
            raise DaganError(f"LPIPS weight {key} has shape {tuple(value.shape)}, expected {want}")
    return {key: value.float() for key, value in out.items()}


def _lpips_package_lin_file() -> Path | None:
    """`alex.pth` shipped inside an installed `lpips` package, without importing it."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / LIN_FILENAME
    return path if path.is_file() else None


def _torch_hub_backbone_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILENAME


def _explicit(path: str | os.PathLike, filename: str, what: str) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise DaganError(f"{what} not found: {path}")
    return path


def find_lpips_weights(
    weights: str | os.PathLike | None = None, backbone: str | os.PathLike | None = None
) -> tuple[Path, Path]:
    """(alex.pth, alexnet-owt-7be5be79.pth) paths, searched in the order of the module docstring.

    Raises DaganError when an explicit argument does not exist, LpipsUnavailable (a DaganError whose
    message is the reason) when nothing is found automatically or $DAGAN_LPIPS_WEIGHTS is wrong.
    """
    lin_path: Path | None = None
    if weights is not None:
        lin_path = _explicit(weights, LIN_FILENAME, "LPIPS linear-layer weights")
    elif os.environ.get(ENV_VAR):
        env = Path(os.environ[ENV_VAR]).expanduser()
        lin_path = env / LIN_FILENAME if env.is_dir() else env
        if not lin_path.is_file():
            raise LpipsUnavailable(f"${ENV_VAR} is set but {lin_path} does not exist")
    else:
        lin_path = _lpips_package_lin_file()
        if lin_path is None:
            raise LpipsUnavailable(
                f"LPIPS weights not found: set ${ENV_VAR} to a folder holding {LIN_FILENAME} (from the lpips "
                f"package) and {BACKBONE_FILENAME} (torchvision), or install lpips"
            )

    if backbone is not None:
        return lin_path, _explicit(backbone, BACKBONE_FILENAME, "AlexNet backbone weights")
    candidates = [lin_path.parent / BACKBONE_FILENAME, _torch_hub_backbone_file()]
    for candidate in candidates:
        if candidate.is_file():
            return lin_path, candidate
    places = ", ".join(str(c.parent) for c in candidates)
    raise LpipsUnavailable(f"AlexNet backbone {BACKBONE_FILENAME} not found (looked in {places})")


@functools.lru_cache(maxsize=4)
def _converted(lin_path: str, backbone_path: str, _stamp: tuple[float, float]) -> dict[str, torch.Tensor]:
    return convert_lpips_state_dict(_read_state_dict(Path(lin_path)), _read_state_dict(Path(backbone_path)))


def load_lpips(weights: str | os.PathLike | None = None, backbone: str | os.PathLike | None = None) -> LPIPS:
    """A fresh LPIPS on the CPU, in eval mode, with the weights `find_lpips_weights` locates.

    The converted weights are cached per (paths, modification times), so repeated calls only
    rebuild the module. Raises DaganError (LpipsUnavailable when nothing was found automatically).
    """
    lin_path, backbone_path = find_lpips_weights(weights, backbone)
    stamp = (lin_path.stat().st_mtime, backbone_path.stat().st_mtime)
    model = LPIPS()
    model.load_state_dict(_converted(str(lin_path.resolve()), str(backbone_path.resolve()), stamp), strict=True)
    return model.eval().requires_grad_(False)


def try_load_lpips(
    weights: str | os.PathLike | None = None, backbone: str | os.PathLike | None = None
) -> tuple[LPIPS | None, str | None]:
    """(model, None), or (None, reason) when the weights are not available from the automatic
    locations. A wrong explicit path or a malformed file still raises DaganError."""
    try:
        return load_lpips(weights, backbone), None
    except LpipsUnavailable as err:
        return None, str(err)
