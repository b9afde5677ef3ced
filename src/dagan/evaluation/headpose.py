"""Head pose (yaw, pitch, roll in degrees) from 68 facial landmarks by perspective-n-point fitting.

A generic rigid 3-D face (`MODEL_POINTS`, six points, arbitrary units ≈ mm) is posed so that its
perspective projection matches six of the 68 landmarks (`LANDMARK_INDICES`). The camera is a
pinhole with focal length = image width (pixels), principal point = image centre, no distortion.
The fit is a Levenberg–Marquardt least-squares solve over a rotation vector and a translation
(`scipy.optimize.least_squares`), started from three yaw guesses; OpenCV's `solvePnP` would do the
same job but is not a dependency.

Frames: the camera looks along +z, x points to image right, y to image down. The model is written
in that frame for a face looking straight into the camera (nose tip nearest the camera, at the
origin). The rotation R (model → camera) is split as intrinsic y-x-z Euler angles
R = R_y(a)·R_x(b)·R_z(c), reported with these signs:

- yaw = −a: > 0 when the nose points towards image right;
- pitch = −b: > 0 when the nose points up (chin raised);
- roll = c: > 0 when the face is turned clockwise as seen in the image.

A horizontally mirrored image therefore has opposite yaw and roll and the same pitch.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from dagan.errors import DaganError

# 0-based iBUG-68 indices: nose tip, chin, outer corner of the eye on image left (subject's right),
# outer corner of the eye on image right, mouth corner on image left, mouth corner on image right.
LANDMARK_INDICES = (30, 8, 36, 45, 48, 54)

# The widely used generic face model (nose tip at the origin), here in camera axes
# (x right, y down, z away from the camera) for a frontal face.
MODEL_POINTS = np.array(
    [
        [0.0, 0.0, 0.0],  # nose tip
        [0.0, 330.0, 65.0],  # chin
        [-225.0, -170.0, 135.0],  # eye outer corner, image left
        [225.0, -170.0, 135.0],  # eye outer corner, image right
        [-150.0, 150.0, 125.0],  # mouth corner, image left
        [150.0, 150.0, 125.0],  # mouth corner, image right
    ]
)


@dataclass(frozen=True)
class HeadPose:
    """Head orientation in degrees (sign conventions in the module docstring)."""

    yaw: float
    pitch: float
    roll: float

    def as_array(self) -> np.ndarray:
        """(3,) array [yaw, pitch, roll]."""
        return np.array([self.yaw, self.pitch, self.roll])


def _image_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) from an int (square) or an (H, W) pair."""
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    height, width = image_size
    return int(height), int(width)


def _project(points: np.ndarray, rotvec: np.ndarray, t: np.ndarray, focal: float, center: np.ndarray):
    """N×3 model points → N×2 pixel coordinates under rotation vector `rotvec` and translation `t`."""
    cam = Rotation.from_rotvec(rotvec).apply(points) + t  # N×3, camera frame
    return focal * cam[:, :2] / cam[:, 2:3] + center


def solve_pnp(
    image_points: np.ndarray, model_points: np.ndarray, focal: float, center: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation matrix (3×3, model → camera) and translation (3,) that best project N×3 model
    points onto N×2 image points, in the least-squares sense (N ≥ 4)."""
    image_points = np.asarray(image_points, dtype=np.float64)
    model_points = np.asarray(model_points, dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)
    # Weak-perspective start: depth from the ratio of model spread to image spread.
    img_spread = np.sqrt(((image_points - image_points.mean(0)) ** 2).sum(1).mean())
    mod_spread = np.sqrt(((model_points[:, :2] - model_points[:, :2].mean(0)) ** 2).sum(1).mean())
    depth = focal * mod_spread / max(img_spread, 1e-6)
    offset = (image_points.mean(0) - center) * depth / focal
    t0 = np.array([offset[0], offset[1], depth]) - model_points.mean(0)

    def residuals(params):
        return (_project(model_points, params[:3], params[3:], focal, center) - image_points).ravel()

    best = None
    for yaw0 in (-45.0, 0.0, 45.0):
        start = np.concatenate([Rotation.from_euler("y", yaw0, degrees=True).as_rotvec(), t0])
        fit = least_squares(residuals, start, method="lm")
        if fit.x[5] > 0 and (best is None or fit.cost < best.cost):
            best = fit
    if best is None:
        raise DaganError("head pose fit failed: no solution places the face in front of the camera")
    return Rotation.from_rotvec(best.x[:3]).as_matrix(), best.x[3:]


def head_pose(landmarks: np.ndarray, image_size: int | tuple[int, int] = 256) -> HeadPose:
    """Yaw, pitch, roll (degrees) of a face from its 68×2 (x, y) pixel landmarks.

    image_size: the size of the image the landmarks are in, an int (square) or (H, W); it fixes the
    camera (focal length = width, principal point = centre).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise DaganError(f"head pose needs 68×2 landmarks, got shape {landmarks.shape}")
    height, width = _image_size(image_size)
    rot, _ = solve_pnp(
        landmarks[list(LANDMARK_INDICES)], MODEL_POINTS, float(width), np.array([width / 2.0, height / 2.0])
    )
    a, b, c = Rotation.from_matrix(rot).as_euler("YXZ", degrees=True)
    return HeadPose(yaw=float(-a), pitch=float(-b), roll=float(c))


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| in degrees, wrapped into [0, 180]."""
    diff = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return np.abs(diff)


def pose_error(
    pred_landmarks: np.ndarray, target_landmarks: np.ndarray, image_size: int | tuple[int, int] = 256
) -> float:
    """Head-pose error in degrees: mean over (yaw, pitch, roll) of the absolute angle difference
    between the poses fitted to two 68×2 landmark sets taken at the same image size."""
    pred = head_pose(pred_landmarks, image_size).as_array()
    target = head_pose(target_landmarks, image_size).as_array()
    return float(angle_difference(pred, target).mean())
