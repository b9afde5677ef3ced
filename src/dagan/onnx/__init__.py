"""ONNX export (`dagan export`) and the onnxruntime backend (`dagan animate --model EXPORTED_DIR`)."""

from dagan.onnx.export import DEFAULT_OPSET, export_onnx
from dagan.onnx.runtime import OnnxModel, OnnxRuntime, is_onnx_dir

__all__ = ["DEFAULT_OPSET", "OnnxModel", "OnnxRuntime", "export_onnx", "is_onnx_dir"]
