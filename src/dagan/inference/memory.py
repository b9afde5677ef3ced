"""Keep freed tensor memory in the process for reuse, instead of returning it to the OS (glibc).

PyTorch's CPU tensors come from malloc. glibc serves blocks above its mmap threshold (at most 32 MB
by default) with a fresh mmap and unmaps them on free, so every large activation of a batched
frame (a B×256×64×64 feature map is 33.5 MB at batch 8) is faulted in page by page again on each
call. Raising the mmap and trim thresholds lets freed blocks be reused: on the 2-core AMD EPYC,
vox-256 at batch 8 went from 8.0–9.8 s to 6.6–6.8 s per 8 frames (benchmarks/animate_speed.py
prints its effect). The price: the process keeps its peak heap after a run instead of shrinking.
Set DAGAN_KEEP_FREED_MEMORY=0 to leave the allocator as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the reusable heap
TRIM_THRESHOLD = (1 << 31) - 1  # never hand the top of the heap back
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are in effect.

    False where it does not apply (not Linux/glibc) or DAGAN_KEEP_FREED_MEMORY=0. Idempotent.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("DAGAN_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs without mallopt
        return False
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
