"""Bundled sample inputs and the bundled demo model, located inside the installed package."""

from __future__ import annotations

from pathlib import Path


HERE = Path(__file__).resolve().parent
DEMO_MODEL = HERE / "demo_model"


def sample_source() -> Path:
    return HERE / "sample_source.png"


def sample_driving() -> Path:
    return HERE / "sample_driving.mp4"


def resolve_model(spec: str | None):
    """(model, description) for --model: a directory, `preset:NAME` (untrained), or the bundled demo model.

    A directory written by `dagan export` gives an `OnnxModel` (the pipeline makes its runtime).
    """
    from dagan.config import get_preset
    from dagan.models import DaGAN

    if spec is None:
        if (DEMO_MODEL / "config.json").is_file():
            return DaGAN.from_pretrained(DEMO_MODEL), _describe_demo()
        model, description = resolve_model("preset:vox-256")
        return model, (description + ". No trained demo model is bundled in this install yet: pass --model DIR "
                       "(convert the released weights with `dagan convert`, see the README)")
    if spec.startswith("preset:"):
        name = spec.split(":", 1)[1]
        import torch

        torch.manual_seed(0)
        model = DaGAN(get_preset(name)).eval()
        return model, (f"UNTRAINED {name} architecture with random weights: the output is noise-like and "
                       "only useful to test the pipeline or measure speed")
    from dagan.onnx.runtime import OnnxModel, is_onnx_dir

    if is_onnx_dir(spec):
        model = OnnxModel(spec)
        return model, model.description
    return DaGAN.from_pretrained(spec), f"{spec}"


def _describe_demo() -> str:
    import json

    info = json.loads((DEMO_MODEL / "config.json").read_text())
    note = info.get("description", "bundled demo model")
    return f"bundled demo model ({note})"
