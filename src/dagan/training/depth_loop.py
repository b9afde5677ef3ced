"""Stage 1 training (`dagan train-depth`): self-supervised face depth from consecutive frames.

`train_depth` is the loop, one plain function (Face-Depth-Network, a monodepth2 fork). Per step:
the depth network predicts 4 sigmoid disparities of the target frame (offset 0); for each
neighbour (offsets -1, +1) the pose network, given the two frames in temporal order, predicts the
relative pose (inverted for earlier frames) and the intrinsics K (the K of the last neighbour is
used, as the original). `DepthTrainingLoss` back-projects with the depth, transforms with the pose,
projects with K, samples the neighbour bilinearly, and takes α·(1−SSIM)/2 + (1−α)·L1 with the
per-pixel minimum over neighbours, auto-masking and edge-aware smoothness 1e-3/2^s, averaged over
the scales. The networks see the colour-jittered frames, the loss compares the un-jittered ones.
One Adam over both networks, StepLR over epochs. The depth network is exported to RUN/model/.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dagan.errors import DaganError
from dagan.losses import DepthTrainingLoss, transformation_from_parameters
from dagan.models import DepthNetwork, PoseNetwork
from dagan.training import distributed
from dagan.training.checkpoint import capture_rng_state, save_checkpoint
from dagan.training.common import (
    MODEL_DIR,
    StageHooks,
    autocast,
    batch_description,
    check_data_dir,
    check_parameters_finite,
    configure_backends,
    grad_scaler,
    make_loader,
    prepare_run,
    resolve_precision,
    restore_position,
    run_loop,
    seed_everything,
)
from dagan.training.config import DepthTrainConfig, to_plain
from dagan.training.export import save_depth
from dagan.training.logging import RunLogger, image_grid, to_rgb

STAGE = "depth"


@dataclass
class DepthParts:
    """`depth_net`/`pose_net` are the plain modules (saved); `depth`/`pose` what the step calls (DDP)."""

    depth_net: DepthNetwork
    pose_net: PoseNetwork
    depth: nn.Module
    pose: nn.Module
    loss: DepthTrainingLoss


@dataclass
class DepthOptim:
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler


def build_depth_parts(cfg: DepthTrainConfig, device: torch.device) -> DepthParts:
    depth_net = DepthNetwork(cfg.model.depth.num_layers, cfg.model.depth.num_scales, cfg.model.depth.width).to(device)
    pose_net = PoseNetwork(cfg.model.pose.num_layers, cfg.model.pose.width).to(device)
    depth_net = distributed.convert_sync_batchnorm(depth_net, device).train()
    pose_net = distributed.convert_sync_batchnorm(pose_net, device).train()
    loss = DepthTrainingLoss(scales=cfg.model.depth.num_scales, alpha=cfg.alpha, smoothness=cfg.smoothness,
                             min_depth=cfg.min_depth, max_depth=cfg.max_depth, automask=cfg.automask,
                             truncate_intrinsics=cfg.truncate_intrinsics)
    return DepthParts(depth_net, pose_net, depth_net, pose_net, loss)


def build_depth_optim(cfg: DepthTrainConfig, parts: DepthParts, device: torch.device, precision: str) -> DepthOptim:
    params = list(parts.depth_net.parameters()) + list(parts.pose_net.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    return DepthOptim(optimizer, scheduler, grad_scaler(device, precision))


def depth_step(
    parts: DepthParts,
    optim: DepthOptim,
    batch: Mapping[str, torch.Tensor],
    cfg: DepthTrainConfig,
    *,
    seed: int,
    device: torch.device,
    precision: str = "fp32",
    reduce: Callable[[Mapping[str, torch.Tensor]], dict[str, float]] | None = None,
    on_values: Callable[[dict[str, float], str], None] | None = None,
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """One step on {"frames": B×F×3×S×S (loss), "frames_aug": B×F×3×S×S (network input, optional)},
    frame 0 the target and frames 1… at `cfg.frame_offsets[1:]`. Returns ({term: float}, visuals)."""
    reduce = reduce or (lambda terms: {k: float(v.detach()) for k, v in terms.items()})
    frames = batch["frames"].to(device, non_blocking=True)  # B×F×3×S×S
    inputs = batch.get("frames_aug", batch["frames"]).to(device, non_blocking=True)
    offsets = cfg.frame_offsets
    if frames.dim() != 5 or frames.shape[1] != len(offsets):
        raise DaganError(f"expected frames B×{len(offsets)}×3×S×S, got {tuple(frames.shape)}")
    with autocast(device, precision):
        disparities = [d.float() for d in parts.depth(inputs[:, 0])]  # scale s: B×1×S/2^s×S/2^s
    poses, intrinsics = [], None
    for i, offset in enumerate(offsets[1:], start=1):
        # frames in temporal order; the pose of an earlier frame is inverted (monodepth2)
        pair = (inputs[:, i], inputs[:, 0]) if offset < 0 else (inputs[:, 0], inputs[:, i])
        with autocast(device, precision):
            axisangle, translation, intrinsics = parts.pose(*pair)
        poses.append(transformation_from_parameters(axisangle[:, 0].float(), translation[:, 0].float(),
                                                    invert=offset < 0))  # B×4×4 target → neighbour
    generator = torch.Generator(device=device).manual_seed(seed) if device.type == "cuda" else \
        torch.Generator().manual_seed(seed)
    terms = parts.loss(frames[:, 0], [frames[:, i] for i in range(1, len(offsets))], disparities, poses,
                       intrinsics.float(), generator=generator)
    values = reduce(terms)
    if on_values is not None:
        on_values(values, "depth")
    optim.optimizer.zero_grad(set_to_none=True)
    optim.scaler.scale(sum(terms.values())).backward()
    optim.scaler.step(optim.optimizer)
    optim.scaler.update()
    visuals = {"frames": frames, "disparity": disparities[0].detach()}
    return values, visuals


def depth_grid(visuals: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Columns: target frame, its neighbours, the scale-0 disparity."""
    frames = visuals["frames"]
    size = tuple(frames.shape[-2:])
    return image_grid([frames[:, i] for i in range(frames.shape[1])] + [to_rgb(visuals["disparity"], size)])


