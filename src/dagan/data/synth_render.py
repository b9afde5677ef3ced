"""A textured 3-D head from one photo, posed and rendered with a z-buffer (numpy only).

This is the renderer behind `dagan.data.synth`. A photo with its 68 iBUG landmarks becomes a
triangle mesh (`HeadModel`) that can be rotated, translated, and given an open mouth or closed
eyes, then rendered in perspective with exact ground truth (per-pixel depth, face mask, projected
landmarks).

The mesh comes from `dagan.data.head_mesh.build_head` (its docstring describes the geometry and
the expressions); the camera and rasteriser from `dagan.data.raster`, whose docstring gives the
pose and pixel conventions.

The texture is the photo itself (after the `Appearance` colour changes); shading is the photo's
own, times a relative Lambert factor (shading with the turned normals ÷ shading with the frontal
ones), so turning away from the light darkens the face a little.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dagan.data.curves import smoothstep
from dagan.data.head_mesh import HeadModel
from dagan.data.raster import pose_matrix, project, rasterize

__all__ = ["NECK_FOLLOW", "Render", "render_head"]

NECK_FOLLOW = 0.35  # the neck turns this fraction of the head's rotation
_LIGHT = np.array([-0.35, -0.45, -1.0]) / np.linalg.norm([-0.35, -0.45, -1.0])  # towards the light


@dataclass(frozen=True)
class Render:
    """One rendered frame and its ground truth.

    Attributes:
        image: H×W×3 uint8 RGB (supersampled, so edges are anti-aliased).
        depth: H×W float32 camera-space z (metres) of the nearest surface (head or neck) at each
            pixel centre; 0 where the pixel centre sees the background.
        mask: H×W bool, the pixel centre sees the head (face, hair, sides of the head; not the
            neck). Every mask pixel has depth > 0.
        landmarks: 68×2 float32 projected 3-D landmarks, pixel coordinates (corner convention).
        landmarks3d: 68×3 float32 landmark positions in camera space (metres).
        landmarks_visible: 68 bool, the landmark is inside the image and no part of the mesh
            lies more than 2 mm in front of it along its line of sight (exact ray test).
        face_id: H×W int32 index of the visible triangle at each pixel centre, −1 for background.
    """

    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    landmarks: np.ndarray
    landmarks3d: np.ndarray
    landmarks_visible: np.ndarray
    face_id: np.ndarray


# --------------------------------------------------------------------------------------------
# Rendering


def _bilinear(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Sample an Ht×Wt×C texture at N×2 (u, v) pixel coordinates (corner convention, clamped)."""
    h, w = texture.shape[:2]
    x = np.clip(uv[:, 0] - 0.5, 0.0, w - 1.0)
    y = np.clip(uv[:, 1] - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), w - 2 if w > 1 else 0)
    y0 = np.minimum(np.floor(y).astype(np.int64), h - 2 if h > 1 else 0)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bot = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def _nearest_depth(points: np.ndarray, xy: np.ndarray, z: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Depth of the nearest triangle under each of P×2 pixel positions (inf where none)."""
    tx, ty = xy[faces, 0], xy[faces, 1]  # F×3
    out = np.full(len(points), np.inf)
    hit_p, hit_f = np.nonzero(
        (points[:, None, 0] >= tx.min(1)[None])
        & (points[:, None, 0] <= tx.max(1)[None])
        & (points[:, None, 1] >= ty.min(1)[None])
        & (points[:, None, 1] <= ty.max(1)[None])
    )  # candidate (point, face) pairs from bounding boxes
    if len(hit_p) == 0:
        return out
    x, y = points[hit_p, 0], points[hit_p, 1]
    fx, fy, fz = tx[hit_f], ty[hit_f], z[faces[hit_f]]
    area2 = (fx[:, 1] - fx[:, 0]) * (fy[:, 2] - fy[:, 0]) - (fx[:, 2] - fx[:, 0]) * (fy[:, 1] - fy[:, 0])
    ok = np.abs(area2) > 1e-12
    safe = np.where(ok, area2, 1.0)
    b1 = ((x - fx[:, 0]) * (fy[:, 2] - fy[:, 0]) - (fx[:, 2] - fx[:, 0]) * (y - fy[:, 0])) / safe
    b2 = ((fx[:, 1] - fx[:, 0]) * (y - fy[:, 0]) - (x - fx[:, 0]) * (fy[:, 1] - fy[:, 0])) / safe
    b0 = 1.0 - b1 - b2
    tol = -1e-9
    ok &= (b0 >= tol) & (b1 >= tol) & (b2 >= tol)
    zc = 1.0 / (b0 / fz[:, 0] + b1 / fz[:, 1] + b2 / fz[:, 2])
    np.minimum.at(out, hit_p[ok], zc[ok])
    return out


def _shaded_image(head: HeadModel, xy: np.ndarray, cam: np.ndarray, shade: np.ndarray, size: int, ss: int,
                  background: np.ndarray | None) -> np.ndarray:
    """size×size×3 uint8: the textured, shaded head (mouth interior coloured) over the background,
    rendered at `ss`² samples per pixel and box-filtered."""
    hs = size * ss
    face_ss, w_ss, _ = rasterize(xy * ss, cam[:, 2], head.faces, hs, hs)
    if background is None:
        image = np.full((hs, hs, 3), 0.5, dtype=np.float64)
    else:
        image = np.array(background, dtype=np.float64, copy=True)
        if image.shape != (hs, hs, 3):
            raise ValueError(f"background must be {hs}×{hs}×3 for size {size} × supersample {ss}, got {image.shape}")
    hit = np.flatnonzero(face_ss.ravel() >= 0)
    fid = face_ss.ravel()[hit]
    wts = w_ss.reshape(-1, 3)[hit].astype(np.float64)  # M×3
    v0, v1, v2 = (head.faces[fid, k] for k in range(3))
    w0, w1, w2 = (wts[:, k : k + 1] for k in range(3))

    def interp(attr: np.ndarray) -> np.ndarray:  # per-vertex N×C → per-sample M×C
        return attr[v0] * w0 + attr[v1] * w1 + attr[v2] * w2

    color = _bilinear(head.texture, interp(head.uv))
    inner = head.interior[fid]
    if inner.any():
        s = interp(head.lip_side[:, None])[inner]
        t = smoothstep((s - 0.3) / 0.3)
        color[inner] = head.mouth_colors[0] * (1 - t) + head.mouth_colors[1] * t
    color *= interp(shade[:, None])
    image.reshape(-1, 3)[hit] = color
    image = sum(image[i::ss, j::ss] for i in range(ss) for j in range(ss)) / (ss * ss)  # box filter
    image_u8 = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return image_u8


def render_head(
    head: HeadModel,
    pose: np.ndarray,
    intrinsics: np.ndarray,
    size: int,
    *,
    mouth_open: float = 0.0,
    eyes_closed: float = 0.0,
    background: np.ndarray | None = None,
    supersample: int = 2,
) -> Render:
    """Render a posed head over a background, with exact depth, mask and landmarks.

    Args:
        head: from `build_head`.
        pose: (yaw, pitch, roll, tx, ty, tz): radians, and the pivot's camera position (metres).
        intrinsics: 3×3 for the size×size output (`intrinsics_matrix`).
        size: output side in pixels.
        mouth_open, eyes_closed: expression amounts in [0, 1].
        background: (size·supersample)²×3 float in [0, 1], or None for mid grey.
        supersample: the image is rendered at this many samples per pixel side and box-filtered;
            depth, mask and face ids are sampled once, at pixel centres.

    Returns:
        `Render`.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (6,):
        raise ValueError(f"pose must be (yaw, pitch, roll, tx, ty, tz), got shape {pose.shape}")
    ss = int(supersample)
    if ss < 1:
        raise ValueError(f"supersample must be ≥ 1, got {supersample}")
    rot = pose_matrix(*pose[:3])
    rot_neck = pose_matrix(*(pose[:3] * NECK_FOLLOW))
    neck = head.neck[:, None]
    verts = head.posed_vertices(mouth_open, eyes_closed)
    cam = np.where(neck, verts @ rot_neck.T, verts @ rot.T) + pose[3:]  # N×3
    xy = project(cam, intrinsics)  # N×2

    # Relative shading: Lambert with turned normals over Lambert with frontal normals.
    ambient, diffuse = 0.45, 0.55
    turned = np.where(neck, head.normals @ rot_neck.T, head.normals @ rot.T)
    lam0 = ambient + diffuse * np.clip(head.normals @ _LIGHT, 0.0, None)
    lam1 = ambient + diffuse * np.clip(turned @ _LIGHT, 0.0, None)
    shade = np.clip(lam1 / lam0, 0.5, 1.6)

    image_u8 = _shaded_image(head, xy, cam, shade, size, ss, background)

    face_id, _, depth = rasterize(xy, cam[:, 2], head.faces, size, size)
    head_face = ~head.neck[head.faces].all(1)
    mask = (face_id >= 0) & head_face[np.maximum(face_id, 0)]
    lm3 = cam[head.landmark_ids]
    lm2 = xy[head.landmark_ids]
    inside = (lm2 >= 0).all(1) & (lm2 < size).all(1)
    visible = inside & (lm3[:, 2] <= _nearest_depth(lm2, xy, cam[:, 2], head.faces) + 0.002)
    return Render(
        image=image_u8,
        depth=depth,
        mask=mask,
        landmarks=lm2.astype(np.float32),
        landmarks3d=lm3.astype(np.float32),
        landmarks_visible=visible,
        face_id=face_id,
    )
