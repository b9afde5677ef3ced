"""The models a server offers, by name: loaded once at start-up through `dagan.assets.resolve_model`.

The bundled demo model is always offered first, as "demo". Each `--models DIR` is offered under the
directory's name. Pipelines are built per (model, precision) on first use and then reused; whatever
`resolve_model` returns (a DaGAN, or an object with `make_runtime` such as an ONNX model directory)
goes to `AnimationPipeline`, which knows how to drive it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from dagan import assets
from dagan.errors import DaganError
from dagan.inference.pipeline import AnimationPipeline

DEMO = "demo"


@dataclass
class ModelEntry:
    name: str
    model: object
    description: str
    pipelines: dict[str, AnimationPipeline] = field(default_factory=dict)


class ModelRegistry:
    """Name → model; `pipeline(name, precision)` builds (once) the pipeline that animates with it."""

    def __init__(self, dirs: list[str] | None = None, device: str = "cpu"):
        self.device = device
        self._lock = threading.Lock()
        self.entries: dict[str, ModelEntry] = {}
        model, description = assets.resolve_model(None)
        self.entries[DEMO] = ModelEntry(DEMO, model, description)
        for d in dirs or []:
            path = Path(d)
            name = path.resolve().name
            if name in self.entries:
                raise DaganError(f"--models {d}: a model named {name!r} is already offered; rename the directory")
            if not path.is_dir():
                raise DaganError(f"--models {d}: not a directory")
            model, description = assets.resolve_model(str(path))
            self.entries[name] = ModelEntry(name, model, description)

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str | None) -> ModelEntry:
        entry = self.entries.get(name or DEMO)
        if entry is None:
            raise DaganError(f"unknown model {name!r}; the models are: {', '.join(self.entries)}")
        return entry

    def pipeline(self, name: str | None, precision: str = "fp32") -> AnimationPipeline:
        """The pipeline for a model at a precision (a DaganError if the device cannot run it)."""
        entry = self.get(name)
        with self._lock:
            pipe = entry.pipelines.get(precision)
            if pipe is None:
                pipe = AnimationPipeline(entry.model, device=self.device, precision=precision, progress=False)
                entry.pipelines[precision] = pipe
            return pipe

    def describe(self) -> list[dict]:
        return [{"name": e.name, "description": e.description} for e in self.entries.values()]
