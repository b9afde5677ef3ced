"""Stage 2 training (`dagan train`): keypoint detector + generator + discriminator, frozen depth network.

`train` is the loop, one plain function. Each step follows the original `train.py`:

1. depth of source and driving with the frozen network (eval, no gradient); RGB-D keypoints of
   both; the generator reconstructs the driving frame from the source (absolute keypoints);
2. the generator terms (a dict of named, weighted terms; weight 0 skips a term), their sum,
   backward, opt_G.step, opt_KP.step;
3. if discriminator_gan ≠ 0: the discriminator on the driving frame and on the detached
   prediction, backward, opt_D.step.

Exact resume: the data order is a function of (seed, epoch) (`distributed.ResumableSampler`), each
sample of (seed, epoch, index) (`dagan.data`), every random draw of a step of (seed, step, rank);
checkpoints hold the models, optimisers, schedulers, grad scalers, RNG states and the position
in the epoch. Helpers shared with stage 1 (`depth_loop.py`) are in `common.py`.
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
from dagan.geometry import Keypoints
from dagan.losses import (
    ImagePyramid,
    PyramidPerceptualLoss,
    RandomTransform,
    discriminator_terms,
    generator_terms,
    load_vgg19,
    total_loss,
)
from dagan.losses.perceptual import VGG19_FILENAME
from dagan.models import DaGAN, build_discriminator
from dagan.training import distributed
from dagan.training.checkpoint import (
    capture_rng_state,
    save_checkpoint,
)
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
from dagan.training.config import TrainConfig, config_differences, to_plain
from dagan.training.export import load_depth, read_depth_config
from dagan.training.logging import RunLogger, draw_keypoints, image_grid, to_rgb

STAGE = "dagan"
# ------------------------------------------------------------------------------ stage-2 parts


@dataclass
class Stage2Parts:
    """The networks of stage 2. `model` and `discriminator` are the plain modules (saved, exported);
    `keypoint_detector`, `generator`, `disc` are what the step calls (DDP-wrapped when distributed)."""

    model: DaGAN
    discriminator: nn.Module
    keypoint_detector: nn.Module
    generator: nn.Module
    disc: nn.Module
    pyramid: ImagePyramid  # the discriminator's input scales
    perceptual: PyramidPerceptualLoss | None


@dataclass
class Stage2Optim:
    generator: torch.optim.Optimizer
    keypoint_detector: torch.optim.Optimizer
    discriminator: torch.optim.Optimizer
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    scaler_generator: torch.amp.GradScaler
    scaler_discriminator: torch.amp.GradScaler

    def state_dicts(self) -> tuple[dict, dict, dict]:
        optimizers = {"generator": self.generator.state_dict(),
                      "keypoint_detector": self.keypoint_detector.state_dict(),
                      "discriminator": self.discriminator.state_dict()}
        schedulers = {k: s.state_dict() for k, s in self.schedulers.items()}
        scalers = {"generator": self.scaler_generator.state_dict(),
                   "discriminator": self.scaler_discriminator.state_dict()}
        return optimizers, schedulers, scalers

    def load_state_dicts(self, state: dict) -> None:
        self.generator.load_state_dict(state["optimizers"]["generator"])
        self.keypoint_detector.load_state_dict(state["optimizers"]["keypoint_detector"])
        self.discriminator.load_state_dict(state["optimizers"]["discriminator"])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        scalers = state.get("scalers", {})
        if scalers.get("generator"):
            self.scaler_generator.load_state_dict(scalers["generator"])
        if scalers.get("discriminator"):
            self.scaler_discriminator.load_state_dict(scalers["discriminator"])


def vgg_would_be_random(cfg: TrainConfig) -> bool:
    if cfg.vgg19_weights is not None or cfg.vgg19_download:
        return False
    return not os.path.isfile(os.path.join(torch.hub.get_dir(), "checkpoints", VGG19_FILENAME))


def build_perceptual(cfg: TrainConfig, feature_extractor: nn.Module | None) -> PyramidPerceptualLoss | None:
    """The pyramid perceptual loss (None when its weights are all 0). Refuses random VGG weights
    unless `allow_random_vgg`; an injected `feature_extractor` (tests) is frozen and used as is."""
    if not cfg.loss_weights.needs_perceptual:
        return None
    if feature_extractor is None:
        smallest = cfg.model.image_size * min(cfg.perceptual_scales)
        if smallest < 16:
            raise DaganError(
                f"perceptual_scales {list(cfg.perceptual_scales)} at image_size {cfg.model.image_size} make a "
                f"{smallest:g}-pixel level; VGG-19 needs ≥ 16 pixels (relu5_1): drop the smallest scales"
            )
        random_weights = vgg_would_be_random(cfg)
        feature_extractor = load_vgg19(cfg.vgg19_weights, allow_download=cfg.vgg19_download,
                                       allow_random=cfg.allow_random_vgg)
        if random_weights:
            distributed.print0("WARNING: the perceptual loss uses RANDOM VGG-19 weights (allow_random_vgg=true); "
                               "the model will not learn a meaningful perceptual objective")
    feature_extractor.eval().requires_grad_(False)
    return PyramidPerceptualLoss(feature_extractor, scales=cfg.perceptual_scales, weights=cfg.loss_weights.perceptual)


def build_parts(cfg: TrainConfig, device: torch.device, perceptual: PyramidPerceptualLoss | None,
                model: DaGAN | None = None) -> Stage2Parts:
    """Networks on `device`: depth frozen (eval, no grad), SyncBatchNorm on multi-GPU, DDP-wrapped callables."""
    model = model if model is not None else DaGAN(cfg.model)
    discriminator = build_discriminator(cfg.model)
    model.depth.eval().requires_grad_(False)
    model.to(device)
    discriminator.to(device)
    model.keypoint_detector = distributed.convert_sync_batchnorm(model.keypoint_detector, device)
    model.generator = distributed.convert_sync_batchnorm(model.generator, device)
    model.keypoint_detector.train()
    model.generator.train()
    discriminator.train()
    return Stage2Parts(
        model=model,
        discriminator=discriminator,
        keypoint_detector=model.keypoint_detector,
        generator=model.generator,
        disc=discriminator,
        pyramid=ImagePyramid(cfg.model.discriminator.scales, cfg.model.num_channels).to(device),
        perceptual=perceptual.to(device) if perceptual is not None else None,
    )


def wrap_parts(parts: Stage2Parts, cfg: TrainConfig, device: torch.device) -> None:
    parts.keypoint_detector = distributed.wrap(parts.model.keypoint_detector, device)
    parts.generator = distributed.wrap(parts.model.generator, device)
    # the generator step reaches only part of the discriminator when some of its terms are off
    w = cfg.loss_weights
    partial = w.needs_discriminator and (w.generator_gan == 0 or any(v == 0 for v in w.feature_matching))
    parts.disc = distributed.wrap(parts.discriminator, device, find_unused_parameters=partial)


def build_optim(cfg: TrainConfig, parts: Stage2Parts, device: torch.device, precision: str) -> Stage2Optim:
    """Adam per network (lr 2e-4, betas (0.5, 0.999)), MultiStepLR over epochs (as the original)."""
    opt_g = torch.optim.Adam(parts.model.generator.parameters(), lr=cfg.lr_generator, betas=cfg.betas)
    opt_kp = torch.optim.Adam(parts.model.keypoint_detector.parameters(), lr=cfg.lr_keypoint_detector, betas=cfg.betas)
    opt_d = torch.optim.Adam(parts.discriminator.parameters(), lr=cfg.lr_discriminator, betas=cfg.betas)
    milestones = list(cfg.lr_milestones)
    schedulers = {name: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg.lr_gamma)
                  for name, opt in (("generator", opt_g), ("keypoint_detector", opt_kp), ("discriminator", opt_d))}
    return Stage2Optim(opt_g, opt_kp, opt_d, schedulers, grad_scaler(device, precision), grad_scaler(device, precision))


def _float_kp(kp: Keypoints) -> Keypoints:
    return Keypoints(kp.value.float(), None if kp.jacobian is None else kp.jacobian.float())


def _float_outputs(out: dict) -> dict:
    return {k: [f.float() for f in v] if isinstance(v, list) else v.float() for k, v in out.items()}


def train_step(
    parts: Stage2Parts,
    optim: Stage2Optim,
    batch: Mapping[str, torch.Tensor],
    cfg: TrainConfig,
    *,
    seed: int,
    device: torch.device,
    precision: str = "fp32",
    reduce: Callable[[Mapping[str, torch.Tensor]], dict[str, float]] | None = None,
    on_values: Callable[[dict[str, float], str], None] | None = None,
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """One optimisation step on a batch {"source": B×3×S×S, "driving": B×3×S×S} in [0, 1].

    seed: seeds the random equivariance transform. reduce: turns the loss terms into floats
    (averaged over processes in DDP). on_values(values, "generator"|"discriminator") is called
    before each backward (the loop's NaN check raises there, before any optimiser step).
    Returns ({term: float}, visuals for the image grid).
    """
    w = cfg.loss_weights
    model = parts.model
    reduce = reduce or (lambda terms: {k: float(v.detach()) for k, v in terms.items()})

    def amp():
        return autocast(device, precision)

    source = batch["source"].to(device, non_blocking=True)
    driving = batch["driving"].to(device, non_blocking=True)
    with torch.no_grad(), amp():
        depth_source = model.depth(source)[0].float()  # B×1×S×S sigmoid disparity
        depth_driving = model.depth(driving)[0].float()
    with amp():
        kp_source = _float_kp(parts.keypoint_detector(torch.cat([source, depth_source], 1)))  # B×4×S×S in
        kp_driving = _float_kp(parts.keypoint_detector(torch.cat([driving, depth_driving], 1)))
        generated = parts.generator(source, kp_driving, kp_source, depth_source)
    prediction = generated["prediction"].float()

    transform = equivariance_transform(cfg, source.shape[0], seed, device) if w.needs_equivariance else None

    def kp_transformed() -> Keypoints:
        frame = transform.transform_frame(driving)
        with torch.no_grad(), amp():
            depth = model.depth(frame)[0].float()
        with amp():
            return _float_kp(parts.keypoint_detector(torch.cat([frame, depth], 1)))

    kp_disc = kp_driving.detach()

    def discriminate(images: torch.Tensor) -> dict:
        with amp():
            return _float_outputs(parts.disc(parts.pyramid(images), kp_disc))

    def perceptual(fake, real, weights=None):
        with amp():
            return parts.perceptual(fake, real, weights=weights).float()

    terms = generator_terms(
        w,
        real=driving,
        fake=prediction,
        perceptual_loss=perceptual if parts.perceptual is not None else None,
        disc_real_out=lambda: discriminate(driving),
        disc_fake_out=lambda: discriminate(prediction),
        kp_source=kp_source,
        kp_driving=kp_driving,
        kp_transformed=kp_transformed if transform is not None else None,
        transform=transform,
    )
    values = reduce(terms)
    if on_values is not None:
        on_values(values, "generator")
    generator_update(optim, terms)
    if w.discriminator_gan != 0:
        fake = prediction.detach()
        d_terms = discriminator_terms(w, disc_real_out=lambda: discriminate(driving),
                                      disc_fake_out=lambda: discriminate(fake))
        values.update(discriminator_update(optim, d_terms, reduce, on_values))

    visuals = {
        "source": source, "driving": driving, "prediction": prediction.detach(),
        "depth_source": depth_source, "depth_driving": depth_driving,
        "kp_source": kp_source.value.detach(), "kp_driving": kp_driving.value.detach(),
        "occlusion": generated.get("occlusion_map"), "deformed": generated.get("deformed"),
    }
    return values, visuals


def equivariance_transform(cfg: TrainConfig, batch: int, seed: int, device: torch.device) -> RandomTransform:
    """The step's random affine + TPS transform of the equivariance terms, drawn from `seed`."""
    t = cfg.transform
    return RandomTransform(batch, t.sigma_affine, t.sigma_tps, t.points_tps,
                           generator=torch.Generator().manual_seed(seed), device=device)


def generator_update(optim: Stage2Optim, terms: Mapping[str, torch.Tensor]) -> None:
    """Backward of the generator terms, then the generator and keypoint detector steps."""
    optim.generator.zero_grad(set_to_none=True)
    optim.keypoint_detector.zero_grad(set_to_none=True)
    optim.discriminator.zero_grad(set_to_none=True)  # the generator terms also reach D; never accumulate them
    optim.scaler_generator.scale(total_loss(terms)).backward()
    optim.scaler_generator.step(optim.generator)
    optim.scaler_generator.step(optim.keypoint_detector)
    optim.scaler_generator.update()


def discriminator_update(optim: Stage2Optim, d_terms: Mapping[str, torch.Tensor], reduce,
                         on_values) -> dict[str, float]:
    """The discriminator's step on its terms (what the generator terms left in D dropped first);
    returns their values, checked by `on_values` before the backward."""
    optim.discriminator.zero_grad(set_to_none=True)
    d_values = reduce(d_terms)
    if on_values is not None:
        on_values(d_values, "discriminator")
    optim.scaler_discriminator.scale(total_loss(d_terms)).backward()
    optim.scaler_discriminator.step(optim.discriminator)
    optim.scaler_discriminator.update()
    return d_values


def stage2_grid(visuals: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Columns: source+keypoints, driving+keypoints, prediction, deformed source, source depth,
    driving depth, occlusion map. Rows: the first samples of the batch."""
    size = tuple(visuals["source"].shape[-2:])
    columns = [
        draw_keypoints(visuals["source"], visuals["kp_source"]),
        draw_keypoints(visuals["driving"], visuals["kp_driving"]),
        visuals["prediction"],
    ]
    if visuals.get("deformed") is not None:
        columns.append(visuals["deformed"].detach().float())
    columns += [to_rgb(visuals["depth_source"], size), to_rgb(visuals["depth_driving"], size)]
    if visuals.get("occlusion") is not None:
        columns.append(to_rgb(visuals["occlusion"].float(), size, normalize=False))
    return image_grid(columns)


# ------------------------------------------------------------------------------------- the loop


def _load_init(cfg: TrainConfig, init: str | os.PathLike) -> DaGAN:
    pretrained = DaGAN.from_pretrained(init)
    diffs = config_differences(pretrained.config, cfg.model)
    if diffs:
        raise DaganError(f"--init {init}: its model config differs from the training config in "
                         f"{', '.join('model.' + d for d in diffs)}; make the training config's model match "
                         f"(e.g. --set model.{diffs[0]}=…)")
    model = DaGAN(cfg.model)
    model.load_state_dict(pretrained.state_dict(), strict=True)
    return model


def _load_depth_into(model: DaGAN, depth_dir: str | os.PathLike, cfg: TrainConfig) -> None:
    depth_cfg = read_depth_config(depth_dir)
    if depth_cfg != cfg.model.depth:
        have, want = depth_cfg, cfg.model.depth
        fixes = " ".join(f"model.depth.{k}={v}" for k, v in dataclasses.asdict(have).items()
                         if getattr(want, k) != v)
        raise DaganError(
            f"depth network in {depth_dir} is ResNet-{have.num_layers} (width {have.width}, {have.num_scales} scales), "
            f"but the model config has ResNet-{want.num_layers} (width {want.width}, {want.num_scales} scales); "
            f"pass --set {fixes} or the matching depth network"
        )
    model.depth.load_state_dict(load_depth(depth_dir).state_dict(), strict=True)


def train(
    cfg: TrainConfig,
    data_dir: str | os.PathLike,
    depth_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    max_steps: int | None = None,
    resume: bool = False,
    init: str | os.PathLike | None = None,
    feature_extractor: nn.Module | None = None,
) -> Path:
    """Train DaGAN (stage 2) on the clips of `data_dir/train`; returns the exported `out_dir/model`.

    depth_dir: the frozen depth network (`dagan train-depth`'s RUN/model, or any DaGAN model dir);
        may be None with `init`, whose depth network is then kept.
    max_steps: total optimisation steps of the run (overrides cfg.max_steps; default epochs × steps/epoch).
    resume: continue from the newest valid checkpoint in `out_dir` (a fresh start if there is none).
    init: a DaGAN model directory (e.g. `dagan convert` output) to fine-tune from.
    feature_extractor: replaces VGG-19 in the perceptual loss (tests; never downloads).

    Writes out_dir/{config.yaml, metrics.jsonl, tensorboard/, checkpoints/, model/}. Runs under
    torchrun too (DDP, rank-0 logging and checkpointing). NaN/Inf losses raise NonFiniteLossError.
    """
    if max_steps is not None:
        cfg = dataclasses.replace(cfg, max_steps=max_steps)
    if depth_dir is None and init is None:
        raise DaganError("a depth network is required: pass --depth DIR (dagan train-depth's RUN/model) or --init")
    device = distributed.setup(cfg.device)
    try:
        return _train(cfg, Path(data_dir), depth_dir, Path(out_dir), device, resume, init, feature_extractor)
    except BaseException:
        distributed.abort()
        raise
    finally:
        distributed.cleanup()


def _train(cfg, data_dir, depth_dir, out_dir, device, resume, init, feature_extractor) -> Path:
    from dagan.data import PairDataset

    precision = resolve_precision(cfg.precision, device)
    configure_backends(device)
    distributed.check_same_on_all_ranks(to_plain(cfg), "the training config")
    rank = distributed.rank()

    # Everything that can refuse to start does so before the run directory is touched.
    check_data_dir(data_dir)
    dataset = PairDataset(data_dir, split="train", image_size=cfg.model.image_size, id_sampling=cfg.id_sampling,
                          augment=cfg.augment, num_repeats=cfg.num_repeats, seed=cfg.seed)
    loader, sampler, steps_per_epoch = make_loader(dataset, cfg, device)
    seed_everything(cfg.seed)  # random initial weights (and random VGG in smoke runs) depend on the seed only
    perceptual = build_perceptual(cfg, feature_extractor)
    model = _load_init(cfg, init) if init is not None else DaGAN(cfg.model)
    if depth_dir is not None:
        _load_depth_into(model, depth_dir, cfg)

    state = prepare_run(out_dir, cfg, stage=STAGE, resume=resume)
    parts = build_parts(cfg, device, perceptual, model)
    optim = build_optim(cfg, parts, device, precision)
    if state is not None:
        parts.model.load_state_dict(state["models"]["model"])
        parts.discriminator.load_state_dict(state["models"]["discriminator"])
        optim.load_state_dicts(state)
    pos = restore_position(state, rank)
    if state is not None and init is not None:
        distributed.print0("note: --resume takes the weights from the checkpoint; --init is ignored")
    wrap_parts(parts, cfg, device)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch

    distributed.print0(
        f"dagan train: {batch_description(cfg)}, {steps_per_epoch} steps per epoch, steps {pos.step + 1}…"
        f"{total_steps}, device {device.type}, precision {precision}, run {out_dir}"
        + (f" (resumed from step {pos.step})" if state is not None else "")
    )
    logger = RunLogger(out_dir, enabled=distributed.is_main(), resume_step=pos.step if state is not None else None)

    def export(step: int) -> None:
        parts.model.save_pretrained(out_dir / MODEL_DIR, metadata={"training": {"stage": STAGE, "step": step}})

    def save(step: int) -> None:
        check_parameters_finite({"keypoint_detector": parts.model.keypoint_detector,
                                 "generator": parts.model.generator, "discriminator": parts.discriminator}, step)
        rng = distributed.all_gather_object(capture_rng_state())
        if distributed.is_main():
            optimizers, schedulers, scalers = optim.state_dicts()
            save_checkpoint(out_dir, {
                "stage": STAGE, "step": step, "epoch": pos.epoch, "position": pos.position,
                "models": {"model": parts.model.state_dict(), "discriminator": parts.discriminator.state_dict()},
                "optimizers": optimizers, "schedulers": schedulers, "scalers": scalers,
                "sampler": {**sampler.state_dict(), "epoch": pos.epoch, "start": pos.position * cfg.batch_size},
                "rng": rng, "config": to_plain(cfg),
            }, keep_last=cfg.keep_last)
            export(step)

    def step_fn(batch, seed, **checks):
        return train_step(parts, optim, batch, cfg, seed=seed, device=device, precision=precision, **checks)

    def epoch_end():
        for scheduler in optim.schedulers.values():
            scheduler.step()

    hooks = StageHooks(step=step_fn, learning_rates=lambda: {"lr_generator": optim.generator.param_groups[0]["lr"]},
                       image=lambda visuals: ("train/samples", stage2_grid(visuals)), save=save, export=export,
                       epoch_end=epoch_end)
    run_loop(cfg, pos, total_steps, loader, sampler, dataset, steps_per_epoch, hooks, logger, out_dir,
             device, resumed=state is not None)
    distributed.print0(f"dagan train: done at step {pos.step}; model in {out_dir / MODEL_DIR}")
    return out_dir / MODEL_DIR
