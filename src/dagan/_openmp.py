"""How long PyTorch's idle OpenMP threads spin, set before torch is imported.

PyTorch's CPU wheels use GNU libgomp, whose idle threads busy-wait 300,000 iterations before
sleeping. `dagan animate` decodes, tracks and encodes on background threads next to the networks;
on a 2-core CPU the spinning took their cores: 1080p pipeline CPU per frame 108–110 ms with the
default against 79–93 ms with 2000 (`benchmarks/pipeline_speed.py`, three alternating runs each),
networks alone at batch 8 unchanged within the noise. The cost: a thread woken from sleep starts
later, which slows many small parallel regions; the original's batch-1 way on vox-256 ran at 0.81
frames/s against 0.92 with the default (two alternating runs of `benchmarks/animate_speed.py`,
which therefore keeps the default). Set GOMP_SPINCOUNT yourself to choose. libgomp reads the
variable once, when torch loads it, so this only takes effect when dagan is imported first (as the
`dagan` command does); a value the user set is kept.
"""

import os
import sys

SPIN_COUNT = "2000"


def spin_setting() -> str:
    """One line for benchmark reports: the libgomp spin setting in effect (read at torch import)."""
    policy = os.environ.get("OMP_WAIT_POLICY")
    count = os.environ.get("GOMP_SPINCOUNT")
    return f"GOMP_SPINCOUNT={count or 'libgomp default'}" + (f", OMP_WAIT_POLICY={policy}" if policy else "")


def limit_spinning() -> bool:
    """Set GOMP_SPINCOUNT unless the user set it (or OMP_WAIT_POLICY) or torch is already loaded;
    True when this call set it."""
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True
