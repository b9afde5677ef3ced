"""bf16 fidelity where outputs are not saturated: vox-256 with recipe-B weights, and the trained demo model.

    python benchmarks/bf16_fidelity.py

The speed benchmark (animate_speed.py) uses random weights. This one measures, against our fp32
form, the PSNR of the bf16 form as the inference form builds it here, with bf16 Winograd forced on,
and without Winograd or the narrow heads, on two models:
- vox-256 with the parity fixtures' recipe-B weights (../shared/reference/README.md: normalisations
  near 1, attention γ near 1, jacobians near identity), animating the fixture's source with 8
  frames made from its two driving frames (as they are, mirrored, flipped, shifted);
- the bundled demo model (trained, 128²) on the bundled source and the first 16 frames of the
  bundled driving video, resized to 128².
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "onnx"), str(ROOT / "benchmarks")]

from animate_speed import psnr  # noqa: E402
from test_onnx_parity import fixture_inputs, recipe_model  # noqa: E402  (the tests' recipe-B builder)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dagan import DaGAN  # noqa: E402
from dagan.assets import DEMO_MODEL, sample_driving, sample_source  # noqa: E402
from dagan.config import get_preset  # noqa: E402
from dagan.io.image import read_image  # noqa: E402
from dagan.io.video import iter_frames  # noqa: E402
from dagan.inference.hardware import cpu_name, onednn_uses_amx  # noqa: E402
from dagan.inference.optimize import conv_rewrite_dtypes, inference_form  # noqa: E402


FORMS = {"bf16 (the form's default here)": {}, "bf16 with bf16 Winograd": {"winograd": True},
         "bf16 without Winograd": {"winograd": False}, "bf16 without narrow heads": {"narrow": False}}


def demo_inputs(size: int, frames: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled source 1×3×size² and the first `frames` driving frames, resized by Pillow."""
    def tensor(rgb: np.ndarray) -> torch.Tensor:
        image = Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255

    source = tensor((read_image(sample_source()) * 255).round().astype(np.uint8))[None]
    stream = iter_frames(sample_driving())
    driving = torch.stack([tensor(frame) for _, frame in zip(range(frames), stream)])
    stream.close()
    return source, driving


def compare(name: str, model, source: torch.Tensor, driving: torch.Tensor) -> None:
    ref = inference_form(model, "cpu", "fp32").animate(source, driving, batch_size=8).float()
    print(f"{name}: our fp32 output std {float(ref.std()):.3f}, "
          f"share of pixels in (0.02, 0.98) {float(((ref > 0.02) & (ref < 0.98)).float().mean()):.3f}")
    for form, kwargs in FORMS.items():
        out = inference_form(model, "cpu", "bf16", **kwargs).animate(source, driving, batch_size=8).float()
        print(f"  {form:32s} {psnr(out, ref):6.1f} dB vs our fp32, max |diff| {float((out - ref).abs().max()):.4f}")


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    print(f"CPU: {cpu_name()}; oneDNN on AMX: {onednn_uses_amx()}; "
          f"default conv rewrites for: {[str(d).removeprefix('torch.') for d in conv_rewrite_dtypes(True)]}")
    source, pair = fixture_inputs("B", 256)
    driving = torch.cat([pair, pair.flip(3), pair.flip(2), pair.roll(17, 3)])
    compare("vox-256, recipe-B weights, fixture inputs", recipe_model(get_preset("vox-256"), "B"), source, driving)
    demo = DaGAN.from_pretrained(DEMO_MODEL)
    compare("demo model, bundled sample", demo, *demo_inputs(demo.config.image_size))


if __name__ == "__main__":
    main()
