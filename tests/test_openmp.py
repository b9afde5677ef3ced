"""dagan limits how long PyTorch's idle OpenMP threads spin, when it is imported before torch."""

import os
import subprocess
import sys

import pytest

from dagan._openmp import limit_spinning, spin_setting

# 200 tiny parallel adds, each followed by a 2 ms sleep in which the idle OpenMP worker spins or sleeps.
IDLE_CPU = """
import time{first}
import torch
torch.set_num_threads(2)
x = torch.ones(200_000)
for _ in range(20):
    x.add_(1)
start = time.process_time()
for _ in range(200):
    x.add_(1)
    time.sleep(0.002)
print(os.environ.get("GOMP_SPINCOUNT"), time.process_time() - start)
"""


def run(code: str, **env) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize(("env", "torch_loaded", "want"), [
    ({}, False, "2000"), ({"GOMP_SPINCOUNT": "77"}, False, "77"), ({"OMP_WAIT_POLICY": "ACTIVE"}, False, None),
    ({}, True, None),  # torch already loaded libgomp: too late, left alone
])
def test_set_before_torch_unless_the_user_chose(monkeypatch, env, torch_loaded, want):
    for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if not torch_loaded:
        monkeypatch.delitem(sys.modules, "torch")
    assert limit_spinning() == (want == "2000" and not env)
    assert os.environ.get("GOMP_SPINCOUNT") == want
    assert spin_setting() == ("GOMP_SPINCOUNT=" + (want or "libgomp default")
                              + (", OMP_WAIT_POLICY=ACTIVE" if "OMP_WAIT_POLICY" in env else ""))


def test_idle_workers_stop_burning_cpu():
    default = run(IDLE_CPU.format(first="\nimport os"))
    limited = run(IDLE_CPU.format(first="\nimport os, dagan"))
    assert default[0] == "None" and limited[0] == "2000"
    assert float(limited[1]) * 2 < float(default[1]), (limited, default)  # CPU seconds over the 200 sleeps
