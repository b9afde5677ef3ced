"""Multi-process helpers, kept apart from the training loops.

`setup()` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and starts
a process group: NCCL on CUDA, gloo on CPU. Without those variables (a plain `dagan train`) every
helper here is a no-op for one process, so the loops have a single code path.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
from collections.abc import Iterator, Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from dagan.errors import DaganError


_OWNS_GROUP = False  # whether setup() started the process group (and cleanup() may end it)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DaganError(f"environment variable {name}={value!r} is not an integer") from None


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0) if is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kwargs) -> None:
    """print() on rank 0 only, flushed (torchrun interleaves the processes' output)."""
    if is_main():
        kwargs.setdefault("flush", True)
        builtins.print(*args, **kwargs)


def barrier() -> None:
    if is_initialized():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def setup(device: str = "auto") -> torch.device:
    """Choose the device and, under torchrun (WORLD_SIZE > 1), start the process group.

    device: "auto" (CUDA if available, else CPU), "cuda" or "cpu". Each process uses cuda:LOCAL_RANK.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise DaganError(f"device must be auto, cpu or cuda, got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise DaganError("device cuda was asked for but CUDA is not available")
    world = _env_int("WORLD_SIZE", 1)
    local = _env_int("LOCAL_RANK", 0)
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise DaganError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s) visible")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not is_initialized():
        if not dist.is_available():
            raise DaganError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        for name in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
            if name not in os.environ:
                raise DaganError(f"WORLD_SIZE={world} but {name} is not set: launch with torchrun")
        backend = "nccl" if use_cuda else "gloo"
        kwargs = {"device_id": dev} if use_cuda else {}
        dist.init_process_group(backend=backend, **kwargs)
        global _OWNS_GROUP
        _OWNS_GROUP = True
    return dev


def cleanup() -> None:
    """Wait for every rank, then end the process group that `setup` started (no-op otherwise)."""
    global _OWNS_GROUP
    if _OWNS_GROUP and is_initialized():
        try:
            barrier()
        finally:
            dist.destroy_process_group()
            _OWNS_GROUP = False


def abort() -> None:
    """End the process group that `setup` started without waiting: this rank stops on an error."""
    global _OWNS_GROUP
    if _OWNS_GROUP and is_initialized():
        dist.destroy_process_group()
        _OWNS_GROUP = False


# --------------------------------------------------------------------------------------- models


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm → SyncBatchNorm, on CUDA with several processes only (SyncBatchNorm needs CUDA)."""
    if device.type == "cuda" and world_size() > 1:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module


def wrap(module: nn.Module, device: torch.device, *, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around a module with trainable parameters (several processes only).

    broadcast_buffers=False as the original (PR #30): BatchNorm running statistics stay per process;
    rank 0's are the ones saved. find_unused_parameters: some backward passes reach only part of
    the module (e.g. the discriminator under partly zero feature-matching weights).
    """
    if world_size() == 1 or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False,
                                               find_unused_parameters=find_unused_parameters)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


# ----------------------------------------------------------------------------------------- data


class ResumableSampler(DistributedSampler):
    """DistributedSampler (also for one process) whose order is a function of (seed, epoch) and
    that can start part-way through an epoch: `set_position(n)` skips the first n samples of this
    process's share, so a resumed run sees exactly the batches an uninterrupted one would."""

    def __init__(self, dataset: Dataset, *, seed: int, shuffle: bool = True, drop_last: bool = True):
        super().__init__(dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_position(self, samples: int) -> None:
        self.start = max(0, int(samples))

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed, "num_replicas": self.num_replicas}


def make_sampler(dataset: Dataset, seed: int, *, shuffle: bool = True, drop_last: bool = True) -> ResumableSampler:
    return ResumableSampler(dataset, seed=seed, shuffle=shuffle, drop_last=drop_last)


# --------------------------------------------------------------------------------- collectives


def reduce_mean(values: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, float]:
    """Scalar tensors → their mean over processes, as Python floats (one collective for all)."""
    if not values:
        return {}
    keys = list(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys]).to(device)
    if is_initialized():
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        stacked = stacked / world_size()
    return dict(zip(keys, stacked.cpu().tolist()))


def all_gather_object(obj) -> list:
    """[obj of rank 0, obj of rank 1, …] on every rank; [obj] for one process."""
    if not is_initialized():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's obj on every rank."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_same_on_all_ranks(value, what: str) -> None:
    """Consistency check: every process was started with the same `value` (e.g. the resolved config)."""
    if not is_initialized():
        return
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
    digests = all_gather_object(digest)
    if len(set(digests)) != 1:
        bad = [r for r, d in enumerate(digests) if d != digests[0]]
        raise DaganError(f"{what} differs between processes (ranks {bad} vs rank 0)")
