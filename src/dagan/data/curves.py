"""2-D polyline and mesh helpers for the synthetic heads (numpy only): resampling and distances
of polylines, outline normals, de-duplication of control points, vertex normals."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["smoothstep", "resample_closed", "densify", "segment_distance", "interp_curve", "dedupe", "outline_normals",
           "vertex_normals"]


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def resample_closed(points: np.ndarray, values: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points of a closed polygon at equal arc-length steps of about `spacing`, starting at
    points[0], with a per-point value interpolated along the way."""
    pts = np.vstack([points, points[:1]])
    vals = np.append(values, values[0])
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    n = max(int(round(cum[-1] / spacing)), 3)
    s = np.linspace(0.0, cum[-1], n, endpoint=False)
    out = np.stack([np.interp(s, cum, pts[:, 0]), np.interp(s, cum, pts[:, 1])], axis=1)
    return out, np.interp(s, cum, vals)


def densify(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points strictly between consecutive points of a polyline, at most `spacing` apart."""
    out = []
    for a, b in zip(points[:-1], points[1:]):
        n = max(int(math.ceil(np.linalg.norm(b - a) / spacing)), 1)
        for k in range(1, n):
            out.append(a + (b - a) * k / n)
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def segment_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance of N×2 points to a polyline (M×2)."""
    a, b = polyline[:-1], polyline[1:]  # S×2
    ab = b - a
    t = ((points[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)[None]
    proj = a[None] + np.clip(t, 0.0, 1.0)[..., None] * ab[None]  # N×S×2
    return np.linalg.norm(points[:, None] - proj, axis=-1).min(1)


def interp_curve(x: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """y of a curve given by points sorted along x, evaluated at x (held constant beyond the ends)."""
    order = np.argsort(curve[:, 0], kind="stable")
    return np.interp(x, curve[order, 0], curve[order, 1])


def dedupe(xy: np.ndarray, z: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge control points closer than `tol` (their z averaged) so the spline system stays regular."""
    tree = cKDTree(xy)
    groups = tree.query_ball_point(xy, tol)
    seen = np.zeros(len(xy), dtype=bool)
    out_xy, out_z = [], []
    for i, g in enumerate(groups):
        if seen[i]:
            continue
        g = [j for j in g if not seen[j]]
        seen[g] = True
        out_xy.append(xy[g].mean(0))
        out_z.append(z[g].mean())
    return np.array(out_xy), np.array(out_z)


def outline_normals(outline: np.ndarray) -> np.ndarray:
    """Unit outward normals of a closed polygon's vertices (smoothed over neighbours)."""
    tangent = np.roll(outline, -1, axis=0) - np.roll(outline, 1, axis=0)
    for _ in range(3):
        tangent = tangent + 0.5 * (np.roll(tangent, 1, axis=0) + np.roll(tangent, -1, axis=0))
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    x, y = outline[:, 0], outline[:, 1]
    signed_area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    return normal if signed_area > 0 else -normal  # y points down: clockwise on screen is > 0


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, oriented towards the camera on the face (−z)."""
    v = vertices[faces]  # F×3×3
    fn = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    if n[:68, 2].mean() > 0:
        n = -n
    return n
