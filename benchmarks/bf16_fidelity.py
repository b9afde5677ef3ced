"""bf16 fidelity on better-conditioned weights: vox-256 with the parity fixtures' recipe-B weights.

    python benchmarks/bf16_fidelity.py

The speed benchmark (animate_speed.py) uses random weights; this one builds vox-256 with recipe B
(../shared/reference/README.md: normalisations near 1, attention γ near 1, jacobians near identity)
and animates the fixture's source with 8 frames made from its two driving frames (as they are,
mirrored, flipped, shifted). It prints the PSNR against our fp32 form of the bf16 form as the
inference form builds it here, and of bf16 forms without Winograd and without the narrow heads,
so the bf16 rewrites' cost in fidelity is measured on weights whose outputs are not saturated.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "onnx")]

from test_onnx_parity import fixture_inputs, recipe_model  # noqa: E402  (the tests' recipe-B builder)

from dagan.config import get_preset  # noqa: E402
from dagan.inference.hardware import cpu_name, onednn_uses_amx  # noqa: E402
from dagan.inference.optimize import conv_rewrite_dtypes, inference_form  # noqa: E402


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    model = recipe_model(get_preset("vox-256"), "B")
    source, pair = fixture_inputs("B", 256)
    driving = torch.cat([pair, pair.flip(3), pair.flip(2), pair.roll(17, 3)])
    ref = inference_form(model, "cpu", "fp32").animate(source, driving, batch_size=8).float()
    print(f"CPU: {cpu_name()}; oneDNN on AMX: {onednn_uses_amx()}; "
          f"default conv rewrites for: {[str(d).removeprefix('torch.') for d in conv_rewrite_dtypes(True)]}")
    print(f"our fp32 output: std {float(ref.std()):.3f}, "
          f"share of pixels in (0.02, 0.98) {float(((ref > 0.02) & (ref < 0.98)).float().mean()):.3f}")
    forms = {"bf16 (the form's default here)": {}, "bf16 with bf16 Winograd": {"winograd": True},
             "bf16 without Winograd": {"winograd": False}, "bf16 without narrow heads": {"narrow": False}}
    for name, kwargs in forms.items():
        out = inference_form(model, "cpu", "bf16", **kwargs).animate(source, driving, batch_size=8).float()
        print(f"{name:32s} {psnr(out, ref):6.1f} dB vs our fp32, max |diff| {float((out - ref).abs().max()):.4f}")


if __name__ == "__main__":
    main()
