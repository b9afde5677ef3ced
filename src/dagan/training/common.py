"""What both training stages share (`depth_loop.py`, stage 1; `loop.py`, stage 2): the run
directory and resume decision, the data loader, per-step seeds, mixed precision, the checks that
stop a run on non-finite numbers, and the step loop itself (`run_loop`, with `StageHooks` for what
differs)."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dagan.errors import DaganError
from dagan.training import distributed
from dagan.training.checkpoint import find_latest_checkpoint, list_checkpoints, restore_rng_state
from dagan.training.config import config_differences, save_config, to_plain
from dagan.training.logging import format_line

CONFIG_NAME = "config.yaml"
MODEL_DIR = "model"
# config keys that may change between a run and its resumption (they do not change the numbers)
RESUME_MUTABLE = ("max_steps", "epochs", "num_workers", "log_every", "image_every", "checkpoint_every", "keep_last",
                  "device")


class NonFiniteLossError(DaganError):
    """A loss term became NaN or infinite: the run stops before the optimiser step, saving nothing."""


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of every random draw of one step on one process."""
    return (int(seed) * 1_000_003 + int(step) * 8_191 + int(rank) * 131) % (2**63 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" → bf16 autocast on CUDA (fp16 where bf16 is unsupported), fp32 on CPU."""
    if device.type != "cuda":
        if precision in ("bf16", "fp16"):
            raise DaganError(f"precision {precision} needs CUDA; use precision=fp32 (or auto) on {device.type}")
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Mixed precision for network forwards; losses are computed in float32 outside it."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A loss scaler for fp16 (a pass-through otherwise)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def configure_backends(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def check_finite(values: Mapping[str, float], step: int, what: str, run_dir: Path) -> None:
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        saved = list_checkpoints(run_dir)
        keep = f"the last good checkpoint is {saved[-1][1]}" if saved else "no checkpoint was written yet"
        terms = ", ".join(f"{k}={v}" for k, v in values.items())
        raise NonFiniteLossError(
            f"non-finite {what} loss at step {step} ({terms}); stopped before the optimiser step, {keep} "
            "(try a lower learning rate, precision=fp32, or check the data)"
        )


def check_parameters_finite(modules: Mapping[str, nn.Module], step: int) -> None:
    for name, module in modules.items():
        for pname, p in module.named_parameters():
            if not torch.isfinite(p).all():
                raise NonFiniteLossError(f"parameter {name}.{pname} became non-finite at step {step}; "
                                         "not saving a checkpoint (try a lower learning rate or precision=fp32)")


def prepare_run(
    out_dir: Path,
    cfg,
    *,
    stage: str,
    resume: bool,
) -> dict | None:
    """Check the run directory and find the checkpoint to resume (collectively, all ranks).

    Returns the checkpoint state or None for a fresh run. Rank 0 decides and broadcasts the
    decision, so every process raises the same error or loads the same file.
    """
    decision: dict = {"error": None, "path": None, "note": None}
    if distributed.is_main():
        try:
            if out_dir.exists() and not out_dir.is_dir():
                raise DaganError(f"output {out_dir} exists and is not a directory")
            existing = list_checkpoints(out_dir)
            if not resume and existing:
                raise DaganError(f"{out_dir} already holds checkpoints; pass --resume to continue that run "
                                 "or choose another --out")
            if resume:
                found = find_latest_checkpoint(out_dir, stage)
                if found is None:
                    if existing:
                        raise DaganError(f"no readable {stage} checkpoint in {out_dir / 'checkpoints'}")
                    decision["note"] = f"--resume: no checkpoint in {out_dir}, starting a new run"
                else:
                    path, state = found
                    allowed = set(RESUME_MUTABLE)
                    diffs = [d for d in config_differences(state["config"], to_plain(cfg))
                             if d.split(".")[0] not in allowed]
                    if diffs:
                        raise DaganError(f"cannot resume {path}: the config differs in {', '.join(diffs)} "
                                         f"(see {out_dir / CONFIG_NAME})")
                    decision["path"] = str(path)
            out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out_dir / CONFIG_NAME)
        except DaganError as exc:
            decision["error"] = str(exc)
        except OSError as exc:
            decision["error"] = f"cannot write to {out_dir}: {exc.strerror or exc}"
    decision = distributed.broadcast_object(decision)
    if decision["error"]:
        raise DaganError(decision["error"])
    if decision["note"]:
        distributed.print0(decision["note"])
    if decision["path"] is None:
        return None
    from dagan.training.checkpoint import load_checkpoint

    return load_checkpoint(decision["path"], stage)