def train_depth(
    cfg: DepthTrainConfig,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    max_steps: int | None = None,
    resume: bool = False,
) -> Path:
    """Train the depth and pose networks (stage 1) on the clips of `data_dir/train`; returns the
    exported depth directory `out_dir/model` (what `dagan train --depth` takes).

    max_steps: total optimisation steps (overrides cfg.max_steps; default epochs × steps per epoch).
    resume: continue from the newest valid checkpoint in `out_dir` (a fresh start if there is none).
    Writes out_dir/{config.yaml, metrics.jsonl, tensorboard/, checkpoints/, model/}.
    """
    if max_steps is not None:
        cfg = dataclasses.replace(cfg, max_steps=max_steps)
    device = distributed.setup(cfg.device)
    try:
        return _train_depth(cfg, Path(data_dir), Path(out_dir), device, resume)
    except BaseException:
        distributed.abort()
        raise
    finally:
        distributed.cleanup()


def _train_depth(cfg: DepthTrainConfig, data_dir: Path, out_dir: Path, device: torch.device, resume: bool) -> Path:
    from dagan.data import FrameSequenceDataset

    precision = resolve_precision(cfg.precision, device)
    configure_backends(device)
    distributed.check_same_on_all_ranks(to_plain(cfg), "the training config")
    rank = distributed.rank()

    check_data_dir(data_dir)
    dataset = FrameSequenceDataset(data_dir, split="train", image_size=cfg.model.image_size,
                                   frame_offsets=cfg.frame_offsets, augment=cfg.augment,
                                   num_repeats=cfg.num_repeats, seed=cfg.seed)
    loader, sampler, steps_per_epoch = make_loader(dataset, cfg, device)

    state = prepare_run(out_dir, cfg, stage=STAGE, resume=resume)
    seed_everything(cfg.seed)
    parts = build_depth_parts(cfg, device)
    optim = build_depth_optim(cfg, parts, device, precision)
    if state is not None:
        parts.depth_net.load_state_dict(state["models"]["depth"])
        parts.pose_net.load_state_dict(state["models"]["pose"])
        optim.optimizer.load_state_dict(state["optimizers"]["depth_pose"])
        optim.scheduler.load_state_dict(state["schedulers"]["depth_pose"])
        if state.get("scalers", {}).get("depth_pose"):
            optim.scaler.load_state_dict(state["scalers"]["depth_pose"])
    pos = restore_position(state, rank)
    parts.depth = distributed.wrap(parts.depth_net, device)
    parts.pose = distributed.wrap(parts.pose_net, device)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch

    distributed.print0(
        f"dagan train-depth: {batch_description(cfg)}, {steps_per_epoch} steps per epoch, steps {pos.step + 1}…"
        f"{total_steps}, device {device.type}, precision {precision}, run {out_dir}"
        + (f" (resumed from step {pos.step})" if state is not None else "")
    )
    logger = RunLogger(out_dir, enabled=distributed.is_main(), resume_step=pos.step if state is not None else None)

    def export(step: int) -> None:
        save_depth(out_dir / MODEL_DIR, parts.depth_net, cfg.model,
                   metadata={"training": {"stage": STAGE, "step": step}})

    def save(step: int) -> None:
        check_parameters_finite({"depth": parts.depth_net, "pose": parts.pose_net}, step)
        rng = distributed.all_gather_object(capture_rng_state())
        if distributed.is_main():
            save_checkpoint(out_dir, {
                "stage": STAGE, "step": step, "epoch": pos.epoch, "position": pos.position,
                "models": {"depth": parts.depth_net.state_dict(), "pose": parts.pose_net.state_dict()},
                "optimizers": {"depth_pose": optim.optimizer.state_dict()},
                "schedulers": {"depth_pose": optim.scheduler.state_dict()},
                "scalers": {"depth_pose": optim.scaler.state_dict()},
                "sampler": {**sampler.state_dict(), "epoch": pos.epoch, "start": pos.position * cfg.batch_size},
                "rng": rng, "config": to_plain(cfg),
            }, keep_last=cfg.keep_last)
            export(step)

    def step_fn(batch, seed, **checks):
        return depth_step(parts, optim, batch, cfg, seed=seed, device=device, precision=precision, **checks)

    hooks = StageHooks(step=step_fn, learning_rates=lambda: {"lr": optim.optimizer.param_groups[0]["lr"]},
                       image=lambda visuals: ("train/depth", depth_grid(visuals)), save=save, export=export,
                       epoch_end=optim.scheduler.step)
    run_loop(cfg, pos, total_steps, loader, sampler, dataset, steps_per_epoch, hooks, logger, out_dir,
             device, resumed=state is not None)
    distributed.print0(f"dagan train-depth: done at step {pos.step}; depth network in {out_dir / MODEL_DIR}")
    return out_dir / MODEL_DIR
