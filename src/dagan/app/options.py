"""Animation options as HTTP form fields, named as the `dagan animate` flags (`--paste-back` → `paste_back`).

One table drives the parsing, the error messages and the OpenAPI schema, so they cannot disagree.
Dashes are accepted for underscores (`paste-back`). Flags take true/false, 1/0, yes/no or on/off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from dagan.errors import DaganError
from dagan.inference.pipeline import AnimateOptions
from dagan.inference.runtime import PRECISIONS

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
MAX_BATCH = 64


@dataclass(frozen=True)
class Field:
    """One form field: its OpenAPI type, a description, and a parser of the raw string."""

    kind: str  # OpenAPI type: boolean, integer, number, string
    help: str
    parse: Callable[[str, str], object]
    enum: tuple[str, ...] | None = None


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DaganError(f"field {name!r} must be true or false, got {raw!r}")


def _best_frame(name: str, raw: str) -> str | int | None:
    value = raw.strip().lower()
    if value in ("", "none", "first"):
        return None
    if value == "auto":
        return "auto"
    try:
        index = int(value)
    except ValueError:
        raise DaganError(f"field {name!r} must be 'auto' or a frame number, got {raw!r}") from None
    if index < 0:
        raise DaganError(f"field {name!r} must be ≥ 0, got {index}")
    return index


def _number(cast: type, low: float, high: float, unit: str = ""):
    """A parser for an int or float field within [low, high]."""
    kind = "an integer" if cast is int else "a number"

    def parse(name: str, raw: str):
        try:
            value = cast(raw)
        except ValueError:
            raise DaganError(f"field {name!r} must be {kind}{unit}, got {raw!r}") from None
        if not low <= value <= high:
            raise DaganError(f"field {name!r} must be between {low:g} and {high:g}{unit}, got {raw!r}")
        return value

    return parse


def _precision(name: str, raw: str) -> str:
    if raw not in PRECISIONS:
        raise DaganError(f"field {name!r} must be one of {', '.join(PRECISIONS)}, got {raw!r}")
    return raw


def _text(name: str, raw: str) -> str:
    return raw.strip()


OPTION_FIELDS: dict[str, Field] = {
    "model": Field("string", "model name from GET /api/health (default: the first, the bundled demo model)", _text),
    "relative": Field("boolean", "relative motion against the initial driving frame (the default)", _flag),
    "absolute": Field("boolean", "absolute keypoint motion (--absolute)", _flag),
    "no_adapt_scale": Field("boolean", "do not scale the motion by the keypoint hull areas", _flag),
    "best_frame": Field("string", "initial driving frame: 'auto' (closest landmarks) or a frame number", _best_frame),
    "smooth_keypoints": Field("number", "One-Euro keypoint smoothing, min cutoff in Hz (0 = off)",
                              _number(float, 0, 100, " Hz")),
    "no_crop": Field("boolean", "inputs are already face crops", _flag),
    "paste_back": Field("boolean", "blend the face back into the full-size photo", _flag),
    "side_by_side": Field("boolean", "source | driving | result | depth | keypoints panels", _flag),
    "no_audio": Field("boolean", "do not copy the driving audio", _flag),
    "batch_size": Field("integer", f"driving frames per batch (1…{MAX_BATCH}, default 8)",
                        _number(int, 1, MAX_BATCH)),
    "precision": Field("string", "fp32, bf16 or fp16 (fp16 needs a GPU)", _precision, tuple(PRECISIONS)),
}
FILE_FIELDS = {"source": "the source photo (any image Pillow reads)",
               "driving": "the driving video (any video FFmpeg decodes)"}


@dataclass
class Request:
    """A parsed animation request: the model name, the precision and the pipeline options."""

    model: str | None
    precision: str
    options: AnimateOptions


def parse_options(form: Mapping[str, str]) -> Request:
    """Form fields (everything but the files) → Request; unknown or contradictory fields are DaganErrors."""
    values: dict[str, object] = {}
    for raw_name, raw in form.items():
        name = raw_name.replace("-", "_")
        field = OPTION_FIELDS.get(name)
        if field is None:
            known = ", ".join([*FILE_FIELDS, *OPTION_FIELDS])
            raise DaganError(f"unknown field {raw_name!r}; the fields are: {known}")
        values[name] = field.parse(name, raw)
    if values.get("relative") and values.get("absolute"):
        raise DaganError("fields 'relative' and 'absolute' cannot both be true; choose one")
    if values.get("paste_back") and values.get("side_by_side"):
        raise DaganError("fields 'paste_back' and 'side_by_side' cannot both be true; choose one")
    options = AnimateOptions(
        relative=not values.get("absolute", False),
        adapt_movement_scale=not values.get("no_adapt_scale", False),
        best_frame=values.get("best_frame"),
        crop=not values.get("no_crop", False),
        paste_back=bool(values.get("paste_back", False)),
        side_by_side=bool(values.get("side_by_side", False)),
        smooth_keypoints=float(values.get("smooth_keypoints", 0.0)),
        audio=not values.get("no_audio", False),
        batch_size=int(values.get("batch_size", 8)),
    )
    return Request(values.get("model") or None, str(values.get("precision", "fp32")), options)


def multipart_schema() -> dict:
    """OpenAPI requestBody for the animation endpoints (multipart: two files + the option fields)."""
    properties: dict[str, dict] = {name: {"type": "string", "format": "binary", "description": text}
                                   for name, text in FILE_FIELDS.items()}
    for name, field in OPTION_FIELDS.items():
        prop = {"type": field.kind, "description": field.help}
        if field.enum:
            prop["enum"] = list(field.enum)
        properties[name] = prop
    schema = {"type": "object", "required": list(FILE_FIELDS), "properties": properties}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
