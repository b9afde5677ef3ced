"""A textured 3-D head mesh from one photo and its 68 iBUG landmarks (numpy only), for
`dagan.data.synth`: `build_head` makes the `HeadModel` that `dagan.data.synth_render` poses and renders.

Geometry of the head, in a face-aligned 2-D frame of the photo (x right, y down, in millimetres:
the photo is scaled so that the outer eye corners are 90 mm apart and rotated so they are level):

* a generic depth for each of the 68 landmarks (`LANDMARK_DEPTH_MM`, millimetres behind the nose
  tip), plus anchor points on the cheeks, the forehead/cranium (an ellipsoidal cap) and the head
  outline, are interpolated by a thin-plate spline into a smooth height field;
* the head outline is the jaw line (landmarks 3–13) closed over the top by a half-ellipse through
  the ears that reaches about 0.8 × (brow-to-chin) above the brows, so hair is part of the head;
  three rings of vertices beyond the outline curl the surface backwards (sides of the head, under
  the chin), so a turned head shows a side instead of a paper edge;
* a half-cylinder neck hangs behind the jaw and turns `NECK_FOLLOW` × as far as the head (it is
  drawn and has depth, but is not part of the head mask);
* vertices: a hexagonal grid (`grid_mm` spacing) inside the outline, the landmarks, dense samples
  along the inner lips and eyelids, the outline and the rings; Delaunay triangulation. The grid
  avoids the inner-lip line, and the triangulation is made with the mouth opened, so the
  triangles between the inner lips form the mouth interior: zero area when the mouth is closed
  and drawn dark (with a band of teeth under the upper lip) when the jaw drops;
* expressions are linear per-vertex displacement fields: `mouth_open` (jaw drop: the chin moves
  down and slightly back, the lower lip less and less towards the mouth corners, which stay) and
  `eyes_closed` (each upper eyelid slides down onto the lower one, pulling the skin below the brow
  with it).

Axes and units are those of `dagan.data.raster` (x right, y down, camera looking along +z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy.interpolate import RBFInterpolator
from scipy.spatial import Delaunay, cKDTree
from skimage.measure import points_in_poly

from dagan.data.curves import (
    dedupe,
    densify,
    interp_curve,
    outline_normals,
    resample_closed,
    segment_distance,
    smoothstep,
    vertex_normals,
)
from dagan.errors import DaganError

__all__ = ["LANDMARK_DEPTH_MM", "MIRROR_68", "Appearance", "HeadModel", "build_head"]

# Generic depth of the 68 iBUG landmarks in millimetres behind the nose tip, for a face whose
# outer eye corners are 90 mm apart (an average adult). Index order is iBUG's: 0–16 jaw (image
# left → right), 17–21 / 22–26 brows, 27–30 nose bridge, 31–35 nostrils, 36–41 / 42–47 eyes (image
# left / right), 48–59 outer lips, 60–67 inner lips.
LANDMARK_DEPTH_MM = np.array(
    [90, 86, 80, 72, 62, 50, 39, 30, 26, 30, 39, 50, 62, 72, 80, 86, 90]  # jaw
    + [50, 38, 30, 26, 25, 25, 26, 30, 38, 50]  # brows
    + [22, 15, 8, 0]  # nose bridge → tip
    + [17, 13, 12, 13, 17]  # nostrils
    + [44, 33, 31, 34, 32, 35]  # eye, image left (outer corner, upper ×2, inner corner, lower ×2)
    + [34, 31, 33, 44, 35, 32]  # eye, image right (inner corner, upper ×2, outer corner, lower ×2)
    + [32, 24, 19, 17, 19, 24, 32, 25, 21, 20, 21, 25]  # outer lips
    + [30, 21, 19, 21, 30, 22, 21, 22],  # inner lips
    dtype=np.float64,
)

# Index permutation that maps the landmarks of a horizontally mirrored face back to iBUG order.
MIRROR_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65],  # inner lips
    dtype=np.int64,
)

_EYE_DISTANCE_MM = 90.0  # outer eye corners
_INNER_UPPER = (60, 61, 62, 63, 64)  # inner lip, image left → right
_INNER_LOWER = (60, 67, 66, 65, 64)
_EYES = (  # (upper lid, lower lid, brow), each ordered image left → right
    ((36, 37, 38, 39), (36, 41, 40, 39), (17, 18, 19, 20, 21)),
    ((42, 43, 44, 45), (42, 47, 46, 45), (22, 23, 24, 25, 26)),
)
_JAW_DROP_MM = 18.0  # chin displacement at mouth_open = 1
_JAW_DIRECTION = np.array([0.0, 1.0, 0.3])  # down and slightly back
_TEETH_RGB = np.array([0.86, 0.82, 0.74])
_CAVITY_RGB = np.array([0.16, 0.05, 0.06])


@dataclass(frozen=True)
class Appearance:
    """Per-identity changes to a photo's face (the identity transform by default).

    Attributes:
        mirror: flip the photo horizontally (landmarks are re-ordered with `MIRROR_68`).
        hue: rotation of the chroma plane (YIQ), radians.
        saturation: chroma gain.
        brightness: luma gain (skin tone lighter > 1 > darker).
        contrast: luma contrast around the mean of the face.
        warmth: shift along YIQ's orange–blue axis (I), in [0, 1] RGB units.
        hair_rgb: None, or an RGB colour in [0, 1] tinting the hair region (keeps its shading).
        hair_strength: blend weight of the hair tint.
        aspect: horizontal stretch of the face (head width ÷ height relative to the photo).
        depth_scale: scale of the face relief (nose prominence, cheek curvature).
    """

    mirror: bool = False
    hue: float = 0.0
    saturation: float = 1.0
    brightness: float = 1.0
    contrast: float = 1.0
    warmth: float = 0.0
    hair_rgb: tuple[float, float, float] | None = None
    hair_strength: float = 0.8
    aspect: float = 1.0
    depth_scale: float = 1.0


@dataclass(frozen=True, eq=False)
class HeadModel:
    """A textured head mesh in its canonical (frontal) pose.

    Attributes:
        vertices: N×3 float64, metres, relative to the head pivot (a point behind the face at ear
            height, the centre of rotation), camera axes of a frontal pose.
        faces: F×3 int64 vertex indices.
        uv: N×2 float64 texture coordinates in `texture` pixels (corner convention).
        texture: Ht×Wt×3 float32 RGB in [0, 1].
        normals: N×3 float64 unit outward normals of the canonical mesh.
        mouth_disp: N×3 float64 vertex displacement (metres) at mouth_open = 1.
        blink_disp: N×3 float64 vertex displacement (metres) at eyes_closed = 1.
        interior: F bool, the triangles of the mouth interior (between the inner lips).
        lip_side: N float64, 0 on the upper inner lip, 1 on the lower (colours the interior).
        landmark_ids: 68 vertex indices of the iBUG landmarks.
        neck: N bool, vertices of the neck (they turn `NECK_FOLLOW` × as far as the head); the
            rest is the head (face, hair, sides).
        mouth_colors: 2×3 float32, teeth and cavity colours (after the appearance change).
        face_width: metres, x-extent of the 68 landmarks (for framing).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    texture: np.ndarray
    normals: np.ndarray
    mouth_disp: np.ndarray
    blink_disp: np.ndarray
    interior: np.ndarray
    lip_side: np.ndarray
    landmark_ids: np.ndarray
    neck: np.ndarray
    mouth_colors: np.ndarray
    face_width: float
    info: dict = field(default_factory=dict)

    def posed_vertices(self, mouth_open: float = 0.0, eyes_closed: float = 0.0) -> np.ndarray:
        """N×3 canonical vertices with the expression applied."""
        return self.vertices + float(mouth_open) * self.mouth_disp + float(eyes_closed) * self.blink_disp


