"""Parity with the official implementation (../shared/reference): both weight recipes, every
stored intermediate, weights written in the original file formats and loaded via from_original."""

import pytest
import torch

import dagan
from dagan.compat import load_original_discriminator, original_to_ours
from dagan.geometry import Keypoints, normalize_keypoints
from dagan.geometry.keypoints import movement_scale
from dagan.inference.optimize import inference_form
from dagan.inference.winograd import WinogradConv2d
from dagan.models.attention import DepthAwareAttention
from dagan.nn import gaussian_kernel
from reference import manifest, recipe_state, reference_dir, write_original_files

IMG, FINE = 1e-4, 1e-5  # README tolerances: images / keypoints, jacobians, deformation, masks, depth
FIXTURES = {"A": "parity_vox256.pt", "B": "parity_vox256_recipeB.pt"}


@pytest.fixture(scope="module", params=["A", "B"])
def case(request, tmp_path_factory):
    recipe = request.param
    fx = torch.load(reference_dir() / FIXTURES[recipe], weights_only=True)
    assert int(fx["meta.recipe_is_B"]) == (recipe == "B")
    paths = write_original_files(tmp_path_factory.mktemp(f"orig{recipe}"), recipe)
    model = dagan.from_original(checkpoint=paths["checkpoint"], depth_encoder=paths["depth_encoder"],
                                depth_decoder=paths["depth_decoder"], generator="dagan")
    captured = {}

    def hook(module, args, output):
        captured.setdefault("in_feat", args[1])  # the first call is the relative frame-1 call
        captured.setdefault("out", output[0])

    handle = model.generator.attention.register_forward_hook(hook)
    with torch.no_grad():
        src, drv = fx["input.source"], fx["input.driving"]
        depth_src = model.estimate_depth(src, all_scales=True)
        depth_drv = model.estimate_depth(drv)
        kp_src = model.detect_keypoints(src, depth_src[0])
        kp_drv = model.detect_keypoints(drv, depth_drv)
        kp_norm = normalize_keypoints(kp_src, kp_drv, kp_drv[0:1], relative=True, adapt_movement_scale=True)
        rel = model.generator(src, kp_norm[1:2], kp_src, depth_src[0], return_attention=True)
        absolute = model.generator(src, kp_drv[1:2], kp_src, depth_src[0])
    handle.remove()
    return dict(fx=fx, paths=paths, model=model, depth_src=depth_src, depth_drv=depth_drv, kp_src=kp_src,
                kp_drv=kp_drv, kp_norm=kp_norm, rel=rel, absolute=absolute, captured=captured, recipe=recipe)


def close(actual, expected, atol, rtol=0.0):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = float((actual - expected).abs().max())
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=f"max abs diff {err:.3g}")


def test_depth_all_scales(case):
    fx, d = case["fx"], case["depth_src"]
    close(d[0], fx["depth.source"], FINE)
    for s in (1, 2, 3):
        close(d[s], fx[f"depth.source.disp{s}"], FINE)
    close(case["depth_drv"], fx["depth.driving"], FINE)


def test_keypoints_and_jacobians(case):
    fx = case["fx"]
    close(case["kp_src"].value, fx["kp.source.value"], FINE)
    close(case["kp_src"].jacobian, fx["kp.source.jacobian"], FINE)
    close(case["kp_drv"].value, fx["kp.driving.value"], FINE)
    close(case["kp_drv"].jacobian, fx["kp.driving.jacobian"], FINE)


def test_normalised_keypoints_and_scale(case):
    fx = case["fx"]
    close(case["kp_norm"].value, fx["relative.kp_norm.value"], FINE)
    close(case["kp_norm"].jacobian, fx["relative.kp_norm.jacobian"], FINE)
    scale = movement_scale(case["kp_src"], case["kp_drv"][0:1])
    assert abs(scale - float(fx["relative.adapt_movement_scale"])) < 1e-5
    # frame 0 is the initial frame: its normalised keypoints equal the source's
    close(case["kp_norm"].value[0:1], case["kp_src"].value, 1e-6)


def test_dense_motion(case):
    fx, rel = case["fx"], case["rel"]
    assert int(fx["relative.frame"]) == 1
    close(rel["deformation"], fx["relative.dense.deformation"], FINE)
    close(rel["mask"], fx["relative.dense.mask"], FINE)
    close(rel["occlusion_map"], fx["relative.dense.occlusion_map"], FINE)
    close(rel["sparse_deformed"], fx["relative.dense.sparse_deformed"], IMG)
    close(rel["deformed"], fx["relative.deformed"], IMG)
    close(case["absolute"]["deformation"], fx["absolute.dense.deformation"], FINE)
    close(case["absolute"]["occlusion_map"], fx["absolute.dense.occlusion_map"], FINE)


def test_attention_intermediates(case):
    fx, cap, rel = case["fx"], case["captured"], case["rel"]
    close(cap["in_feat"][:, :64], fx["relative.attn.in_feat.ch0-63"], FINE)
    close(cap["out"][:, :64], fx["relative.attn.out.ch0-63"], FINE)
    close(cap["in_feat"].mean(dim=(2, 3)), fx["relative.attn.in_feat.channel_mean"], FINE)
    close(cap["out"].mean(dim=(2, 3)), fx["relative.attn.out.channel_mean"], FINE)
    close(rel["attention"][:, ::64], fx["relative.attn.attention_rows_every64"], FINE)
    row_err = (rel["attention"].sum(-1) - 1).abs().max()
    assert row_err < 1e-5


