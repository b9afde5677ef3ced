"""The runtime the animation pipeline drives: the networks behind three calls.

The pipeline never calls a `DaGAN` directly. It calls a `Runtime`, so PyTorch and other backends
(ONNX Runtime) share one pipeline. Every tensor crossing this boundary is float32 on the CPU or on
`runtime.device`; what a runtime does inside (precision, fused kernels, another engine) is its own.

    state = runtime.prepare_source(source)          # 1×3×S×S in [0, 1], once per photo
    depth, kp = runtime.driving_keypoints(frames)   # B×3×S×S → B×1×S×S, Keypoints (B×K×2, B×K×2×2)
    frames = runtime.generate(state, kp_norm)       # normalised Keypoints → B×3×S×S in [0, 1]

A runtime may also offer `stack_states(states, repeats)`: one state whose batch holds each of several
sources `repeats` times, so the faces of a group photo run as one batch (the pipeline falls back to
one `generate` call per face without it).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import torch

from dagan.config import ModelConfig
from dagan.errors import DaganError
from dagan.geometry import Keypoints
from dagan.inference.hardware import precision_note

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@runtime_checkable
class Runtime(Protocol):
    """What the pipeline needs of a model. `state` is opaque to the pipeline except `.keypoints`."""

    config: ModelConfig
    device: torch.device
    precision: str

    def prepare_source(self, source: torch.Tensor) -> Any: ...

    def driving_keypoints(self, frames: torch.Tensor) -> tuple[torch.Tensor, Keypoints]: ...

    def generate(self, state: Any, kp_norm: Keypoints) -> torch.Tensor: ...


def autocast_context(device: torch.device, precision: str):
    """Autocast for bf16/fp16 where the device supports it; fp32 is a no-op."""
    if precision not in PRECISIONS:
        raise DaganError(f"unknown precision {precision!r}; choose fp32, bf16 or fp16")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if device.type == "cpu" and dtype is torch.float16:
        raise DaganError("--precision fp16 is not supported on CPU; use bf16 or fp32")
    if device.type == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise DaganError("--precision bf16 is not supported by this GPU; use fp16 or fp32")
    return torch.autocast(device_type=device.type, dtype=dtype)


def float_keypoints(kp: Keypoints) -> Keypoints:
    """Keypoints in float32 (reduced-precision runs may return bf16/fp16) for the motion transfer."""
    return Keypoints(kp.value.float(), None if kp.jacobian is None else kp.jacobian.float())


class TorchRuntime:
    """A `DaGAN` on one device at one precision, run through its inference form.

    The form (`dagan.inference.optimize.inference_form`: BatchNorm folded, weights cast once,
    channels_last, optionally `torch.compile`) is built here from `model`, which is left untouched.
    """

    def __init__(self, model, device: torch.device, precision: str = "fp32", compile: bool = False):
        from dagan.inference.optimize import inference_form

        autocast_context(device, precision)  # validate the combination before any work
        note = precision_note(device, precision)
        if note:
            print(note, file=sys.stderr)
        self.model = inference_form(model, device, precision, compile=compile)
        self.source_model = model  # as loaded: what motion files' model identifier is computed from
        self.config = model.config
        self.device = device
        self.precision = precision

    @contextlib.contextmanager
    def _guard(self, batch: int):
        """An out-of-memory batch becomes one DaganError that names the fix."""
        try:
            yield
        except torch.OutOfMemoryError:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise DaganError(f"out of {self.device.type.upper()} memory on a batch of {batch} frames at "
                             f"{self.precision}; use a smaller --batch-size (e.g. {max(1, batch // 2)})") from None

    @torch.no_grad()
    def prepare_source(self, source: torch.Tensor):
        with self._guard(source.shape[0]):
            state = self.model.prepare_source(source.to(self.device))
        state.keypoints = float_keypoints(state.keypoints)
        return state

    @torch.no_grad()
    def driving_keypoints(self, frames: torch.Tensor) -> tuple[torch.Tensor, Keypoints]:
        with self._guard(frames.shape[0]):
            frames = frames.to(self.device)
            depth = self.model.estimate_depth(frames)
            kp = self.model.detect_keypoints(frames, depth)
        return depth.float(), float_keypoints(kp)

    def stack_states(self, states: list, repeats: int):
        """One SourceState of F·repeats rows, face-major: rows f·repeats … (f+1)·repeats − 1 are states[f].

        The generator takes a source batch equal to the driving batch, so F faces × T frames run
        as one call with keypoints stacked the same way (`Keypoints.cat` of the F normalised sets).
        """
        def rows(tensors: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat([t.expand(repeats, *t.shape[1:]) for t in tensors])  # (F·repeats)×…

        kps = [s.keypoints for s in states]
        jac = None if kps[0].jacobian is None else rows([k.jacobian for k in kps])
        return replace(
            states[0],
            image=rows([s.image for s in states]),
            depth=rows([s.depth for s in states]),
            keypoints=Keypoints(rows([k.value for k in kps]), jac),
            features=replace(states[0].features, image=rows([s.features.image for s in states]),
                             depth=rows([s.features.depth for s in states])),
        )

    @torch.no_grad()
    def generate(self, state, kp_norm: Keypoints) -> torch.Tensor:
        with self._guard(kp_norm.value.shape[0]):
            out = self.model.generate(state, kp_norm.to(self.device))
        return out["prediction"].float().clamp(0, 1)