# --------------------------------------------------------------------------------------------
# Head construction


def _color_transform(rgb: np.ndarray, app: Appearance, face_mean_luma: float) -> np.ndarray:
    """Apply the appearance's colour changes (YIQ space) to an ...×3 float array."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq = rgb @ to_yiq.T
    y = (yiq[..., 0] - face_mean_luma) * app.contrast + face_mean_luma
    y = y * app.brightness
    c, s = math.cos(app.hue), math.sin(app.hue)
    i = (c * yiq[..., 1] - s * yiq[..., 2]) * app.saturation + app.warmth
    q = (s * yiq[..., 1] + c * yiq[..., 2]) * app.saturation
    out = np.stack([y, i, q], axis=-1) @ np.linalg.inv(to_yiq).T
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True)
class _FaceFrame:
    """The photo's face in face-aligned millimetres, P = a_mat·(p − origin), and its proportions."""

    L: np.ndarray  # 68×2 landmarks, mm
    a_mat: np.ndarray  # 2×2 photo pixels → mm (roll undone, aspect applied)
    origin: np.ndarray  # the nose tip in photo pixels
    mm_per_px: float
    brow_y: float
    chin_y: float
    face_h: float  # chin below the brows
    center: np.ndarray  # between the ear ends of the jaw (landmarks 0, 16)
    half_w: float  # half-width of the head outline
    top_h: float  # height of the outline's top above `center`

    @property
    def a_inv(self) -> np.ndarray:
        return np.linalg.inv(self.a_mat)


