"""Camera and z-buffer for the synthetic heads of `dagan.data.synth` (numpy only): head pose
rotations, pinhole intrinsics, projection, and a triangle rasteriser with perspective-correct
barycentric weights.

Conventions (the same as `dagan.evaluation.headpose`): camera looking along +z, x to image right,
y to image down; pixel coordinates have (0, 0) at the top-left corner of the top-left pixel, so
pixel (i, j) has its centre at (j + 0.5, i + 0.5) (dlib's integer landmarks are pixel indices:
add 0.5). Head rotation R = R_y(−yaw)·R_x(−pitch)·R_z(roll): yaw > 0 turns the nose to image
right, pitch > 0 raises the nose, roll > 0 turns the face clockwise in the image. A vertex at
canonical position v (metres, relative to the head pivot, frontal) is at R·v + t in the camera.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["pose_matrix", "intrinsics_matrix", "project", "rasterize"]


# --------------------------------------------------------------------------------------------
# Camera


def pose_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3×3 rotation (head → camera) for yaw, pitch, roll in radians (signs in the module docstring)."""
    a, b, c = -float(yaw), -float(pitch), float(roll)
    ry = np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(b), -math.sin(b)], [0.0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0.0], [math.sin(c), math.cos(c), 0.0], [0.0, 0.0, 1.0]])
    return ry @ rx @ rz


def intrinsics_matrix(size: int, focal: float = 2.5) -> np.ndarray:
    """3×3 pinhole intrinsics of a size×size image: focal length `focal` × size pixels (2.5 ≈ a
    23° field of view, a webcam-to-portrait framing), principal point at the image centre."""
    f = float(focal) * size
    return np.array([[f, 0.0, size / 2.0], [0.0, f, size / 2.0], [0.0, 0.0, 1.0]])


