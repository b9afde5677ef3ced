"""Single training steps: every trainable parameter receives a gradient, the depth network stays
frozen, weight-0 terms are skipped, and a NaN loss stops the run before the optimiser step."""

import dataclasses

import pytest
import torch

from dagan.training import NonFiniteLossError, get_depth_preset, get_train_preset, train
from dagan.training.checkpoint import find_latest_checkpoint, list_checkpoints
from dagan.training.config import apply_overrides
from dagan.training.depth_loop import build_depth_optim, build_depth_parts, depth_step
from dagan.training.loop import build_optim, build_parts, build_perceptual, train_step

CPU = torch.device("cpu")


def _pairs(batch=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"source": torch.rand(batch, 3, size, size, generator=g),
            "driving": torch.rand(batch, 3, size, size, generator=g)}


def _no_gradient(module):
    return [n for n, p in module.named_parameters()
            if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0)]


@pytest.mark.parametrize("preset_overrides", [[], ["model.generator.kind=spade"]], ids=["dagan", "spade"])
def test_stage2_every_trainable_parameter_gets_a_gradient(preset_overrides, tiny_features):
    cfg = apply_overrides(get_train_preset("tiny"), preset_overrides)
    torch.manual_seed(0)
    parts = build_parts(cfg, CPU, build_perceptual(cfg, tiny_features()))
    optim = build_optim(cfg, parts, CPU, "fp32")
    depth_before = {k: v.clone() for k, v in parts.model.depth.state_dict().items()}
    # two steps: the attention's γ starts at 0, so its query/key/value (and the depth encoder)
    # receive gradient only once γ has moved
    for step in (1, 2):
        values, visuals = train_step(parts, optim, _pairs(seed=step), cfg, seed=step, device=CPU)
    assert set(values) == {"perceptual", "generator_gan", "feature_matching", "equivariance_value",
                           "equivariance_jacobian", "keypoint_distance", "discriminator_gan"}
    assert all(isinstance(v, float) for v in values.values())
    assert _no_gradient(parts.model.keypoint_detector) == []
    assert _no_gradient(parts.model.generator) == []
    assert _no_gradient(parts.discriminator) == []
    # the depth network is frozen: eval mode, no gradient, unchanged (BatchNorm statistics included)
    assert not parts.model.depth.training
    assert all(not p.requires_grad and p.grad is None for p in parts.model.depth.parameters())
    for k, v in parts.model.depth.state_dict().items():
        assert torch.equal(v, depth_before[k]), k
    assert visuals["prediction"].shape == (2, 3, 64, 64) and visuals["kp_source"].shape == (2, 5, 2)


def test_stage2_zero_weights_skip_terms_and_discriminator():
    cfg = apply_overrides(get_train_preset("tiny"), [
        "loss_weights.equivariance_value=0", "loss_weights.equivariance_jacobian=0",
        "loss_weights.discriminator_gan=0", "loss_weights.generator_gan=0",
        "loss_weights.feature_matching=[0,0,0]", "loss_weights.perceptual=[0,0,0,0,0]",
    ])
    parts = build_parts(cfg, CPU, build_perceptual(cfg, None))  # no VGG needed when perceptual is off
    assert parts.perceptual is None
    optim = build_optim(cfg, parts, CPU, "fp32")
    calls = []
    parts.disc = lambda *a, **k: calls.append(1)
    values, _ = train_step(parts, optim, _pairs(), cfg, seed=0, device=CPU)
    assert set(values) == {"keypoint_distance"} and calls == []
    assert all(p.grad is None for p in parts.discriminator.parameters())


def test_stage1_every_trainable_parameter_gets_a_gradient():
    cfg = get_depth_preset("tiny")
    torch.manual_seed(0)
    parts = build_depth_parts(cfg, CPU)
    optim = build_depth_optim(cfg, parts, CPU, "fp32")
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 3, 3, 64, 64, generator=g)
    values, visuals = depth_step(parts, optim, {"frames": frames, "frames_aug": frames.flip(-1)}, cfg, seed=0,
                                 device=CPU)
    assert set(values) == {"photometric", "smoothness"} and all(v > 0 for v in values.values())
    assert _no_gradient(parts.depth_net) == []
    assert _no_gradient(parts.pose_net) == []  # intrinsics heads included (truncate_intrinsics=False)
    assert visuals["disparity"].shape == (2, 1, 64, 64)