def build_head(
    photo: np.ndarray,
    landmarks: np.ndarray,
    appearance: Appearance = Appearance(),
    *,
    grid_mm: float = 2.5,
    texture_px_per_mm: float | None = None,
) -> HeadModel:
    """Lift a photographed face to a textured 3-D head (construction in the module docstring).

    Args:
        photo: H×W×3 RGB, uint8 or float in [0, 1], a roughly frontal face.
        landmarks: 68×2 iBUG landmarks in `photo` pixels, corner convention (dlib's + 0.5).
        appearance: colour, mirroring and shape changes for a new identity.
        grid_mm: vertex spacing of the mesh in millimetres (at 2.5: ≈ 6000 head and 3000 neck
            vertices, 18000 triangles).
        texture_px_per_mm: if given, a photo sharper than 1.5 × this is downscaled (anti-aliased)
            to this resolution, so renders at that scale do not alias.

    Raises:
        ValueError: bad shapes; DaganError: degenerate landmarks (e.g. eyes on top of each other).
    """
    img, fr = _align_face(photo, landmarks, appearance)
    L, dscale = fr.L, appearance.depth_scale
    outline, outline_z = _head_outline(fr, grid_mm)
    spline = _depth_spline(fr, outline, outline_z, dscale)

    # Vertices: landmarks, dense lip/lid samples, outline, grid, and rings beyond the outline (the
    # head curls back; their 2-D positions serve the triangulation only).
    special, label, upper, lower, n_lips = _special_points(L, grid_mm)
    grid = _hex_grid(outline, special, upper, lower, grid_mm)
    normals2d = outline_normals(outline)
    rings = [outline + normals2d * (k * 0.9 * grid_mm) for k in (1, 2, 3)]
    flat = np.vstack([special, grid, outline] + rings)  # all 2-D parameter positions
    n_special, n_grid, n_out = len(special), len(grid), len(outline)
    n_core = n_special + n_grid + n_out
    labels = np.concatenate([label, np.zeros(len(flat) - n_special, np.int8)])

    # Expression fields (mm) on the 2-D positions (rings use their outline anchor).
    anchor = np.concatenate([np.arange(n_core), np.tile(np.arange(n_special + n_grid, n_core), 3)])
    at = flat[anchor]
    mouth_w = _jaw_weight(at, labels[anchor], L, lower, fr.chin_y)
    blink_dy = _blink_shift(at, L)

    faces, interior = _triangulate(flat, mouth_w, labels, n_core, n_out, n_lips)
    xyz = _lift(flat, spline(flat[:n_core]), outline, normals2d, n_core)

    # Neck: a vertical half-cylinder behind the jaw, textured by frontal projection of the photo.
    neck_xyz, neck_faces, neck_src = _neck(L, grid_mm, dscale)
    n_head = len(xyz)
    xyz = np.vstack([xyz, neck_xyz])
    faces = np.vstack([faces, neck_faces + n_head])
    interior = np.concatenate([interior, np.zeros(len(neck_faces), dtype=bool)])

    tex_src = flat.copy()
    for k in (1, 2, 3):
        tex_src[n_core + (k - 1) * n_out : n_core + k * n_out] = outline - normals2d * (0.6 * k * grid_mm)
    tex, uv, mouth_colors = _texture(img, np.vstack([tex_src, neck_src]), fr, appearance, texture_px_per_mm)

    # Canonical frame: metres relative to the pivot (ear height, ~95 mm behind the nose tip).
    pivot = np.array([0.5 * (L[27, 0] + L[8, 0]), 0.5 * (L[0, 1] + L[16, 1]), 95.0 * dscale])
    vertices = (xyz - pivot) * 1e-3
    neck = np.arange(len(vertices)) >= n_head
    mouth_disp = np.zeros_like(vertices)
    mouth_disp[:n_head] = mouth_w[:, None] * _JAW_DIRECTION[None] * (_JAW_DROP_MM * 1e-3)
    blink_disp = np.zeros_like(vertices)
    blink_disp[:n_head, 1] = blink_dy * 1e-3
    lip_side = np.zeros(len(vertices))
    lip_side[:n_head][labels == 2] = 1.0
    lip_side[[60, 64]] = 0.5
    normals = vertex_normals(vertices, faces)
    return HeadModel(
        vertices=vertices,
        faces=faces,
        uv=uv,
        texture=np.ascontiguousarray(tex, dtype=np.float32),
        normals=normals,
        mouth_disp=mouth_disp,
        blink_disp=blink_disp,
        interior=interior,
        lip_side=lip_side,
        landmark_ids=np.arange(68),
        neck=neck,
        mouth_colors=mouth_colors.astype(np.float32),
        face_width=float(np.ptp(L[:, 0])) * 1e-3,
        info={"mm_per_photo_px": fr.mm_per_px},
    )


