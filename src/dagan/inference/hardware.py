"""What the machine offers for reduced precision: CPU name and flags, native bf16 support."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpuinfo_field(name: str) -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_name() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (Linux), or None where they cannot be read."""
    flags = _cpuinfo_field("flags")
    return None if flags is None else set(flags.split())


def native_bf16(device: torch.device) -> bool | None:
    """Whether bf16 matmuls/convs run natively: CUDA with bf16 support, or a CPU with AMX-BF16 or
    AVX-512-BF16. None where the CPU's flags are unknown (not Linux x86)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    flags = cpu_flags()
    if flags is None:
        return None
    return any(f in flags for f in BF16_FLAGS)


def onednn_uses_amx() -> bool:
    """Whether oneDNN's bf16 kernels run on AMX tiles here: the CPU has AMX-BF16 and
    ONEDNN_MAX_CPU_ISA, if set, does not cap the ISA below it. With AMX a direct bf16 conv is fast at
    any width, so the bf16 conv rewrites (Winograd, narrow heads) would not pay."""
    flags = cpu_flags()
    if flags is None or "amx_bf16" not in flags:
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return cap in ("", "ALL", "DEFAULT") or "AMX" in cap


def precision_note(device: torch.device, precision: str) -> str | None:
    """One line for the user when a precision is allowed but slow here, else None."""
    if precision == "bf16" and device.type == "cpu" and native_bf16(device) is False:
        return ("note: this CPU has no native bf16 (no AMX-BF16 or AVX-512-BF16); --precision bf16 is emulated "
                "and will be slow: use --precision fp32")
    return None
