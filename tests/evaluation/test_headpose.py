import functools

import matplotlib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from skimage import data, io
from skimage.transform import ProjectiveTransform, resize, warp

from dagan.errors import DaganError
from dagan.evaluation.headpose import (
    LANDMARK_INDICES,
    MODEL_POINTS,
    angle_difference,
    head_pose,
    pose_error,
)
from dagan.evaluation.landmarks import detect_landmarks


def synthetic_landmarks(yaw, pitch, roll, size=(256, 256), depth=2000.0) -> np.ndarray:
    """68×2 landmarks whose six PnP points are the exact projection of the model at a known pose."""
    height, width = size
    rot = Rotation.from_euler("YXZ", [-yaw, -pitch, roll], degrees=True)
    cam = rot.apply(MODEL_POINTS) + [10.0, -20.0, depth]  # 6×3
    uv = width * cam[:, :2] / cam[:, 2:] + [width / 2, height / 2]
    points = np.full((68, 2), 128.0)
    points[list(LANDMARK_INDICES)] = uv
    return points


@functools.cache
def astronaut() -> np.ndarray:
    return resize(data.astronaut()[20:260, 100:340], (256, 256), anti_aliasing=True)


@functools.cache
def grace_hopper() -> np.ndarray:
    path = matplotlib.get_data_path() + "/sample_data/grace_hopper.jpg"
    return resize(io.imread(path), (256, 256), anti_aliasing=True)


def turned(image: np.ndarray, shrink: float = 0.7) -> np.ndarray:
    """Warp so the image-right side recedes (a plane turned about the vertical axis): nose → right."""
    src = np.array([[0, 0], [255, 0], [255, 255], [0, 255]], float)
    dst = np.array([[0, 0], [255 * shrink, 40], [255 * shrink, 215], [0, 255]], float)
    if hasattr(ProjectiveTransform, "from_estimate"):
        tform = ProjectiveTransform.from_estimate(dst, src)
    else:  # scikit-image < 0.26
        tform = ProjectiveTransform()
        tform.estimate(dst, src)
    return warp(image, tform, mode="edge")


@pytest.mark.parametrize("pose", [(0, 0, 0), (20, 0, 0), (0, 15, 0), (0, 0, 10), (30, -10, 5), (-40, 12, -8)])
def test_recovers_synthetic_pose(pose):
    got = head_pose(synthetic_landmarks(*pose))
    assert got.as_array() == pytest.approx(np.array(pose, float), abs=1e-3)


def test_non_square_image_uses_width_as_focal_length():
    pose = (25.0, -5.0, 3.0)
    got = head_pose(synthetic_landmarks(*pose, size=(200, 320)), image_size=(200, 320))
    assert got.as_array() == pytest.approx(np.array(pose), abs=1e-3)


def test_sign_conventions():
    # yaw > 0: nose tip to the right of the eye-corner midpoint; pitch > 0: nose tip moves up.
    right = synthetic_landmarks(20, 0, 0)
    assert right[30, 0] > right[[36, 45], 0].mean()
    frontal = synthetic_landmarks(0, 0, 0)
    up = synthetic_landmarks(0, 15, 0)
    assert up[30, 1] - up[[36, 45], 1].mean() < frontal[30, 1] - frontal[[36, 45], 1].mean()
    # roll > 0: clockwise in the image (y down), so the image-right eye corner is lower.
    tilted = synthetic_landmarks(0, 0, 10)
    assert tilted[45, 1] > tilted[36, 1]


def test_pose_error():
    a = synthetic_landmarks(10, 0, 0)
    assert pose_error(a, a) == pytest.approx(0.0, abs=1e-6)
    b = synthetic_landmarks(0, 0, 0)
    assert pose_error(a, b) == pytest.approx(10.0 / 3.0, abs=1e-3)
    assert angle_difference(179.0, -179.0) == pytest.approx(2.0)
    assert angle_difference(-90.0, 90.0) == pytest.approx(180.0)


def test_bad_input():
    with pytest.raises(DaganError, match="68×2"):
        head_pose(np.zeros((5, 2)))


def test_frontal_faces_have_small_yaw():
    for image in (astronaut(), grace_hopper()):
        points = detect_landmarks(image)
        assert points is not None
        assert abs(head_pose(points).yaw) < 10.0


def test_flipped_image_has_opposite_yaw():
    image = turned(astronaut())
    points = detect_landmarks(image)
    flipped = detect_landmarks(np.ascontiguousarray(image[:, ::-1]))
    assert points is not None and flipped is not None
    yaw, yaw_flipped = head_pose(points).yaw, head_pose(flipped).yaw
    assert yaw > 8.0 and yaw_flipped < -8.0
    assert pose_error(points, flipped) > 5.0
