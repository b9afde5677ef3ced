import pytest
import torch

from dagan.geometry.keypoints import Keypoints
from dagan.losses.keypoint import keypoint_distance_loss

# (0, 0) and (0.1, 0) are closer than 0.2; (0.5, 0.5) is far from both
CLOSE = torch.tensor([[[0.0, 0.0], [0.1, 0.0], [0.5, 0.5]]])
FAR = torch.tensor([[[-0.5, -0.5], [0.5, -0.5], [0.0, 0.5]]])


def test_original_exact_value():
    # 2 ordered close pairs · 2 / (1·3·3) for the source; the driving keypoints are all far apart
    value = keypoint_distance_loss(Keypoints(CLOSE), Keypoints(FAR), mode="original")
    assert value.item() == pytest.approx(4 / 9, abs=1e-7)
    both = keypoint_distance_loss(CLOSE, CLOSE, mode="original")
    assert both.item() == pytest.approx(8 / 9, abs=1e-7)
    assert keypoint_distance_loss(FAR, FAR, mode="original").item() == 0


def test_hinge_value():
    # 2 ordered pairs · 2·relu(0.2 − 0.1)/0.2 / 9
    value = keypoint_distance_loss(CLOSE, FAR, mode="hinge")
    assert value.item() == pytest.approx(2 / 9, abs=1e-6)
    assert keypoint_distance_loss(FAR, FAR).item() == 0
    # coincident keypoints: the hinge reaches the original's value (up to the 1e-8 under the root)
    same = torch.zeros(1, 2, 2)
    original = keypoint_distance_loss(same, FAR[:, :2], mode="original")
    hinge = keypoint_distance_loss(same, FAR[:, :2], mode="hinge")
    assert original.item() == pytest.approx(1.0)
    assert hinge.item() == pytest.approx(1.0, abs=1e-3)
    assert hinge.item() <= original.item()


def test_threshold():
    assert keypoint_distance_loss(CLOSE, FAR, threshold=0.05, mode="original").item() == 0
    assert keypoint_distance_loss(CLOSE, FAR, threshold=0.05, mode="hinge").item() == 0


def test_original_has_no_gradient_hinge_pushes_apart():
    source = CLOSE.clone().requires_grad_(True)
    keypoint_distance_loss(source, FAR, mode="original").backward()
    assert source.grad.abs().sum() == 0

    source = CLOSE.clone().requires_grad_(True)
    keypoint_distance_loss(source, FAR, mode="hinge").backward()
    grad = source.grad[0]
    assert grad.abs().sum() > 0
    # gradient descent moves keypoint 0 left (−x) and keypoint 1 right (+x); keypoint 2 is untouched
    assert grad[0, 0] > 0 and grad[1, 0] < 0
    torch.testing.assert_close(grad[2], torch.zeros(2))
    assert torch.isfinite(grad).all()


def test_hinge_gradient_finite_for_coincident_keypoints():
    source = torch.zeros(2, 3, 2, requires_grad=True)
    keypoint_distance_loss(source, source).backward()
    assert torch.isfinite(source.grad).all()


def test_bad_inputs():
    with pytest.raises(ValueError):
        keypoint_distance_loss(CLOSE, FAR, mode="sign")
    with pytest.raises(ValueError):
        keypoint_distance_loss(CLOSE, FAR, threshold=0)
    with pytest.raises(ValueError):
        keypoint_distance_loss(CLOSE[0], FAR)
