"""Coordinate grids, keypoint Gaussians, heatmap expectation, warping and keypoint normalisation."""

import math

import pytest
import torch

from dagan.geometry import (
    Keypoints,
    convex_hull_area,
    heatmap_to_keypoints,
    keypoint_gaussians,
    make_coordinate_grid,
    normalize_keypoints,
    warp,
)
from dagan.nn import AntiAliasDownsample, gaussian_kernel


def test_grid_corners_and_order():
    g = make_coordinate_grid(3, 5)
    assert g.shape == (3, 5, 2)
    assert g[0, 0].tolist() == [-1, -1] and g[-1, -1].tolist() == [1, 1]
    assert g[0, 4].tolist() == [1, -1]  # last dim is (x, y)
    assert g[1, 2].tolist() == [0, 0]


def test_gaussian_peak_and_width():
    kp = torch.tensor([[[0.0, 0.0]]])
    g = keypoint_gaussians(kp, 5, 5, 0.01)
    assert g.shape == (1, 1, 5, 5)
    assert float(g[0, 0, 2, 2]) == 1.0
    assert math.isclose(float(g[0, 0, 2, 3]), math.exp(-0.5 * 0.25 / 0.01), rel_tol=1e-6)


def test_heatmap_expectation_of_a_delta():
    heat = torch.zeros(1, 1, 5, 5)
    heat[0, 0, 4, 1] = 1
    assert heatmap_to_keypoints(heat).tolist() == [[[-0.5, 1.0]]]


def test_warp_identity_and_gradcheck():
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64)
    # align_corners=False identity grid
    lin = (torch.arange(6, dtype=torch.float64) * 2 + 1) / 6 - 1
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    ident = torch.stack([xx, yy], -1)[None]
    torch.testing.assert_close(warp(x, ident), x)
    grid = (ident * 0.9).requires_grad_()
    assert torch.autograd.gradcheck(lambda g: warp(x, g), (grid,))
    # a deformation at a coarser size is resized bilinearly (align_corners=False, borders clamped):
    # the 3×3 identity samples at lin[0, 2, 4] become, at 6×6, input pixel positions
    # p = (0, 0.5, 1.5, 2.5, 3.5, 4) along each axis (derived by hand), i.e. out = A·x·Aᵀ
    coarse = warp(x, ident[:, ::2, ::2])
    a = torch.zeros(6, 6, dtype=torch.float64)
    for row, p in enumerate((0, 0.5, 1.5, 2.5, 3.5, 4)):
        lo = math.floor(p)
        a[row, lo] += 1 - (p - lo)
        if p > lo:
            a[row, lo + 1] += p - lo
    torch.testing.assert_close(coarse, a @ x @ a.T)


def test_keypoint_gaussians_gradcheck():
    kp = torch.rand(1, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: keypoint_gaussians(k, 4, 4, 0.1), (kp,))


def test_convex_hull_area():
    square = torch.tensor([[0.0, 0.0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]])
    assert math.isclose(convex_hull_area(square), 1.0)
    assert convex_hull_area(torch.zeros(4, 2)) == 0.0  # degenerate: no error


def _kp(value, jac=None):
    return Keypoints(torch.tensor([value], dtype=torch.float32),
                     None if jac is None else torch.tensor([jac], dtype=torch.float32))


def test_normalize_relative_scale_and_jacobian():
    eye = [[1.0, 0.0], [0.0, 1.0]]
    src = _kp([[0.0, 0.0], [2, 0], [0, 2]], [eye] * 3)  # area 2
    init = _kp([[0.0, 0.0], [1, 0], [0, 1]], [eye] * 3)  # area 0.5 → scale 2
    drv = _kp([[0.1, 0.0], [1.1, 0], [0.1, 1]], [[[2.0, 0], [0, 1]]] * 3)
    out = normalize_keypoints(src, drv, init, relative=True, adapt_movement_scale=True)
    torch.testing.assert_close(out.value, torch.tensor([[[0.2, 0.0], [2.2, 0], [0.2, 2]]]))
    torch.testing.assert_close(out.jacobian, drv.jacobian)
    no_scale = normalize_keypoints(src, drv, init, relative=True, adapt_movement_scale=False)
    torch.testing.assert_close(no_scale.value, torch.tensor([[[0.1, 0.0], [2.1, 0], [0.1, 2]]]))
    assert normalize_keypoints(src, drv, init, relative=False) is drv


@pytest.mark.parametrize("scale, size", [(0.25, 13), (0.5, 5), (0.125, 29)])
def test_antialias_kernel_and_downsample(scale, size):
    kernel, k = gaussian_kernel(scale)
    assert k == size and math.isclose(float(kernel.sum()), 1.0, rel_tol=1e-6)
    down = AntiAliasDownsample(3, scale)
    x = torch.ones(1, 3, 32, 32)
    y = down(x)
    assert y.shape == (1, 3, int(32 * scale), int(32 * scale))
    # constant image stays constant away from the zero padding
    c = y.shape[-1] // 2
    assert math.isclose(float(y[0, 0, c, c]), 1.0, rel_tol=1e-5)
    assert "kernel" in down.state_dict()
