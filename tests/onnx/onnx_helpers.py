"""Comparisons used by the ONNX tests: max abs difference and PSNR against PyTorch fp32."""

import math

import numpy as np
import torch

MAX_ABS, MIN_PSNR = 1e-3, 45.0  # the bounds for fp32 parity


def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def max_abs(a, b) -> float:
    a, b = as_numpy(a).astype(np.float64), as_numpy(b).astype(np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max())


def psnr(a, b, peak: float = 1.0) -> float:
    mse = float(((as_numpy(a).astype(np.float64) - as_numpy(b).astype(np.float64)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def assert_parity(actual, expected, what: str, *, image: bool = False) -> None:
    err = max_abs(actual, expected)
    assert err <= MAX_ABS, f"{what}: max abs diff {err:.3g} > {MAX_ABS}"
    if image:
        value = psnr(actual, expected)
        assert value >= MIN_PSNR, f"{what}: PSNR {value:.1f} dB < {MIN_PSNR}"
