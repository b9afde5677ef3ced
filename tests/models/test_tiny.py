"""The tiny preset: shapes, gradients reaching every parameter, determinism, bad inputs."""

import dataclasses

import pytest
import torch

import dagan
from dagan.config import get_preset
from dagan.geometry import make_coordinate_grid, normalize_keypoints
from dagan.models import DaGAN, PoseNetwork, build_discriminator

S = 64


@pytest.fixture(scope="module", params=["tiny", "tiny-spade"])
def model(request):
    torch.manual_seed(0)
    return DaGAN(get_preset(request.param)).eval()


def images(b, seed=0):
    return torch.rand(b, 3, S, S, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_component_shapes(model):
    k = model.config.num_kp
    x = images(2)
    disps = model.estimate_depth(x, all_scales=True)
    assert [tuple(d.shape) for d in disps] == [(2, 1, S >> s, S >> s) for s in range(4)]
    assert all(float(d.min()) > 0 and float(d.max()) < 1 for d in disps)
    kp = model.detect_keypoints(x, disps[0])
    assert kp.value.shape == (2, k, 2) and kp.jacobian.shape == (2, k, 2, 2)
    assert float(kp.value.abs().max()) <= 1
    out = model.generator(x[:1], kp, model.detect_keypoints(x[:1]), disps[0][:1], return_attention=True)
    n = (S // 4) ** 2
    assert out["prediction"].shape == (2, 3, S, S)
    assert out["deformation"].shape == (2, S // 4, S // 4, 2)
    assert out["mask"].shape == (2, k + 1, S // 4, S // 4)
    assert out["occlusion_map"].shape == (2, 1, S // 4, S // 4)
    assert out["sparse_deformed"].shape == (2, k + 1, 3, S // 4, S // 4)
    assert out["attention"].shape == (2, n, n)
    torch.testing.assert_close(out["mask"].sum(1), torch.ones(2, S // 4, S // 4))


def test_animate_matches_framewise_generation(model):
    src, drv = images(1, 1), images(5, 2)
    batched = model.animate(src, drv, batch_size=2)
    assert batched.shape == (5, 3, S, S)
    framewise = model.animate(src, drv, batch_size=1)
    # batching changes only the conv summation order: far below what the driving motion changes
    # (the untrained tiny generator reacts to motion by ~1e-4 only, SPADE by ~1)
    motion = float((framewise[1:] - framewise[:1]).abs().max())
    error = float((batched - framewise).abs().max())
    assert error < 0.01 * motion, f"batch 2 vs frame by frame: {error:.3g}; motion changes frames by {motion:.3g}"
    # driving = source in absolute mode with identical keypoints: motion is the identity warp
    state = model.prepare_source(src)
    kp = normalize_keypoints(state.keypoints, model.driving_keypoints(src), None, relative=False)
    torch.testing.assert_close(kp.value, state.keypoints.value, atol=0, rtol=0)
    with torch.no_grad():
        out = model.generate(state, kp)
    identity = make_coordinate_grid(S // 4, S // 4)[None]  # 1×h×w×2, x first
    torch.testing.assert_close(out["deformation"], identity, atol=1e-5, rtol=0)


def test_relative_first_frame_uses_source_keypoints(model):
    src, drv = images(1, 3), images(3, 4)
    state = model.prepare_source(src)
    kp_drv = model.driving_keypoints(drv)
    from dagan.geometry import normalize_keypoints

    norm = normalize_keypoints(state.keypoints, kp_drv, kp_drv[0:1], relative=True)
    torch.testing.assert_close(norm.value[0:1], state.keypoints.value, atol=1e-6, rtol=0)
    torch.testing.assert_close(norm.jacobian[0:1], state.keypoints.jacobian, atol=1e-5, rtol=0)


def test_source_encoded_once(model, monkeypatch):
    calls = {"n": 0}
    original = model.generator.encode_source

    def counting(*a, **kw):
        calls["n"] += 1
        return original(*a, **kw)

    monkeypatch.setattr(model.generator, "encode_source", counting)
    model.animate(images(1), images(6, 5), batch_size=2)
    assert calls["n"] == 1


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    cfg = get_preset("tiny-spade")
    for kind in ("dagan", "spade"):
        cfg = cfg.replace(generator=dataclasses.replace(cfg.generator, kind=kind))
        m = DaGAN(cfg).train()
        disc = build_discriminator(cfg).train()
        with torch.no_grad():
            m.generator.attention.gamma.fill_(0.5)  # γ = 0 at init would block the Q/K/V gradient
        src, drv = images(2, 1), images(2, 2)
        d_src, d_drv = m.depth(src)[0], m.depth(drv)[0]
        kp_s = m.keypoint_detector(torch.cat([src, d_src], 1))
        kp_d = m.keypoint_detector(torch.cat([drv, d_drv], 1))
        out = m.generator(src, kp_d, kp_s, d_src)
        d_out = disc({"prediction_1": out["prediction"]}, kp_d)
        loss = out["prediction"].mean() + d_out["prediction_map_1"].mean() + sum(d.mean() for d in m.depth(src))
        loss.backward()
        for module in (m, disc):
            missing = [n for n, p in module.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
                       or float(p.grad.abs().sum()) == 0]
            assert not missing, f"{kind}: no gradient for {missing[:5]}"


def test_pose_network_shapes_and_gradients():
    net = PoseNetwork(18)
    a, b = images(2, 1), images(2, 2)
    axisangle, translation, K = net(a, b)
    assert axisangle.shape == (2, 2, 1, 3) and translation.shape == (2, 2, 1, 3) and K.shape == (2, 3, 3)
    assert torch.all(K[:, 0, 0] > 0) and torch.all(K[:, 2, 2] == 1) and torch.all(K[:, 0, 1] == 0)
    (axisangle.sum() + translation.sum() + K.sum()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(1, 3, 32, 32), "shape"),
        (torch.rand(1, 4, S, S), "shape"),
        (torch.rand(3, S, S), "shape"),
        (torch.rand(1, 3, S, S) * 255, "[0, 1]"),
        ((torch.rand(1, 3, S, S) * 255).to(torch.uint8), "float"),
        (torch.full((1, 3, S, S), float("nan")), "[0, 1]"),
        ("not a tensor", "torch.Tensor"),
    ],
)
def test_bad_inputs_are_clear_errors(model, bad, message):
    with pytest.raises(dagan.DaganError, match=None) as info:
        model.animate(bad, images(2))
    assert message in str(info.value)


def test_source_batch_must_be_one(model):
    with pytest.raises(dagan.DaganError, match="single image"):
        model.animate(images(2), images(2))


def test_unknown_preset_and_config_keys():
    with pytest.raises(dagan.DaganError, match="unknown model preset"):
        get_preset("vox-512")
    with pytest.raises(dagan.DaganError, match="unknown key"):
        dagan.ModelConfig.from_dict({"num_kp": 10, "colour": 3})
    with pytest.raises(dagan.DaganError, match="unknown key"):
        dagan.ModelConfig.from_dict({"generator": {"kind": "dagan", "wings": 2}})