def test_stage1_truncated_intrinsics_get_no_gradient_as_the_original():
    cfg = dataclasses.replace(get_depth_preset("tiny"), truncate_intrinsics=True)
    parts = build_depth_parts(cfg, CPU)
    optim = build_depth_optim(cfg, parts, CPU, "fp32")
    depth_step(parts, optim, {"frames": torch.rand(2, 3, 3, 64, 64)}, cfg, seed=0, device=CPU)
    assert sorted(n.split(".")[1] for n in _no_gradient(parts.pose_net)) == ["focal", "focal", "offset", "offset"]


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, depth_dir,
                                                                                   tiny_features):
    class NaNAfter(tiny_features.cls):
        """Feature extractor whose outputs become NaN after `calls` forward passes."""

        def __init__(self, calls):
            super().__init__()
            self.calls, self.count = calls, 0

        def forward(self, x):
            self.count += 1
            maps = super().forward(x)
            return [m * float("nan") for m in maps] if self.count > self.calls else maps

    cfg = apply_overrides(get_train_preset("tiny"), ["checkpoint_every=1", "keep_last=2"])
    per_step = 2 * len(cfg.perceptual_scales)  # extractor calls per step (prediction and target per scale)
    with pytest.raises(NonFiniteLossError, match=r"non-finite generator loss at step 3 \(perceptual=nan") as info:
        train(cfg, data_dir, depth_dir, tmp_path / "run", max_steps=6, feature_extractor=NaNAfter(2 * per_step))
    assert "step-00000002.pt" in str(info.value)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [1, 2]
    path, state = find_latest_checkpoint(tmp_path / "run", "dagan")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["models"]["model"].values() if v.is_floating_point())


def test_precision_resolution():
    from dagan.errors import DaganError
    from dagan.training.common import resolve_precision

    assert resolve_precision("auto", CPU) == "fp32" and resolve_precision("fp32", CPU) == "fp32"
    with pytest.raises(DaganError, match="needs CUDA"):
        resolve_precision("bf16", CPU)


def _stage2_step(precision, tiny_features):
    """One stage-2 step from the same weights, batch and seed → (loss terms, flat gradient of G, KP and D)."""
    cfg = get_train_preset("tiny")
    torch.manual_seed(0)
    parts = build_parts(cfg, CPU, build_perceptual(cfg, tiny_features()))
    optim = build_optim(cfg, parts, CPU, precision)
    values, visuals = train_step(parts, optim, _pairs(), cfg, seed=0, device=CPU, precision=precision)
    assert visuals["prediction"].dtype == torch.float32
    modules = (parts.model.keypoint_detector, parts.model.generator, parts.discriminator)
    grads = torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.flatten()
                       for m in modules for p in m.parameters()])
    return values, grads


def _depth_step(precision):
    dcfg = get_depth_preset("tiny")
    torch.manual_seed(0)
    dparts = build_depth_parts(dcfg, CPU)
    dbatch = {"frames": torch.rand(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(0))}
    values, _ = depth_step(dparts, build_depth_optim(dcfg, dparts, CPU, precision), dbatch, dcfg, seed=0, device=CPU,
                           precision=precision)
    return values


def _relative_differences(a: dict, b: dict) -> dict:
    assert set(a) == set(b)
    return {k: abs(a[k] - b[k]) / max(abs(a[k]), 1e-8) for k in a}


def test_mixed_precision_step_on_cpu_matches_fp32(tiny_features):
    """The autocast path (bf16 on CPU here; bf16/fp16 on CUDA in real runs) against an fp32 step
    from the same weights, batch and seed. Bounds: bf16 keeps 8 mantissa bits (~0.4 % per
    rounding); the untrained keypoint softmax amplifies that, so stage-2 terms may differ by up to
    20 % (measured ≤ 10 %) and the gradients must point the same way (cosine ≥ 0.8, measured 0.93);
    the stage-1 photometric terms by 2 % (measured 0.01 %)."""
    fp32, g32 = _stage2_step("fp32", tiny_features)
    bf16, g16 = _stage2_step("bf16", tiny_features)
    assert all(torch.isfinite(torch.tensor(v)) for v in bf16.values())
    differences = _relative_differences(fp32, bf16)
    assert max(differences.values()) < 0.2, differences
    assert 0 < max(differences.values()), "bf16 gave exactly the fp32 numbers: autocast did not run"
    cosine = float(torch.nn.functional.cosine_similarity(g32, g16, dim=0))
    assert cosine > 0.8, f"bf16 and fp32 gradients disagree: cosine {cosine:.3f}"
    differences = _relative_differences(_depth_step("fp32"), _depth_step("bf16"))
    assert max(differences.values()) < 0.02, differences


@pytest.mark.gpu  # deselected by default; run with `pytest -m gpu` on a CUDA machine
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_steps(precision, tiny_features):
    cuda = torch.device("cuda")
    cfg = get_train_preset("tiny")
    parts = build_parts(cfg, cuda, build_perceptual(cfg, tiny_features()))
    optim = build_optim(cfg, parts, cuda, precision)
    for step in (1, 2):
        values, _ = train_step(parts, optim, {k: v.to(cuda) for k, v in _pairs(seed=step).items()}, cfg, seed=step,
                               device=cuda, precision=precision)
        assert all(torch.isfinite(torch.tensor(v)) for v in values.values())
    dcfg = get_depth_preset("tiny")
    dparts = build_depth_parts(dcfg, cuda)
    values, _ = depth_step(dparts, build_depth_optim(dcfg, dparts, cuda, precision),
                           {"frames": torch.rand(2, 3, 3, 64, 64, device=cuda)}, dcfg, seed=0, device=cuda,
                           precision=precision)
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values())
