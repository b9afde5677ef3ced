"""Shared ONNX exports (each export costs seconds, so every one is made once per test session)."""

import onnxruntime  # noqa: F401  the ONNX tests fail, not skip, without the dagan[onnx] extra
import pytest

from dagan.assets import DEMO_MODEL
from dagan.models import DaGAN
from dagan.onnx import export_onnx


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory):
    """The bundled demo model, exported as `dagan export` does."""
    return export_onnx(DaGAN.from_pretrained(DEMO_MODEL), tmp_path_factory.mktemp("onnx") / "demo")