def _align_face(photo: np.ndarray, landmarks: np.ndarray, appearance: Appearance) -> tuple[np.ndarray, _FaceFrame]:
    """(H×W×3 float32 photo, mirrored if asked, and its face frame); photo → mm: P = A·(p − origin)."""
    img = np.asarray(photo)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"photo must be H×W×3, got shape {img.shape}")
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else np.clip(img.astype(np.float32), 0.0, 1.0)
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be 68×2, got shape {lm.shape}")
    if appearance.mirror:
        img = img[:, ::-1]
        lm = lm.copy()
        lm[:, 0] = img.shape[1] - lm[:, 0]
        lm = lm[MIRROR_68]
    eye_vec = lm[45] - lm[36]
    eye_dist = float(np.linalg.norm(eye_vec))
    if not eye_dist > 1e-3:
        raise DaganError("degenerate face landmarks: the eye corners coincide")
    ang = math.atan2(eye_vec[1], eye_vec[0])
    rot = np.array([[math.cos(ang), math.sin(ang)], [-math.sin(ang), math.cos(ang)]])  # undo the photo's roll
    mm_per_px = _EYE_DISTANCE_MM / eye_dist
    a_mat = np.diag([appearance.aspect, 1.0]) @ rot * mm_per_px
    origin = lm[30].copy()
    L = (lm - origin) @ a_mat.T  # 68×2 mm
    # Inner lips: the lower inner lip never above the upper one.
    for up, low in ((61, 67), (62, 66), (63, 65)):
        if L[low, 1] < L[up, 1]:
            L[up, 1] = L[low, 1] = 0.5 * (L[up, 1] + L[low, 1])
    brow_y = L[17:27, 1].mean()
    chin_y = L[8, 1]
    face_h = chin_y - brow_y
    if not face_h > 1.0:
        raise DaganError("degenerate face landmarks: the chin is not below the brows")
    center = 0.5 * (L[0] + L[16])
    half_w = 0.5 * abs(L[16, 0] - L[0, 0]) * 1.1
    top_h = center[1] - (brow_y - 0.8 * face_h)
    return img, _FaceFrame(L, a_mat, origin, mm_per_px, brow_y, chin_y, face_h, center, half_w, top_h)