def test_animate_relative_and_absolute(case):
    fx, model = case["fx"], case["model"]
    src, drv = fx["input.source"], fx["input.driving"]
    close(model.animate(src, drv, relative=True, adapt_movement_scale=True), fx["relative.prediction"], IMG)
    absolute = model.animate(src, drv, relative=False, adapt_movement_scale=False)
    close(absolute[1:2], fx["absolute.prediction"], IMG)
    close(case["rel"]["prediction"], fx["relative.prediction"][1:2], IMG)


def test_inference_form_matches_the_fixtures(case):
    fx = case["fx"]
    fast = inference_form(case["model"])  # BatchNorm folded, channels_last, fp32, Winograd convs
    assert any(isinstance(m, WinogradConv2d) for m in fast.modules())
    src, drv = fx["input.source"], fx["input.driving"]
    with torch.no_grad():
        close(fast.estimate_depth(drv), fx["depth.driving"], FINE)
        kp = fast.detect_keypoints(drv)
    close(kp.value, fx["kp.driving.value"], FINE)
    close(kp.jacobian, fx["kp.driving.jacobian"], FINE)
    close(fast.animate(src, drv, relative=True, adapt_movement_scale=True), fx["relative.prediction"], IMG)


def test_discriminator(case):
    fx = case["fx"]
    disc = load_original_discriminator(case["paths"]["checkpoint"], case["model"].config)
    kp = Keypoints(case["kp_drv"].value[1:2], case["kp_drv"].jacobian[1:2])
    with torch.no_grad():
        out = disc({"prediction_1": fx["relative.prediction"][1:2]}, kp)
    close(out["prediction_map_1"], fx["disc.prediction_map_1"], IMG)
    for i in range(4):
        close(out["feature_maps_1"][i].mean(dim=(2, 3)), fx[f"disc.feature_map_{i}.channel_mean"], IMG)


def test_spade_generator(case):
    fx, paths = case["fx"], case["paths"]
    spade = dagan.from_original(checkpoint=paths["spade_checkpoint"], depth_encoder=paths["depth_encoder"],
                                depth_decoder=paths["depth_decoder"], generator="spade")
    kp_norm = Keypoints(fx["relative.kp_norm.value"][1:2], fx["relative.kp_norm.jacobian"][1:2])
    kp_src = Keypoints(fx["kp.source.value"], fx["kp.source.jacobian"])
    logits = {}
    spade.generator.decoder.to_rgb.register_forward_hook(lambda m, a, out: logits.setdefault("z", out))
    with torch.no_grad():
        out = spade.generator(fx["input.source"], kp_norm, kp_src, fx["depth.source"])
    expected = fx["spade.relative.prediction"]
    if case["recipe"] == "B":
        close(out["prediction"], expected, IMG)  # unsaturated (outputs in 0.04…0.94): well-conditioned
        return
    # Recipe A's tiny spectral-norm sigmas make the pre-sigmoid values z huge (median |z| ≈ 1.4e4), sums of
    # terms that large cancel to a few units at some pixels, and the ISA's summation order moves z there by
    # ~1: about 0.1 % of pixels (|z| < 20) flip by up to 0.2 between AMX, AVX-512 and AVX2 kernels. Where
    # |z| ≥ 20 the output is within 2e-9 of 0 or 1 whatever the rounding, so those pixels are compared.
    stable = logits["z"].abs() >= 20
    assert float(stable.float().mean()) > 0.99
    close(out["prediction"][stable], expected[stable], IMG)


def test_attention_unit(case):
    fx = case["fx"]
    attn = DepthAwareAttention(256)
    entries = [[k, list(v.shape), "float32", "param"] for k, v in
               {"query_conv.weight": torch.empty(32, 256, 1, 1), "query_conv.bias": torch.empty(32),
                "key_conv.weight": torch.empty(32, 256, 1, 1), "key_conv.bias": torch.empty(32),
                "value_conv.weight": torch.empty(256, 256, 1, 1), "value_conv.bias": torch.empty(256),
                "gamma": torch.empty(1)}.items()]
    attn.load_state_dict(original_to_ours("attention", recipe_state(entries, case["recipe"])), strict=True)
    with torch.no_grad():
        out, attention = attn(fx["unit.attention.source"], fx["unit.attention.feat"], return_attention=True)
        fused, _ = attn(fx["unit.attention.source"], fx["unit.attention.feat"])
    torch.testing.assert_close(out, fx["unit.attention.out"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(attention, fx["unit.attention.attention"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fused, fx["unit.attention.out"], rtol=1e-4, atol=1e-5)


def test_antialias_kernels(case):
    fx = case["fx"]
    for scale in (0.25, 0.5, 0.125):
        kernel, size = gaussian_kernel(scale)
        close(kernel.view(1, 1, size, size), fx[f"const.antialias_kernel.scale{scale}"], 1e-7)


def test_manifest_lists_the_fixture_models():
    assert set(manifest()["models"]) >= {"generator", "generator_spade", "kp_detector", "discriminator",
                                         "depth_encoder_r18", "depth_decoder_r18"}
