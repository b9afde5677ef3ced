import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dagan.losses.photometric import (
    SSIM_C1,
    DepthTrainingLoss,
    backproject_depth,
    disp_to_depth,
    edge_aware_smoothness,
    intrinsics_matrix,
    min_reprojection_with_automask,
    photometric_error,
    project_3d,
    reproject,
    scale_intrinsics,
    ssim_error,
    transformation_from_parameters,
)


def constant(value, shape=(1, 3, 6, 6), dtype=torch.float64):
    return torch.full(shape, value, dtype=dtype)


def ssim_error_constant(a, b):
    # σx = σy = σxy = 0, so SSIM = (2ab + C1)/(a² + b² + C1)
    return (1 - (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)) / 2


def camera(batch=1, f=10.0, h=8, w=10, dtype=torch.float32):
    focal = torch.tensor([[f, f]], dtype=dtype).expand(batch, 2)
    offset = torch.tensor([[(w - 1) / 2, (h - 1) / 2]], dtype=dtype).expand(batch, 2)
    return intrinsics_matrix(focal, offset)


# --- image terms ---


def test_ssim_identical_images_is_zero():
    x = torch.rand(2, 3, 9, 7)
    err = ssim_error(x, x)
    assert err.shape == x.shape
    assert err.abs().max() < 1e-5


def test_ssim_and_photometric_on_constant_images():
    a, b = 0.5, 0.6
    torch.testing.assert_close(ssim_error(constant(a), constant(b)), constant(ssim_error_constant(a, b)))
    for alpha in (0.85, 0.3, 0.0, 1.0):
        expected = alpha * ssim_error_constant(a, b) + (1 - alpha) * abs(a - b)
        out = photometric_error(constant(a), constant(b), alpha)
        assert out.shape == (1, 1, 6, 6)
        torch.testing.assert_close(out, constant(expected, (1, 1, 6, 6)))


def test_ssim_is_clamped_and_symmetric():
    x, y = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    err = ssim_error(x, 1 - x)
    assert (err >= 0).all() and (err <= 1).all()
    torch.testing.assert_close(ssim_error(x, y), ssim_error(y, x))


def test_photometric_bad_inputs():
    with pytest.raises(ValueError):
        photometric_error(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))
    with pytest.raises(ValueError):
        photometric_error(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), alpha=1.5)


def test_disp_to_depth():
    scaled, depth = disp_to_depth(torch.tensor([0.0, 1.0, 0.5]))
    torch.testing.assert_close(scaled, torch.tensor([0.01, 10.0, 0.01 + 9.99 / 2]))
    torch.testing.assert_close(depth, torch.tensor([100.0, 0.1, 1 / (0.01 + 9.99 / 2)]))


def test_smoothness_known_values():
    assert edge_aware_smoothness(torch.full((2, 1, 5, 5), 0.3), torch.rand(2, 3, 5, 5)).item() == 0
    ramp = torch.tensor([1.0, 2.0, 3.0]).expand(1, 1, 2, 3)  # mean 2 → normalised 0.5, 1, 1.5
    flat = torch.zeros(1, 3, 2, 3)
    edges = torch.tensor([0.0, 1.0, 2.0]).expand(1, 3, 2, 3)  # |∂x I| = 1 in every channel
    torch.testing.assert_close(edge_aware_smoothness(ramp, flat), torch.tensor(0.5))
    torch.testing.assert_close(edge_aware_smoothness(ramp, edges), torch.tensor(0.5 * math.exp(-1)))
    torch.testing.assert_close(edge_aware_smoothness(ramp, flat, normalize=False), torch.tensor(1.0))
    with pytest.raises(ValueError):
        edge_aware_smoothness(ramp, torch.zeros(1, 3, 3, 3))


def test_min_reprojection_with_automask():
    reproj = torch.tensor([[[[0.5, 0.1]], [[0.3, 0.9]]]])  # B=1, N=2, 1×2 pixels
    identity = torch.tensor([[[[0.2, 0.8]], [[0.7, 0.8]]]])
    loss, keep = min_reprojection_with_automask(reproj, identity, torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss, torch.tensor([[[0.2, 0.1]]]), atol=1e-4, rtol=0)
    assert keep.tolist() == [[[False, True]]]  # pixel 0: the unwarped frame wins → masked out
    again, _ = min_reprojection_with_automask(reproj, identity, torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss, again)
    plain, keep = min_reprojection_with_automask(reproj)
    torch.testing.assert_close(plain, torch.tensor([[[0.3, 0.1]]]))
    assert keep.all()
    with pytest.raises(ValueError):
        min_reprojection_with_automask(reproj, identity[:, :1])


# --- camera geometry ---