def _head_outline(fr: _FaceFrame, grid_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The head outline, resampled every `grid_mm` (O×2 mm), and its depth (O): the jaw 3..13
    pushed out, closed by a half-ellipse over the top through the ears."""
    L = fr.L
    theta = np.linspace(math.pi, 0.0, 41)  # image left → over the top → image right
    arc = np.stack([fr.center[0] + fr.half_w * np.cos(theta), fr.center[1] - fr.top_h * np.sin(theta)], axis=1)
    jaw_c = L[0:17].mean(0)
    jaw = L[13:2:-1]  # image right → left along the jaw
    jaw = jaw + (jaw - jaw_c) * 0.03
    outline_ctrl = np.vstack([arc, jaw])  # a closed loop (arc ends at the right ear, jaw goes back left)
    # Outline depth: the silhouette is ~105 mm behind the nose tip over the top, deeper at the ears.
    ctrl_z = np.concatenate([105.0 + 10.0 * (1.0 - np.sin(theta)), LANDMARK_DEPTH_MM[13:2:-1] + 8.0])
    return resample_closed(outline_ctrl, ctrl_z, grid_mm)


def _depth_spline(fr: _FaceFrame, outline: np.ndarray, outline_z: np.ndarray, dscale: float) -> RBFInterpolator:
    """A thin-plate spline (x, y mm → depth mm behind the nose tip) through the landmarks, the
    outline, cheek and temple anchors and an ellipsoidal forehead/cranium cap."""
    L, center = fr.L, fr.center
    ctrl_xy = [L, outline]
    ctrl_zs = [LANDMARK_DEPTH_MM * dscale, outline_z * math.sqrt(dscale)]
    for j, k, t, zz in ((1, 31, 0.5, 45.0), (3, 48, 0.5, 47.0), (0, 36, 0.5, 60.0)):  # cheeks, temples
        for a, b in ((j, k), (16 - j, int(MIRROR_68[k]))):
            ctrl_xy.append((L[a] + t * (L[b] - L[a]))[None])
            ctrl_zs.append(np.array([zz * dscale]))
    z_sil, z_front = 105.0, 20.0
    fore = []
    fore_z = []
    for rho in (0.35, 0.65, 0.85):
        for th in np.radians(np.arange(20, 161, 20)):
            p = np.array([center[0] + rho * fr.half_w * math.cos(th), center[1] - rho * fr.top_h * math.sin(th)])
            if p[1] < fr.brow_y - 8.0:
                fore.append(p)
                fore_z.append(z_sil - (z_sil - z_front) * math.sqrt(1.0 - rho * rho))
    if fore:
        ctrl_xy.append(np.array(fore))
        ctrl_zs.append(np.array(fore_z) * dscale)
    cxy, cz = dedupe(np.vstack(ctrl_xy), np.concatenate(ctrl_zs), 0.5)
    return RBFInterpolator(cxy, cz, kernel="thin_plate_spline", smoothing=1.0)


def _special_points(L: np.ndarray, grid_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                           tuple[int, int]]:
    """(S×2 points: the landmarks, then dense samples of the upper and lower inner lip and of the
    eyelids; S labels, 1 upper inner lip, 2 lower; the upper and lower inner lip polylines; the
    numbers of upper and lower lip samples)."""
    upper = L[list(_INNER_UPPER)]
    lower = L[list(_INNER_LOWER)]
    lip_step = grid_mm / 3.0
    upper_s = densify(upper, lip_step)
    lower_s = densify(lower, lip_step)
    lid_s = [densify(L[list(lid)], grid_mm / 2.0) for eye in _EYES for lid in eye[:2]]
    special = np.vstack([L, upper_s, lower_s] + lid_s)
    n_lm, n_up, n_low = 68, len(upper_s), len(lower_s)
    label = np.zeros(len(special), dtype=np.int8)
    label[list(_INNER_UPPER[1:-1])] = 1
    label[list(_INNER_LOWER[1:-1])] = 2
    label[n_lm : n_lm + n_up] = 1
    label[n_lm + n_up : n_lm + n_up + n_low] = 2
    return special, label, upper, lower, (n_up, n_low)


def _hex_grid(outline: np.ndarray, special: np.ndarray, upper: np.ndarray, lower: np.ndarray,
              grid_mm: float) -> np.ndarray:
    """A hexagonal grid inside the outline, clear of the outline, the special points and the lips."""
    ymin, ymax = outline[:, 1].min(), outline[:, 1].max()
    xmin, xmax = outline[:, 0].min(), outline[:, 0].max()
    rows = np.arange(ymin, ymax + grid_mm, grid_mm * math.sqrt(3) / 2)
    grid = []
    for r, y in enumerate(rows):
        xs = np.arange(xmin + (r % 2) * grid_mm / 2, xmax, grid_mm)
        grid.append(np.stack([xs, np.full_like(xs, y)], axis=1))
    grid = np.vstack(grid)
    grid = grid[points_in_poly(grid, outline)]
    grid = grid[segment_distance(grid, np.vstack([outline, outline[:1]])) > 0.5 * grid_mm]
    grid = grid[cKDTree(special).query(grid)[0] > 0.45 * grid_mm]
    mouth_poly = np.vstack([upper, lower[::-1][1:-1]])
    lip_line = np.vstack([upper, lower[::-1]])
    return grid[~points_in_poly(grid, mouth_poly) & (segment_distance(grid, lip_line) > 0.6 * grid_mm)]


def _triangulate(flat: np.ndarray, mouth_w: np.ndarray, labels: np.ndarray, n_core: int, n_out: int,
                 n_lips: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(F×3 faces, counter-clockwise; F bool, the mouth interior): Delaunay with the mouth opened,
    so the interior triangles span the lip gap, cut to the outermost ring. `n_lips`: the numbers of
    upper and lower inner-lip samples, which follow the 68 landmarks in `flat`."""
    n_lm, (n_up, n_low) = 68, n_lips
    opened = flat + np.stack([np.zeros(len(flat)), 8.0 * mouth_w], axis=1)
    faces = Delaunay(opened).simplices.astype(np.int64)
    cent = opened[faces].mean(1)
    outer_ring = flat[-n_out:] + np.stack([np.zeros(n_out), 8.0 * mouth_w[n_core - n_out : n_core]], axis=1)
    faces = faces[points_in_poly(cent, outer_ring)]
    cent = opened[faces].mean(1)
    opened_mouth = np.vstack([opened[list(_INNER_UPPER)], opened[n_lm : n_lm + n_up]])
    opened_mouth_low = np.vstack([opened[list(_INNER_LOWER)], opened[n_lm + n_up : n_lm + n_up + n_low]])
    gap = _lip_polygon(opened_mouth, opened_mouth_low)
    interior = points_in_poly(cent, gap) & _all_lip(faces, labels)
    e1, e2 = opened[faces[:, 1]] - opened[faces[:, 0]], opened[faces[:, 2]] - opened[faces[:, 0]]
    flip = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) < 0
    faces[flip] = faces[flip][:, ::-1]
    return faces, interior


