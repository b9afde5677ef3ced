"""Pure tensor geometry: coordinate grids, keypoint heatmaps, warping and keypoint normalisation."""

from dagan.geometry.grid import heatmap_to_keypoints, keypoint_gaussians, make_coordinate_grid, warp
from dagan.geometry.keypoints import Keypoints, convex_hull_area, normalize_keypoints

__all__ = [
    "Keypoints",
    "convex_hull_area",
    "heatmap_to_keypoints",
    "keypoint_gaussians",
    "make_coordinate_grid",
    "normalize_keypoints",
    "warp",
]
