"""keep_freed_memory: freed large tensors are reused instead of being faulted in again."""

import os
import subprocess
import sys

SCRIPT = """
import resource, sys
from dagan.inference.memory import keep_freed_memory
applied = keep_freed_memory()
import torch
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(16 << 20)  # 64 MiB
del x
before = faults()
y = torch.ones(8 << 20)  # 32 MiB: fits in the freed block when it was kept
print(applied, faults() - before)
"""


def run(keep: str) -> tuple[str, int]:
    env = {**os.environ, "DAGAN_KEEP_FREED_MEMORY": keep}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied, int(faults)


def test_freed_block_is_reused_without_page_faults():
    applied, faults = run("1")
    assert applied == "True"
    assert faults < 200  # 32 MiB is 8192 pages of 4 KiB


def test_opt_out_leaves_the_allocator_alone():
    applied, faults = run("0")
    assert applied == "False"
    assert faults > 4000  # served by a fresh mmap, faulted in page by page