def _lift(flat: np.ndarray, z_core: np.ndarray, outline: np.ndarray, normals2d: np.ndarray, n_core: int) -> np.ndarray:
    """N×3 positions (mm, z behind the nose tip): the core points at their spline depth, each
    ring rolled back on a 30 mm radius behind the outline."""
    n_out = len(outline)
    xyz = np.zeros((len(flat), 3))
    xyz[:n_core, :2] = flat[:n_core]
    xyz[:n_core, 2] = z_core
    radius = 30.0
    for k in (1, 2, 3):
        phi = math.radians(27.0 * k)
        sl = slice(n_core + (k - 1) * n_out, n_core + k * n_out)
        xyz[sl, :2] = outline + normals2d * radius * (math.cos(phi) - 1.0)
        xyz[sl, 2] = z_core[n_core - n_out :] + radius * math.sin(phi)
    return xyz


def _texture(img: np.ndarray, tex_src: np.ndarray, fr: _FaceFrame, appearance: Appearance,
             texture_px_per_mm: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Ht×Wt×3 texture, N×2 uv of the vertices' mm positions `tex_src`, 2×3 teeth and cavity
    colours): the photo cropped to the head, optionally downscaled, colour-changed and hair-tinted."""
    photo_xy = tex_src @ fr.a_inv.T + fr.origin  # N×2 photo pixels
    x0 = int(max(math.floor(photo_xy[:, 0].min()) - 4, 0))
    y0 = int(max(math.floor(photo_xy[:, 1].min()) - 4, 0))
    x1 = int(min(math.ceil(photo_xy[:, 0].max()) + 4, img.shape[1]))
    y1 = int(min(math.ceil(photo_xy[:, 1].max()) + 4, img.shape[0]))
    if x1 - x0 < 8 or y1 - y0 < 8:
        raise DaganError("the face lies outside the photo")
    tex = img[y0:y1, x0:x1]
    uv = photo_xy - np.array([x0, y0], dtype=np.float64)
    px_per_mm = 1.0 / fr.mm_per_px
    if texture_px_per_mm is not None and px_per_mm > 1.5 * texture_px_per_mm:
        factor = texture_px_per_mm / px_per_mm
        new_size = (max(int(round(tex.shape[1] * factor)), 8), max(int(round(tex.shape[0] * factor)), 8))
        u8 = Image.fromarray((tex * 255.0 + 0.5).astype(np.uint8))
        tex = np.asarray(u8.resize(new_size, Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
        uv = uv * np.array([new_size[0] / (x1 - x0), new_size[1] / (y1 - y0)])
        tex_scale = np.array([new_size[0] / (x1 - x0), new_size[1] / (y1 - y0)])
    else:
        tex_scale = np.array([1.0, 1.0])
    # Face-aligned mm of every texture pixel (for the hair mask and the face luma).
    hh, ww = tex.shape[:2]
    gx, gy = np.meshgrid((np.arange(ww) + 0.5) / tex_scale[0] + x0, (np.arange(hh) + 0.5) / tex_scale[1] + y0)
    tex_mm = (np.stack([gx, gy], axis=-1) - fr.origin) @ fr.a_mat.T  # Ht×Wt×2
    L = fr.L
    face_region = points_in_poly(tex_mm.reshape(-1, 2), L[list(range(17)) + list(range(26, 16, -1))]).reshape(hh, ww)
    luma = tex @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    face_luma = float(luma[face_region].mean()) if face_region.any() else float(luma.mean())
    tex = _color_transform(tex.astype(np.float64), appearance, face_luma)
    if appearance.hair_rgb is not None:
        tex = _hair_tint(tex, tex_mm, fr, appearance)
    return tex, uv, _color_transform(np.stack([_TEETH_RGB, _CAVITY_RGB]), appearance, face_luma)


def _hair_tint(tex: np.ndarray, tex_mm: np.ndarray, fr: _FaceFrame, appearance: Appearance) -> np.ndarray:
    """`tex` with the hair (above the hairline, beside the face) tinted `appearance.hair_rgb`,
    keeping its shading."""
    L = fr.L
    hairline = fr.brow_y - 0.3 * fr.face_h
    top = smoothstep((hairline - tex_mm[..., 1]) / 8.0)
    side = smoothstep((np.abs(tex_mm[..., 0] - fr.center[0]) - 0.95 * 0.5 * abs(L[16, 0] - L[0, 0])) / 6.0)
    side = side * smoothstep((L[48, 1] - tex_mm[..., 1]) / 10.0)
    m = np.maximum(top, side)[..., None] * float(appearance.hair_strength)
    hair = np.asarray(appearance.hair_rgb, dtype=np.float64)
    lum = tex @ np.array([0.299, 0.587, 0.114])
    ref = float(np.median(lum[m[..., 0] > 0.4])) if (m[..., 0] > 0.4).any() else 0.5
    tinted = np.clip(hair * (lum / max(ref, 0.05))[..., None], 0.0, 1.0)
    return tex * (1.0 - m) + tinted * m


def _lip_polygon(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Closed polygon of the mouth gap from unordered upper/lower inner-lip samples."""
    up = upper[np.argsort(upper[:, 0], kind="stable")]
    low = lower[np.argsort(lower[:, 0], kind="stable")]
    return np.vstack([up, low[::-1]])


