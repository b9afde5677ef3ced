import math

import pytest
import torch

from dagan.geometry.keypoints import Keypoints
from dagan.losses.equivariance import RandomTransform, equivariance_jacobian_loss, equivariance_value_loss


def identity_transform(batch=2, points=5):
    return RandomTransform(batch, sigma_affine=0.0, sigma_tps=0.0, points_tps=points)


def random_transform(batch=2, seed=0, dtype=torch.float32):
    t = RandomTransform(batch, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(seed))
    return RandomTransform.from_parameters(t.theta.to(dtype), t.control_points.to(dtype), t.control_params.to(dtype))


def test_shapes_and_reproducibility():
    a = RandomTransform(3, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(1))
    b = RandomTransform(3, 0.05, 0.005, 5, generator=torch.Generator().manual_seed(1))
    assert a.theta.shape == (3, 2, 3) and a.control_params.shape == (3, 1, 25) and a.control_points.shape == (25, 2)
    torch.testing.assert_close(a.theta, b.theta)
    torch.testing.assert_close(a.control_params, b.control_params)
    # control points: 5×5 grid with corners exactly ±1
    assert a.control_points.min() == -1 and a.control_points.max() == 1
    assert not RandomTransform(1, 0.05).tps


def test_zero_parameters_is_identity_with_identity_jacobian():
    t = identity_transform()
    coords = torch.rand(2, 7, 2) * 2 - 1
    torch.testing.assert_close(t.warp_coordinates(coords), coords)
    jac = t.jacobian(coords)
    assert jac.shape == (2, 7, 2, 2)
    torch.testing.assert_close(jac, torch.eye(2).expand(2, 7, 2, 2))


def test_identity_transform_frame_on_3x3_reproduces_frame():
    # with align_corners=False the FOMM grid (corners ±1) lands on pixel centres only for sizes 2 and 3;
    # reflection padding then clips the corner samples to the border pixels
    frame = torch.rand(2, 3, 3, 3)
    torch.testing.assert_close(identity_transform().transform_frame(frame), frame)


def test_transform_frame_constant_image_and_shape():
    frame = torch.full((2, 1, 16, 12), 0.3)
    out = random_transform().transform_frame(frame)
    assert out.shape == frame.shape
    torch.testing.assert_close(out, frame)  # reflection padding: no zeros come in


def test_affine_known_values():
    theta = torch.tensor([[[2.0, 0.0, 0.5], [0.0, 1.0, -0.25]]])
    t = RandomTransform.from_parameters(theta)
    coords = torch.tensor([[[0.1, 0.2], [-1.0, 1.0]]])
    expected = torch.tensor([[[0.7, -0.05], [-1.5, 0.75]]])
    torch.testing.assert_close(t.warp_coordinates(coords), expected)
    torch.testing.assert_close(t.jacobian(coords), torch.tensor([[2.0, 0.0], [0.0, 1.0]]).expand(1, 2, 2, 2))


def test_tps_known_value_l1_radius_same_offset_on_x_and_y():
    theta = torch.eye(2, 3).unsqueeze(0)
    t = RandomTransform.from_parameters(theta, torch.zeros(1, 2), torch.ones(1, 1, 1))
    coords = torch.tensor([[[0.5, 0.25]]])
    d = 0.75  # L1 distance to (0, 0), not the Euclidean 0.559
    offset = d**2 * math.log(d + 1e-6)
    torch.testing.assert_close(t.warp_coordinates(coords), torch.tensor([[[0.5 + offset, 0.25 + offset]]]))


def test_coordinates_broadcast_over_batch():
    t = random_transform(batch=3)
    grid = torch.rand(1, 10, 2) * 2 - 1
    out = t.warp_coordinates(grid)
    assert out.shape == (3, 10, 2)
    torch.testing.assert_close(out[1], t.warp_coordinates(grid.expand(3, 10, 2))[1])


