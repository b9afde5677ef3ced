"""Training augmentation: flips and colour jitter applied identically to every frame of one sample.

Two presets cover the two training stages:

* `pair_augmentation()`: the original `AllAugmentationTransform` of `config/vox-adv-256.yaml`
  (stage 2, keypoints + generator). Time flip with p = 0.5, otherwise a horizontal flip with
  p = 0.5 (so: time flip 1/2, horizontal flip 1/4, neither 1/4); then colour jitter with
  brightness, contrast, saturation and hue all 0.1, the four operations in random order.
* `depth_augmentation()`: the monodepth2-style augmentation of Face-Depth-Network (stage 1, depth).
  Colour jitter (brightness, contrast, saturation in [0.8, 1.2], hue in [-0.1, 0.1]) with p = 0.5,
  horizontal flip with p = 0.5, no time flip.

The colour operations follow torchvision's *tensor* definitions (`adjust_brightness` blends with
black, `adjust_contrast` with the mean grey level of each frame, `adjust_saturation` with the
ITU-R 601 grey image, `adjust_hue` rotates the hue in HSV space); each result is clamped to
[0, 1]. The original applied the same operations to uint8 PIL images, so its outputs are
quantised to 8 bits; here they stay in float.

Randomness: every random decision is drawn by `ClipAugmentation.sample` from an explicit
`numpy.random.Generator` or `torch.Generator`, always consuming the same number of draws, so
a sample is reproducible from its generator alone. `apply` is deterministic given the drawn
`AugmentParams`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "AugmentParams",
    "ClipAugmentation",
    "JitterParams",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "color_jitter",
    "depth_augmentation",
    "hsv_to_rgb",
    "pair_augmentation",
    "rgb_to_grayscale",
    "rgb_to_hsv",
]

JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def _check_rgb(img: torch.Tensor) -> None:
    if not isinstance(img, torch.Tensor) or img.dim() < 3 or img.shape[-3] != 3:
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"expected a float tensor of shape ...×3×H×W, got {shape}")
    if not img.is_floating_point():
        raise ValueError(f"expected a float tensor in [0, 1], got dtype {img.dtype}")


# --------------------------------------------------------------------------------------------
# Colour operations (torchvision tensor semantics, float in [0, 1])


def rgb_to_grayscale(img: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma, torchvision's weights: ...×3×H×W → ...×1×H×W."""
    _check_rgb(img)
    r, g, b = img.unbind(dim=-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(img: torch.Tensor, other: torch.Tensor | float, ratio: float) -> torch.Tensor:
    return (ratio * img + (1.0 - ratio) * other).clamp(0.0, 1.0)


def _check_factor(factor: float, name: str) -> float:
    factor = float(factor)
    if not factor >= 0.0:  # also rejects NaN
        raise ValueError(f"{name} factor must be a non-negative number, got {factor}")
    return factor


def adjust_brightness(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with black: factor 0 gives black, 1 the input, 2 doubles every value (clamped)."""
    _check_rgb(img)
    return _blend(img, 0.0, _check_factor(factor, "brightness"))


def adjust_contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the mean grey level of each image (mean over C, H, W of the luma): ...×3×H×W."""
    _check_rgb(img)
    mean = rgb_to_grayscale(img).mean(dim=(-3, -2, -1), keepdim=True)  # ...×1×1×1
    return _blend(img, mean, _check_factor(factor, "contrast"))


def adjust_saturation(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the grey image: factor 0 gives greyscale, 1 the input."""
    _check_rgb(img)
    return _blend(img, rgb_to_grayscale(img), _check_factor(factor, "saturation"))


def rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    """...×3×H×W RGB in [0, 1] → ...×3×H×W HSV, all channels in [0, 1] (hue in turns)."""
    _check_rgb(img)
    r, g, b = img.unbind(dim=-3)
    maxc = img.amax(dim=-3)
    minc = img.amin(dim=-3)
    grey = maxc == minc
    chroma = maxc - minc
    ones = torch.ones_like(maxc)
    s = chroma / torch.where(grey, ones, maxc)
    divisor = torch.where(grey, ones, chroma)
    rc = (maxc - r) / divisor
    gc = (maxc - g) / divisor
    bc = (maxc - b) / divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.remainder((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def hsv_to_rgb(img: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_hsv`; hue is taken modulo 1 turn."""
    _check_rgb(img)
    h, s, v = img.unbind(dim=-3)
    h6 = torch.remainder(h, 1.0) * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    sector = sector.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    # For each of the 6 hue sectors, which of (v, q, p, t) goes to R, G and B.
    r = torch.stack((v, q, p, p, t, v), dim=-3)  # ...×6×H×W
    g = torch.stack((t, v, v, q, p, p), dim=-3)
    b = torch.stack((p, p, t, v, v, q), dim=-3)
    idx = sector.unsqueeze(-3)  # ...×1×H×W
    return torch.cat([c.gather(-3, idx) for c in (r, g, b)], dim=-3)


def adjust_hue(img: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by `shift` turns (torchvision's `hue_factor`; any real value, taken mod 1)."""
    _check_rgb(img)
    shift = float(shift)
    if not np.isfinite(shift):
        raise ValueError(f"hue shift must be finite, got {shift}")
    hsv = rgb_to_hsv(img)
    h = torch.remainder(hsv[..., 0, :, :] + shift, 1.0)
    return hsv_to_rgb(torch.stack((h, hsv[..., 1, :, :], hsv[..., 2, :, :]), dim=-3))


@dataclass(frozen=True)
class JitterParams:
    """One drawn colour jitter: factors (1 = unchanged), hue shift in turns, and the order of ops."""

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    order: tuple[str, ...] = JITTER_OPS

    def __post_init__(self):
        unknown = set(self.order) - set(JITTER_OPS)
        if unknown:
            raise ValueError(f"unknown jitter operations {sorted(unknown)}; known: {JITTER_OPS}")


_JITTER_FUNCS = {
    "brightness": adjust_brightness,
    "contrast": adjust_contrast,
    "saturation": adjust_saturation,
    "hue": adjust_hue,
}


def color_jitter(img: torch.Tensor, params: JitterParams) -> torch.Tensor:
    """Apply `params` to ...×3×H×W (the same factors to every image; contrast uses each one's mean)."""
    _check_rgb(img)
    for name in params.order:
        img = _JITTER_FUNCS[name](img, getattr(params, name))
    return img


# --------------------------------------------------------------------------------------------
# Random clip augmentation


@dataclass(frozen=True)
class AugmentParams:
    """Everything random about one augmented sample; `ClipAugmentation.apply` is a pure function of it."""

    time_flip: bool = False
    horizontal_flip: bool = False
    jitter: JitterParams | None = None


Rng = np.random.Generator | torch.Generator


def _uniforms(rng: Rng, n: int) -> list[float]:
    if isinstance(rng, np.random.Generator):
        return rng.random(n).tolist()
    if isinstance(rng, torch.Generator):
        return torch.rand(n, generator=rng, dtype=torch.float64).tolist()
    raise TypeError(f"rng must be a numpy.random.Generator or torch.Generator, got {type(rng).__name__}")


def _permutation(rng: Rng, n: int) -> list[int]:
    if isinstance(rng, np.random.Generator):
        return rng.permutation(n).tolist()
    return torch.randperm(n, generator=rng).tolist()


def _factor_range(value, name: str, *, hue: bool = False) -> tuple[float, float]:
    """torchvision's ColorJitter convention: x → [max(0, 1 - x), 1 + x] (hue: [-x, x]) or (lo, hi)."""
    if isinstance(value, (int, float)):
        x = float(value)
        if not x >= 0:
            raise ValueError(f"{name} jitter must be non-negative, got {value}")
        lo, hi = (-x, x) if hue else (max(0.0, 1.0 - x), 1.0 + x)
    else:
        lo, hi = (float(v) for v in value)
    if not lo <= hi or (not hue and lo < 0):
        raise ValueError(f"bad {name} jitter range ({lo}, {hi})")
    return lo, hi


@dataclass(frozen=True)
class ClipAugmentation:
    """Random flips and colour jitter applied identically to the F frames of one sample.

    Attributes:
        time_flip_prob: probability of reversing the frame order (for a pair: swapping source
            and driving).
        hflip_prob: probability of a horizontal flip, drawn only when the time flip did not
            happen (the original's `RandomFlip` logic).
        brightness, contrast, saturation: x for a factor uniform in [max(0, 1 - x), 1 + x], or an
            explicit (lo, hi) range; 0 disables the operation.
        hue: x for a hue shift uniform in [-x, x] turns, or (lo, hi); 0 disables it.
        jitter_prob: probability of applying the colour jitter at all.
        shuffle_jitter: apply the enabled colour operations in a random order (as the original);
            otherwise in the order brightness, contrast, saturation, hue.
    """

    time_flip_prob: float = 0.5
    hflip_prob: float = 0.5
    brightness: float | tuple[float, float] = 0.1
    contrast: float | tuple[float, float] = 0.1
    saturation: float | tuple[float, float] = 0.1
    hue: float | tuple[float, float] = 0.1
    jitter_prob: float = 1.0
    shuffle_jitter: bool = True
    _ranges: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("time_flip_prob", "hflip_prob", "jitter_prob"):
            p = getattr(self, name)
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        ranges = {name: _factor_range(getattr(self, name), name, hue=name == "hue") for name in JITTER_OPS}
        object.__setattr__(self, "_ranges", ranges)

    def _enabled(self) -> list[str]:
        neutral = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}
        return [n for n in JITTER_OPS if self._ranges[n] != (neutral[n], neutral[n])]

    def sample(self, rng: Rng) -> AugmentParams:
        """Draw one sample's parameters; always consumes 7 uniforms and one permutation of 4."""
        u_time, u_flip, u_jitter, u_b, u_c, u_s, u_h = _uniforms(rng, 7)
        order = [JITTER_OPS[i] for i in _permutation(rng, 4)]
        time_flip = u_time < self.time_flip_prob
        hflip = not time_flip and u_flip < self.hflip_prob
        jitter = None
        enabled = self._enabled()
        if enabled and u_jitter < self.jitter_prob:
            factors = {}
            for name, u in zip(JITTER_OPS, (u_b, u_c, u_s, u_h)):
                lo, hi = self._ranges[name]
                factors[name] = lo + (hi - lo) * u
            if not self.shuffle_jitter:
                order = list(JITTER_OPS)
            jitter = JitterParams(**factors, order=tuple(n for n in order if n in enabled))
        return AugmentParams(time_flip=time_flip, horizontal_flip=hflip, jitter=jitter)

    @staticmethod
    def apply_geometry(frames: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Flips only: F×3×H×W → F×3×H×W."""
        _check_rgb(frames)
        if params.time_flip:
            frames = frames.flip(0)
        if params.horizontal_flip:
            frames = frames.flip(-1)
        return frames

    @staticmethod
    def apply_color(frames: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Colour jitter only: F×3×H×W → F×3×H×W."""
        _check_rgb(frames)
        return frames if params.jitter is None else color_jitter(frames, params.jitter)

    def apply(self, frames: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Flips, then colour jitter: F×3×H×W float in [0, 1] → F×3×H×W."""
        return self.apply_color(self.apply_geometry(frames, params), params)

    def __call__(self, frames: torch.Tensor, rng: Rng) -> torch.Tensor:
        return self.apply(frames, self.sample(rng))


def pair_augmentation() -> ClipAugmentation:
    """The original stage-2 augmentation (`vox-adv-256.yaml`: time + horizontal flip, jitter 0.1)."""
    return ClipAugmentation(
        time_flip_prob=0.5, hflip_prob=0.5, brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1
    )


def depth_augmentation() -> ClipAugmentation:
    """The stage-1 depth augmentation (monodepth2 / Face-Depth-Network): jitter p=0.5, hflip p=0.5."""
    return ClipAugmentation(
        time_flip_prob=0.0,
        hflip_prob=0.5,
        brightness=(0.8, 1.2),
        contrast=(0.8, 1.2),
        saturation=(0.8, 1.2),
        hue=(-0.1, 0.1),
        jitter_prob=0.5,
    )
