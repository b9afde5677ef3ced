import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
# 2 threads on the 2-core machines; with pytest-xdist's workers sharing the cores, 1 each (and for
# the processes tests start), since OpenMP threads spinning on a shared core slow everything down
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, 2 // WORKERS)
torch.set_num_threads(THREADS)
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)


# The longest test files (measured with --durations on 2 cores), run first: `make test` spreads whole
# files over two pytest-xdist workers in collection order, and long files started last would leave
# one worker idle while the other finishes them.
LONGEST_FIRST = [
    "onnx/test_onnx_parity.py", "training/test_cli.py", "compat/test_parity.py", "training/test_train.py",
    "onnx/test_onnx_animate.py", "cli/test_convert_info.py", "onnx/test_onnx_export.py",
    "inference/test_pipeline.py", "app/test_pages.py", "test_end_to_end.py",
]


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent

    def rank(item) -> int:
        path = Path(str(item.fspath)).relative_to(root).as_posix()
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside a file is kept


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
