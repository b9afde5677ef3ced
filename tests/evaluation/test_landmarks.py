import functools

import matplotlib
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage import data, io
from skimage.transform import resize

from dagan.errors import DaganError
from dagan.evaluation import landmarks as lm


@functools.cache
def astronaut() -> np.ndarray:
    """256×256×3 float crop of skimage's astronaut around her face (face ≈ 90 px wide)."""
    return resize(data.astronaut()[20:260, 100:340], (256, 256), anti_aliasing=True)


@functools.cache
def grace_hopper() -> np.ndarray:
    path = matplotlib.get_data_path() + "/sample_data/grace_hopper.jpg"
    return resize(io.imread(path), (256, 256), anti_aliasing=True)


def test_model_files_are_found_without_importing_the_package():
    for name in (lm.SHAPE_PREDICTOR_FILE, lm.FACE_ENCODER_FILE):
        assert lm.dlib_model_path(name).is_file()
    with pytest.raises(DaganError, match="missing"):
        lm.dlib_model_path("no_such_model.dat")


def test_models_are_process_singletons():
    assert lm.face_detector() is lm.face_detector()
    assert lm.shape_predictor() is lm.shape_predictor()
    assert lm.face_encoder() is lm.face_encoder()


def test_to_uint8():
    img = np.array([[[0.0, 0.5, 1.0]]])
    assert lm.to_uint8(img).tolist() == [[[0, 128, 255]]]
    u8 = np.zeros((4, 4, 3), np.uint8)
    assert lm.to_uint8(u8).dtype == np.uint8
    with pytest.raises(DaganError, match="H×W×3"):
        lm.to_uint8(np.zeros((4, 4)))


def test_detect_face_shapes():
    face = lm.detect_face(astronaut())
    assert face is not None
    assert face.landmarks.shape == (68, 2)
    left, top, right, bottom = face.box
    assert 0 <= left < right <= 256 and 0 <= top < bottom <= 256
    # Nose tip (30) inside the box, chin (8) below the nose.
    nose, chin = face.landmarks[30], face.landmarks[8]
    assert left <= nose[0] <= right and top <= nose[1] <= bottom
    assert chin[1] > nose[1]
    assert face.embedding.shape == (128,)
    assert face.embedding is face.embedding  # computed once
    assert np.array_equal(lm.detect_landmarks(astronaut()), face.landmarks)


def test_no_face_in_blank_or_noise():
    assert lm.detect_face(np.zeros((256, 256, 3))) is None
    assert lm.detect_landmarks(np.full((128, 128, 3), 0.5)) is None
    assert lm.face_embedding(np.zeros((64, 64, 3), np.uint8)) is None


def test_keypoint_distance_known_values():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 256, size=(68, 2))
    assert lm.keypoint_distance(points, points) == 0.0
    # Mean over landmarks and both coordinates of |Δ|: a (3, −1) shift gives (3 + 1) / 2.
    assert lm.keypoint_distance(points + [3.0, -1.0], points) == pytest.approx(2.0)
    moved = points.copy()
    moved[0] += [68.0, 0.0]  # one landmark, one coordinate
    assert lm.keypoint_distance(moved, points) == pytest.approx(68.0 / (68 * 2))
    assert lm.keypoint_distance(points, moved) == lm.keypoint_distance(moved, points)


def test_keypoint_distance_bad_input():
    with pytest.raises(DaganError):
        lm.keypoint_distance(np.zeros((68, 2)), np.zeros((5, 2)))
    with pytest.raises(DaganError):
        lm.keypoint_distance(np.zeros((68, 3)), np.zeros((68, 3)))


def test_identity_distance_and_cosine_known_values():
    a, b = np.array([3.0, 4.0]), np.array([0.0, 0.0])
    assert lm.identity_distance(a, b) == pytest.approx(5.0)
    assert lm.identity_distance(a, a) == 0.0
    assert lm.cosine_similarity(a, 2 * a) == pytest.approx(1.0)
    assert lm.cosine_similarity(a, -a) == pytest.approx(-1.0)
    assert lm.cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.0)
    assert lm.cosine_similarity(a, b) == 0.0
    with pytest.raises(DaganError, match="size"):
        lm.identity_distance(np.zeros(128), np.zeros(64))


def test_identity_separates_people():
    same = np.clip(gaussian_filter(astronaut(), sigma=(1, 1, 0)) * 1.1, 0, 1)  # slight blur + brightness
    e_astro = lm.face_embedding(astronaut())
    e_same = lm.face_embedding(same)
    e_grace = lm.face_embedding(grace_hopper())
    assert e_astro is not None and e_same is not None and e_grace is not None
    d_same = lm.identity_distance(e_astro, e_same)
    d_other = lm.identity_distance(e_astro, e_grace)
    # dlib's documented same-person threshold is 0.6.
    assert d_same < 0.6 < d_other
    assert lm.cosine_similarity(e_astro, e_same) > lm.cosine_similarity(e_astro, e_grace)