def test_jacobian_matches_finite_differences_float64():
    t = random_transform(dtype=torch.float64)
    coords = (torch.rand(2, 4, 2, dtype=torch.float64) * 2 - 1) * 0.9
    jac = t.jacobian(coords)
    eps = 1e-6
    for axis in range(2):
        step = torch.zeros_like(coords)
        step[..., axis] = eps
        column = (t.warp_coordinates(coords + step) - t.warp_coordinates(coords - step)) / (2 * eps)
        torch.testing.assert_close(jac[..., :, axis], column, atol=1e-7, rtol=1e-6)


def test_gradcheck_warp_coordinates():
    t = random_transform(dtype=torch.float64)
    coords = ((torch.rand(2, 3, 2, dtype=torch.float64) * 2 - 1) * 0.9).requires_grad_(True)
    assert torch.autograd.gradcheck(t.warp_coordinates, (coords,))


def test_jacobian_is_differentiable_and_works_without_grad():
    t = random_transform()
    coords = (torch.rand(2, 4, 2) * 1.8 - 0.9).requires_grad_(True)
    t.jacobian(coords).sum().backward()  # create_graph=True: second derivatives of the TPS reach coords
    assert coords.grad is not None and coords.grad.abs().sum() > 0
    with torch.no_grad():
        jac = t.jacobian(coords.detach())
    assert jac.shape == (2, 4, 2, 2)


def test_equivariance_losses_vanish_on_consistent_keypoints():
    t = random_transform()
    kp_t = Keypoints(torch.rand(2, 5, 2) * 1.6 - 0.8, torch.eye(2).expand(2, 5, 2, 2) + 0.1 * torch.randn(2, 5, 2, 2))
    kp_d = Keypoints(t.warp_coordinates(kp_t.value), t.jacobian(kp_t.value) @ kp_t.jacobian)
    assert equivariance_value_loss(kp_d, kp_t, t).item() == pytest.approx(0, abs=1e-6)
    assert equivariance_jacobian_loss(kp_d, kp_t, t).item() == pytest.approx(0, abs=1e-5)


def test_equivariance_losses_known_values():
    t = identity_transform(batch=1)
    value = torch.rand(1, 3, 2)
    kp_d = Keypoints(value + 0.1, torch.eye(2).expand(1, 3, 2, 2))
    kp_t = Keypoints(value, 2 * torch.eye(2).expand(1, 3, 2, 2))
    torch.testing.assert_close(equivariance_value_loss(kp_d, kp_t, t), torch.tensor(0.1))
    # |I - I⁻¹·I·2I| = |−I|: two ones out of four entries
    torch.testing.assert_close(equivariance_jacobian_loss(kp_d, kp_t, t), torch.tensor(0.5))


def test_equivariance_gradients_reach_both_keypoint_sets():
    t = random_transform()
    def leaf_keypoints():
        jacobian = torch.eye(2) + 0.1 * torch.randn(2, 4, 2, 2)
        return Keypoints(torch.rand(2, 4, 2).requires_grad_(True), jacobian.requires_grad_(True))

    kp_d, kp_t = leaf_keypoints(), leaf_keypoints()
    (equivariance_value_loss(kp_d, kp_t, t) + equivariance_jacobian_loss(kp_d, kp_t, t)).backward()
    for tensor in (kp_d.value, kp_d.jacobian, kp_t.value, kp_t.jacobian):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


def test_bad_inputs():
    t = identity_transform(batch=2)
    with pytest.raises(ValueError):
        t.warp_coordinates(torch.rand(3, 4, 2))
    with pytest.raises(ValueError):
        t.transform_frame(torch.rand(3, 3, 8, 8))
    with pytest.raises(ValueError):
        RandomTransform.from_parameters(torch.rand(2, 3, 3))
    with pytest.raises(ValueError):
        RandomTransform.from_parameters(torch.rand(2, 2, 3), torch.rand(4, 2), None)
    with pytest.raises(ValueError):
        equivariance_jacobian_loss(Keypoints(torch.rand(2, 3, 2)), Keypoints(torch.rand(2, 3, 2)), t)