def test_transformation_from_parameters_matches_scipy():
    rng = np.random.default_rng(0)
    rotvec = rng.normal(size=(3, 3)) * 0.7
    trans = rng.normal(size=(3, 3))
    axisangle = torch.tensor(rotvec).view(3, 1, 3)  # the pose net's B×1×3
    translation = torch.tensor(trans).view(3, 1, 3)
    m = transformation_from_parameters(axisangle, translation)
    assert m.shape == (3, 4, 4) and m.dtype == torch.float64
    expected = np.tile(np.eye(4), (3, 1, 1))
    expected[:, :3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    expected[:, :3, 3] = trans
    np.testing.assert_allclose(m.numpy(), expected, atol=1e-6)
    inverse = transformation_from_parameters(axisangle, translation, invert=True)
    np.testing.assert_allclose(inverse.numpy(), np.linalg.inv(expected), atol=1e-6)


def test_zero_axisangle_is_identity_rotation():
    m = transformation_from_parameters(torch.zeros(2, 1, 3), torch.zeros(2, 1, 3))
    torch.testing.assert_close(m, torch.eye(4).expand(2, 4, 4))


def test_gradcheck_transformation_from_parameters():
    axisangle = (torch.rand(2, 1, 3, dtype=torch.float64) + 0.1).requires_grad_(True)
    translation = torch.rand(2, 1, 3, dtype=torch.float64, requires_grad=True)
    inverse = lambda a, t: transformation_from_parameters(a, t, invert=True)  # noqa: E731
    assert torch.autograd.gradcheck(inverse, (axisangle, translation))


def test_intrinsics_helpers():
    k = intrinsics_matrix(torch.tensor([[100.7, 90.2]]), torch.tensor([[64.9, 60.1]]))
    torch.testing.assert_close(k, torch.tensor([[[100.7, 0, 64.9], [0, 90.2, 60.1], [0, 0, 1]]]))
    torch.testing.assert_close(scale_intrinsics(k, 1), torch.tensor([[[50.0, 0, 32], [0, 45, 30], [0, 0, 1]]]))
    torch.testing.assert_close(
        scale_intrinsics(k, 1, truncate=False), torch.tensor([[[50.35, 0, 32.45], [0, 45.1, 30.05], [0, 0, 1]]])
    )
    assert k[0, 0, 0] == pytest.approx(100.7)  # not modified in place (the original's was)
    k4 = torch.eye(4).unsqueeze(0)
    k4[:, :3, :3] = k
    torch.testing.assert_close(scale_intrinsics(k4, 0, truncate=False), k)
    with pytest.raises(ValueError):
        scale_intrinsics(torch.eye(2).unsqueeze(0), 0)


def test_backproject_known_points():
    k = camera(h=2, w=3, f=2.0)  # cx = 1, cy = 0.5
    depth = torch.full((1, 1, 2, 3), 4.0)
    points = backproject_depth(depth, k)
    assert points.shape == (1, 4, 6)
    # pixel (x=2, y=1): X = (2 − 1)·4/2, Y = (1 − 0.5)·4/2, Z = 4
    torch.testing.assert_close(points[0, :, 5], torch.tensor([2.0, 1.0, 4.0, 1.0]))


def test_identity_pose_reprojection_reproduces_target():
    image = torch.rand(2, 3, 8, 10)
    depth = torch.rand(2, 1, 8, 10) * 10 + 0.1  # any depth
    k, pose = camera(batch=2), torch.eye(4).expand(2, 4, 4)
    grid = project_3d(backproject_depth(depth, k), k, pose, 8, 10)
    assert grid.shape == (2, 8, 10, 2)
    assert grid[..., 0].min() == pytest.approx(-1, abs=1e-5) and grid[..., 0].max() == pytest.approx(1, abs=1e-5)
    torch.testing.assert_close(reproject(image, depth, k, pose), image, atol=1e-5, rtol=0)


def test_translation_shifts_by_focal_times_baseline_over_depth():
    image = torch.rand(1, 3, 8, 10)
    depth = torch.full((1, 1, 8, 10), 2.0)
    pose = torch.eye(4).unsqueeze(0).clone()
    pose[0, 0, 3] = 0.2  # f·t/Z = 10·0.2/2 = one pixel to the right
    warped = reproject(image, depth, camera(), pose)
    torch.testing.assert_close(warped[..., :-1], image[..., 1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(warped[..., -1], image[..., -1], atol=1e-5, rtol=0)  # border padding


def test_gradcheck_backproject_project():
    k = camera(h=3, w=4, dtype=torch.float64)
    pose = transformation_from_parameters(torch.tensor([[[0.05, -0.02, 0.03]]], dtype=torch.float64),
                                          torch.tensor([[[0.01, 0.02, -0.03]]], dtype=torch.float64))
    depth = (torch.rand(1, 1, 3, 4, dtype=torch.float64) + 1).requires_grad_(True)
    pose = pose.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d, p: project_3d(backproject_depth(d, k), k, p, 3, 4), (depth, pose))


# --- the stage-1 objective ---


def disparities(batch, h, w, scales=4, value=None, requires_grad=False):
    out = []
    for s in range(scales):
        shape = (batch, 1, h // 2**s, w // 2**s)
        d = torch.full(shape, value) if value is not None else torch.rand(shape) * 0.5 + 0.25
        out.append(d.requires_grad_(requires_grad))
    return out


def test_depth_loss_zero_for_static_scene():
    target = torch.rand(2, 3, 16, 16)
    terms = DepthTrainingLoss()(
        target, [target, target], disparities(2, 16, 16, value=0.4), [torch.eye(4).expand(2, 4, 4)] * 2,
        camera(2, f=20.0, h=16, w=16), generator=torch.Generator().manual_seed(0),
    )
    assert set(terms) == {"photometric", "smoothness"}
    assert abs(terms["photometric"].item()) < 1e-4
    assert terms["smoothness"].item() == 0


def test_depth_loss_known_value_on_constant_frames():
    # float64: in float32 the ~1e-7 interpolation noise of the warped frame is not small against C2
    a, b, alpha, f64 = 0.5, 0.6, 0.85, torch.float64
    target, neighbour = constant(a, (1, 3, 16, 16)), constant(b, (1, 3, 16, 16))
    pose = transformation_from_parameters(
        torch.tensor([[[0.1, 0.0, 0.05]]], dtype=f64), torch.tensor([[[0.02, 0.0, 0.0]]], dtype=f64)
    )
    disps = [d.to(f64) for d in disparities(1, 16, 16)]
    k = camera(f=20.0, h=16, w=16, dtype=f64)
    expected = alpha * ssim_error_constant(a, b) + (1 - alpha) * abs(a - b)
    loss = DepthTrainingLoss(alpha=alpha, smoothness=0.0, automask=False)
    terms = loss(target, [neighbour], disps, [pose], k)
    assert set(terms) == {"photometric"}  # weight 0: smoothness absent
    assert terms["photometric"].item() == pytest.approx(expected, rel=1e-9)
    # with the auto-mask the identity loss is the same value, up to the 1e-5 tie-break noise
    terms = DepthTrainingLoss(alpha=alpha)(target, [neighbour], disps, [pose], k)
    assert terms["photometric"].item() == pytest.approx(expected, abs=1e-4)
    # smoothness: Σ_s 1e-3/2^s · smooth(disp_s, target_s) / 4; a constant image weighs every edge by 1
    zeros = [torch.zeros(1, 3, *d.shape[-2:], dtype=f64) for d in disps]
    expected_smooth = sum(1e-3 / 2**s * edge_aware_smoothness(d, z) for s, (d, z) in enumerate(zip(disps, zeros))) / 4
    torch.testing.assert_close(terms["smoothness"], expected_smooth)


def test_depth_loss_gradients():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 16, 16)
    neighbour = torch.roll(target, 1, dims=-1)
    axisangle = torch.full((1, 1, 3), 0.01, requires_grad=True)
    translation = torch.full((1, 1, 3), 0.01, requires_grad=True)
    focal = torch.tensor([[20.0, 20.0]], requires_grad=True)
    offset = torch.tensor([[7.5, 7.5]], requires_grad=True)
    disps = disparities(1, 16, 16, requires_grad=True)

    def run(**kwargs):
        pose = transformation_from_parameters(axisangle, translation)
        terms = DepthTrainingLoss(**kwargs)(target, [neighbour], disps, [pose], intrinsics_matrix(focal, offset))
        sum(terms.values()).backward()

    run(truncate_intrinsics=False)
    for tensor in (axisangle, translation, focal, offset, *disps):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0
    # the original truncates K, which cuts its gradient
    focal.grad = offset.grad = None
    run()
    assert focal.grad.abs().sum() == 0 and offset.grad.abs().sum() == 0


def test_depth_loss_bad_inputs():
    target = torch.rand(1, 3, 16, 16)
    loss = DepthTrainingLoss()
    k, pose = camera(f=20.0, h=16, w=16), torch.eye(4).unsqueeze(0)
    with pytest.raises(ValueError):
        loss(target, [target], disparities(1, 16, 16, scales=3), [pose], k)
    with pytest.raises(ValueError):
        loss(target, [target], disparities(1, 16, 16), [pose, pose], k)
    with pytest.raises(ValueError):
        loss(target, [target[..., :8]], disparities(1, 16, 16), [pose], k)
