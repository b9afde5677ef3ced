"""The synthetic heads' 2-D polyline and mesh helpers (dagan.data.curves), on shapes with known answers."""

import numpy as np

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

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # counter-clockwise in x-right, y-up


def test_smoothstep_clamps_and_is_symmetric():
    y = smoothstep(np.array([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0]))
    assert np.allclose(y[[0, 1, 3, 5, 6]], [0, 0, 0.5, 1, 1])
    assert np.isclose(y[2] + y[4], 1.0)


def test_resample_closed_steps_evenly_around_the_perimeter():
    pts, vals = resample_closed(SQUARE, np.array([0.0, 1.0, 2.0, 3.0]), 0.25)
    steps = np.linalg.norm(np.diff(np.vstack([pts, pts[:1]]), axis=0), axis=1)
    assert len(pts) == 16 and np.allclose(steps, 0.25)
    assert np.allclose(pts[0], SQUARE[0]) and np.allclose(vals[:5], [0, 0.25, 0.5, 0.75, 1.0])


def test_densify_fills_between_points_only():
    out = densify(np.array([[0.0, 0.0], [1.0, 0.0]]), 0.3)
    assert np.allclose(out[:, 1], 0) and 0 < out[:, 0].min() and out[:, 0].max() < 1
    assert np.diff(np.concatenate([[0], np.sort(out[:, 0]), [1]])).max() <= 0.3 + 1e-12


def test_segment_distance_known_values():
    line = np.array([[0.0, 0.0], [2.0, 0.0]])
    d = segment_distance(np.array([[1.0, 1.0], [3.0, 0.0], [-1.0, -1.0], [0.5, 0.0]]), line)
    assert np.allclose(d, [1.0, 1.0, np.sqrt(2), 0.0])


def test_interp_curve_sorts_and_holds_the_ends():
    curve = np.array([[2.0, 20.0], [0.0, 0.0], [1.0, 10.0]])
    assert np.allclose(interp_curve(np.array([-1.0, 0.5, 1.5, 5.0]), curve), [0, 5, 15, 20])


def test_dedupe_merges_close_points_and_averages_them():
    xy = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]])
    out_xy, out_z = dedupe(xy, np.array([1.0, 3.0, 7.0]), tol=0.5)
    assert len(out_xy) == 2 and sorted(out_z.tolist()) == [2.0, 7.0]


def test_outline_normals_point_outward_unit_length():
    n = outline_normals(SQUARE)
    centre = SQUARE.mean(0)
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
    assert np.all(np.sum(n * (SQUARE - centre), axis=1) > 0)


def test_vertex_normals_of_a_triangle_face_the_camera():
    vertices = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    for faces in (np.array([[0, 1, 2]]), np.array([[0, 2, 1]])):
        assert np.allclose(vertex_normals(vertices, faces), [[0, 0, -1]] * 3)