def make_loader(dataset: Dataset, cfg, device: torch.device) -> tuple[DataLoader, distributed.ResumableSampler, int]:
    """Loader over a (seed, epoch)-ordered sampler; returns (loader, sampler, steps per epoch)."""
    if len(dataset) == 0:
        raise DaganError(f"the dataset {getattr(dataset, 'root', '')} is empty")
    sampler = distributed.make_sampler(dataset, seed=cfg.seed, shuffle=True, drop_last=True)
    steps = sampler.num_samples // cfg.batch_size
    if steps == 0:
        world = distributed.world_size()
        raise DaganError(
            f"the dataset has {len(dataset)} samples per epoch, fewer than the global batch "
            f"{cfg.batch_size * world} ({cfg.batch_size} per process × {world}); "
            "lower batch_size or raise num_repeats"
        )
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        drop_last=True, pin_memory=device.type == "cuda", persistent_workers=False)
    return loader, sampler, steps


def check_data_dir(data_dir: Path) -> None:
    if not data_dir.exists():
        raise DaganError(f"data directory {data_dir} does not exist")
    if not data_dir.is_dir():
        raise DaganError(f"data directory {data_dir} is not a directory")


def batch_description(cfg) -> str:
    world = distributed.world_size()
    processes = f"{world} process{'es' * (world > 1)}"
    return f"global batch {cfg.batch_size * world} ({cfg.batch_size} per process × {processes})"


# ------------------------------------------------------------------------------ the loop


@dataclass
class LoopPosition:
    """Where a run is: steps done, the epoch, and batches done within it (what a checkpoint holds)."""

    step: int = 0
    epoch: int = 0
    position: int = 0


def restore_position(state: dict | None, rank: int) -> LoopPosition:
    """The checkpoint's position, with this process's RNG state restored when the process count is
    the one that wrote it (otherwise a note: the data order then differs from an unbroken run)."""
    if state is None:
        return LoopPosition()
    if len(state["rng"]) == distributed.world_size():
        restore_rng_state(state["rng"][rank])
    else:
        distributed.print0(f"note: checkpoint written by {len(state['rng'])} process(es), resuming with "
                           f"{distributed.world_size()}: the data order differs from an uninterrupted run")
    return LoopPosition(int(state["step"]), int(state["epoch"]), int(state["position"]))


@dataclass
class StageHooks:
    """What differs between the two stages inside `run_loop`."""

    # (batch, seed, reduce=, on_values=) → (loss values, visuals); the keywords as the step functions take them
    step: Callable[..., tuple[dict[str, float], dict]]
    learning_rates: Callable[[], dict[str, float]]  # logged beside the losses
    image: Callable[[dict], tuple[str, torch.Tensor]]  # visuals → (tag, image grid)
    save: Callable[[int], None]  # checkpoint (and export) at a step
    export: Callable[[int], None]  # the model directory alone
    epoch_end: Callable[[], None]  # e.g. the schedulers' step


def run_loop(cfg, pos: LoopPosition, total_steps: int, loader: DataLoader, sampler, dataset, steps_per_epoch: int,
             hooks: StageHooks, logger, out_dir: Path, device: torch.device, *, resumed: bool) -> None:
    """Steps until `total_steps`: each step's seed from (seed, step, rank), its loss terms averaged
    over processes and checked for non-finite values before any backward, logs, images and
    checkpoints at their intervals, and a last checkpoint (or at least the model directory) at the
    end. `pos` is updated in place, so hooks that read it (the checkpoint) see the current one."""
    rank = distributed.rank()
    last_saved = pos.step if resumed else None

    def reduce(terms):
        return distributed.reduce_mean(terms, device)

    def on_values(values: dict[str, float], what: str) -> None:
        check_finite(values, pos.step, what, out_dir)

    try:
        window_start, window_steps = time.perf_counter(), 0
        while pos.step < total_steps:
            sampler.set_epoch(pos.epoch)
            dataset.set_epoch(pos.epoch)
            sampler.set_position(pos.position * cfg.batch_size)
            for batch in loader:
                pos.step += 1
                pos.position += 1
                seed = step_seed(cfg.seed, pos.step, rank)
                seed_everything(seed)
                values, visuals = hooks.step(batch, seed, reduce=reduce, on_values=on_values)
                window_steps += 1
                step = pos.step
                if step % cfg.log_every == 0 or step == total_steps:
                    elapsed = (time.perf_counter() - window_start) / window_steps
                    extra = {"epoch": pos.epoch, **hooks.learning_rates(), "seconds_per_step": elapsed,
                             "samples_per_second": cfg.batch_size * distributed.world_size() / elapsed}
                    logger.log(step, values, extra)
                    distributed.print0(format_line(step, total_steps, pos.epoch, values, elapsed))
                    window_start, window_steps = time.perf_counter(), 0
                if (step % cfg.image_every == 0 or step == total_steps) and distributed.is_main():
                    logger.image(step, *hooks.image(visuals))
                if step % cfg.checkpoint_every == 0:
                    hooks.save(step)
                    last_saved = step
                if step >= total_steps:
                    break
            if pos.position >= steps_per_epoch:
                pos.epoch += 1
                pos.position = 0
                hooks.epoch_end()
        if last_saved != pos.step:
            hooks.save(pos.step)
        elif distributed.is_main() and not (out_dir / MODEL_DIR / "model.safetensors").is_file():
            hooks.export(pos.step)
    finally:
        logger.close()