def project(points: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """N×3 camera-space points → N×2 pixel coordinates (corner convention)."""
    p = np.asarray(points, dtype=np.float64)
    k = np.asarray(intrinsics, dtype=np.float64)
    return np.stack([k[0, 0] * p[:, 0] / p[:, 2] + k[0, 2], k[1, 1] * p[:, 1] / p[:, 2] + k[1, 2]], axis=1)


# --------------------------------------------------------------------------------------------
# Rasterisation


def rasterize(
    xy: np.ndarray, z: np.ndarray, faces: np.ndarray, width: int, height: int, *, chunk: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of triangles at pixel centres, vectorised over all triangles.

    Every triangle contributes the pixel centres of its bounding box that pass the edge tests;
    the nearest candidate per pixel wins (ties: the lower face index). Triangles are two-sided;
    triangles with a vertex at z ≤ 1e-6 are dropped (no near-plane clipping).

    Args:
        xy: N×2 vertex positions in pixels (pixel (i, j) has its centre at (j + 0.5, i + 0.5)).
        z: N positive camera-space depths.
        faces: F×3 vertex indices.
        width, height: raster size.
        chunk: most candidate samples processed at once (bounds memory).

    Returns:
        face_id: H×W int32, the visible triangle or −1;
        weights: H×W×3 float32 perspective-correct barycentric weights of its three vertices;
        depth: H×W float32 interpolated z (0 where empty).
    """
    xy = np.asarray(xy, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    face_id = np.full(height * width, -1, dtype=np.int64)
    depth = np.full(height * width, np.inf)
    weights = np.zeros((height * width, 3))
    if len(faces) == 0:
        return _raster_outputs(face_id, weights, depth, height, width)

    tx, ty, tz = xy[faces, 0], xy[faces, 1], z[faces]  # F×3 each

    def lo(a):  # row-wise min/max of F×3 without a (slow) length-3 reduction
        return np.minimum(np.minimum(a[:, 0], a[:, 1]), a[:, 2])

    def hi(a):
        return np.maximum(np.maximum(a[:, 0], a[:, 1]), a[:, 2])

    j0 = np.maximum(np.ceil(lo(tx) - 0.5), 0).astype(np.int64)
    j1 = np.minimum(np.floor(hi(tx) - 0.5), width - 1).astype(np.int64)
    i0 = np.maximum(np.ceil(lo(ty) - 0.5), 0).astype(np.int64)
    i1 = np.minimum(np.floor(hi(ty) - 0.5), height - 1).astype(np.int64)
    # Edge functions: b_k(p) = (A_k·x + B_k·y + C_k) / area2 for the edge opposite vertex k.
    a_coef = np.stack([ty[:, 1] - ty[:, 2], ty[:, 2] - ty[:, 0], ty[:, 0] - ty[:, 1]], axis=1)  # F×3
    b_coef = np.stack([tx[:, 2] - tx[:, 1], tx[:, 0] - tx[:, 2], tx[:, 1] - tx[:, 0]], axis=1)
    c_coef = np.stack(
        [
            tx[:, 1] * ty[:, 2] - tx[:, 2] * ty[:, 1],
            tx[:, 2] * ty[:, 0] - tx[:, 0] * ty[:, 2],
            tx[:, 0] * ty[:, 1] - tx[:, 1] * ty[:, 0],
        ],
        axis=1,
    )
    area2 = a_coef[:, 0] * tx[:, 0] + b_coef[:, 0] * ty[:, 0] + c_coef[:, 0]  # twice the signed area
    nx, ny = j1 - j0 + 1, i1 - i0 + 1
    keep = (nx > 0) & (ny > 0) & (np.abs(area2) > 1e-12) & (lo(tz) > 1e-6)
    ids = np.flatnonzero(keep)
    counts = nx[ids] * ny[ids]
    # Chunks of whole triangles, each at most `chunk` candidates (a huge triangle is its own chunk).
    ends = np.cumsum(counts)
    start = 0
    while start < len(ids):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + chunk, side="right")), start + 1)
        _raster_chunk(
            ids[start:stop], counts[start:stop], j0, i0, nx,
            a_coef, b_coef, c_coef, area2, tz, width, face_id, depth, weights,
        )
        start = stop
    return _raster_outputs(face_id, weights, depth, height, width)


def _raster_outputs(face_id, weights, depth, height, width):
    depth_out = np.where(face_id >= 0, depth, 0.0).reshape(height, width).astype(np.float32)
    return face_id.reshape(height, width).astype(np.int32), weights.reshape(height, width, 3).astype(np.float32), depth_out


def _raster_chunk(ids, counts, j0, i0, nx, a_coef, b_coef, c_coef, area2, tz, width, face_id, depth, weights):
    total = int(counts.sum())
    f = np.repeat(ids, counts)  # candidate → face
    local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    nxf = nx[f]
    jx = j0[f] + local % nxf
    iy = i0[f] + local // nxf
    px, py = jx + 0.5, iy + 0.5
    inv_area = 1.0 / area2[f]
    b = [(a_coef[f, k] * px + b_coef[f, k] * py + c_coef[f, k]) * inv_area for k in range(3)]  # 3 × M
    inside = np.flatnonzero((b[0] >= -1e-9) & (b[1] >= -1e-9) & (b[2] >= -1e-9))
    f, pix = f[inside], iy[inside] * width + jx[inside]
    inv_z = [b[k][inside] / tz[f, k] for k in range(3)]  # perspective-correct: 1/z is affine
    zc = 1.0 / (inv_z[0] + inv_z[1] + inv_z[2])
    # Nearest per pixel: one stable sort on pixel + depth / (max depth) (ties: lower face index).
    key = pix + zc / (zc.max() * 1.000001 if len(zc) else 1.0)
    order = np.argsort(key, kind="stable")
    pix_s = pix[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = pix_s[1:] != pix_s[:-1]
    win = order[first]
    pix_w = pix[win]
    better = zc[win] < depth[pix_w]
    win, pix_w = win[better], pix_w[better]
    depth[pix_w] = zc[win]
    face_id[pix_w] = f[win]
    weights[pix_w] = np.stack([inv_z[k][win] for k in range(3)], axis=1) * zc[win][:, None]