def _all_lip(faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Triangles whose three vertices are all inner-lip samples (or mouth corners)."""
    lip = labels > 0
    lip[[60, 64]] = True
    return lip[faces].all(1)


def _jaw_weight(p: np.ndarray, labels: np.ndarray, L: np.ndarray, lower: np.ndarray, chin_y: float) -> np.ndarray:
    """Share of the jaw drop each 2-D point follows (0 above the mouth, 1 at the chin)."""
    x, y = p[:, 0], p[:, 1]
    left, right = L[60], L[64]
    xm, hw = 0.5 * (left[0] + right[0]), max(0.5 * (right[0] - left[0]), 1e-3)
    line = interp_curve(x, lower)  # lower inner lip, held at the corners beyond them
    d = y - line
    xr = np.abs(x - xm)
    inside = xr <= hw
    lateral = np.clip(d / np.maximum(1.2 * (xr - hw), 1e-6), 0.0, 1.0)
    below = np.where(inside, (d >= -1e-9).astype(np.float64), lateral)
    below = np.where(labels == 1, 0.0, np.where(labels == 2, 1.0, below))
    band = max(2.0 * (L[57, 1] - L[66, 1]), 4.0)
    profile = np.clip(1.0 - (xr / hw) ** 2, 0.0, 1.0)
    lip = profile + (1.0 - profile) * np.clip(d / band, 0.0, 1.0)
    pivot_y = 0.5 * (L[1, 1] + L[15, 1])
    vertical = np.clip((y - pivot_y) / max(chin_y - pivot_y, 1e-3), 0.0, 1.0)
    w = below * lip * vertical
    w[[60, 64]] = 0.0
    return w


def _blink_shift(p: np.ndarray, L: np.ndarray) -> np.ndarray:
    """Downward shift (mm) of each 2-D point when both eyes are closed."""
    x, y = p[:, 0], p[:, 1]
    dy = np.zeros(len(p))
    for upper_ids, lower_ids, brow_ids in _EYES:
        up, low, brow = L[list(upper_ids)], L[list(lower_ids)], L[list(brow_ids)]
        x_lo, x_hi = min(up[:, 0].min(), low[:, 0].min()), max(up[:, 0].max(), low[:, 0].max())
        sel = (x > x_lo) & (x < x_hi)
        xs, ys = x[sel], y[sel]
        u, lo = interp_curve(xs, up), interp_curve(xs, low)
        lo = np.maximum(lo, u)
        target = u + 0.75 * (lo - u)
        gap = lo - u
        b = interp_curve(xs, brow)
        above = (target - u) * np.clip(1.0 - (u - ys) / np.maximum(0.8 * (u - b), 1e-3), 0.0, 1.0)
        between = target - ys
        below = (target - lo) * np.clip(1.0 - (ys - lo) / np.maximum(gap, 1e-3), 0.0, 1.0)
        dy[sel] += np.where(ys < u, above, np.where(ys > lo, below, between))
    return dy


def _neck(L: np.ndarray, grid_mm: float, dscale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A half-cylinder neck from the jaw angles down to well below the image (face-aligned mm).

    Returns:
        xyz: M×3 (z behind the nose tip), faces: K×3 (counter-clockwise seen from the camera),
        src: M×2 face-aligned positions its texture is read from (frontal projection).
    """
    face_w = float(np.ptp(L[:17, 0]))
    radius = 0.36 * face_w
    xc = 0.5 * (L[0, 0] + L[16, 0])
    zc = 100.0 * dscale
    step = 1.5 * grid_mm
    alpha = np.linspace(-math.radians(100), math.radians(100), max(int(math.ceil(radius * 3.5 / step)), 8))
    ys = np.arange(L[4, 1], L[8, 1] + 1.6 * (L[8, 1] - L[19:25, 1].mean()), step)
    aa, yy = np.meshgrid(alpha, ys)  # rows × cols
    xyz = np.stack([xc + radius * np.sin(aa), yy, zc - radius * np.cos(aa) * math.sqrt(dscale)], axis=-1).reshape(-1, 3)
    src = np.stack([xc + radius * np.sin(np.clip(aa, -1.2, 1.2)), yy], axis=-1).reshape(-1, 2)
    rows, cols = aa.shape
    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])
    return xyz, faces.astype(np.int64), src


