"""A short NCCL DDP training step on every visible GPU (run with `pytest -m gpu` on a machine with ≥ 2 GPUs;
benchmarks/gpu_check.sh deselects it when only one is visible). Fails, not skips, without them."""

import pytest
import torch

pytestmark = pytest.mark.gpu


def test_nccl_two_steps_on_all_gpus(tmp_path, data_dir, dagan_cli):
    n = torch.cuda.device_count()
    assert n >= 2, f"needs at least 2 CUDA devices, {n} visible"
    result = dagan_cli(["train-depth", "--config", "tiny", "--data", str(data_dir), "--out", str(tmp_path / "d"),
                        "--max-steps", "2"], torchrun=n, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"× {n} processes" in result.stdout
