"""detect / landmarks / align / encode / distance / compare on real photos, and the quality measures."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from neuralens import faces
from neuralens.errors import NeuralensError
from neuralens.faces import api

OBAMA = ["obama.jpg", "obama2.jpg", "obama_small.jpg"]
BIDEN = ["biden.jpg", "biden2.jpg"]


def test_detect_finds_every_face_left_to_right(photo):
    assert len(faces.detect(photo("obama.jpg"))) == 1
    boxes = [box for box, _ in faces.detect(photo("obama_and_biden.jpg"))]
    assert len(boxes) == 3
    assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)
    assert len(faces.detect(photo("two_people.jpg"))) == 2


def test_landmarks_and_aligned_chip(photo):
    ((box, _),) = faces.detect(photo("obama.jpg"))
    points = faces.landmarks(photo("obama.jpg"), box)
    assert points.shape == (5, 2)
    left, top, right, bottom = box
    assert np.all((points[:, 0] > left - 20) & (points[:, 0] < right + 20))
    assert np.all((points[:, 1] > top - 20) & (points[:, 1] < bottom + 20))
    chip = faces.align(photo("obama.jpg"), box)
    assert isinstance(chip, Image.Image) and chip.size == (150, 150)


def test_encode_gives_128_floats_per_face(encoded):
    found = encoded("two_people.jpg")
    assert len(found) == 2
    for face in found:
        assert face.embedding.shape == (128,) and face.embedding.dtype == np.float32
        assert 0.5 < np.linalg.norm(face.embedding) < 1.5
        assert face.size >= 60 and face.sharpness > 25 and abs(face.yaw) < 0.3


def test_same_person_photos_are_close_and_different_people_far(encoded):
    vectors = {name: encoded(name)[0].embedding for name in OBAMA + BIDEN}
    for group in (OBAMA, BIDEN):
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                assert faces.distance(vectors[a], vectors[b]) < api.DEFAULT_THRESHOLD, (a, b)
    for a in OBAMA:
        for b in BIDEN:
            assert faces.distance(vectors[a], vectors[b]) > api.DEFAULT_THRESHOLD, (a, b)


def test_distance_matrix_matches_pairwise(encoded):
    a = np.stack([f.embedding for f in encoded("obama_and_biden.jpg")])
    b = np.stack([f.embedding for f in encoded("two_people.jpg")])
    matrix = faces.distance(a, b)
    assert matrix.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert matrix[i, j] == pytest.approx(np.linalg.norm(a[i] - b[j]), abs=1e-5)
    assert faces.distance(a[0], b).shape == (2,)


def test_compare_photos_and_embeddings(photo, encoded):
    same = faces.compare(photo("obama.jpg"), photo("obama_small.jpg"))
    assert same.same and same.distance < 0.6 and same.confidence > 0.5 and same.threshold == 0.6
    different = faces.compare(encoded("obama.jpg")[0].embedding, encoded("biden2.jpg")[0].embedding)
    assert not different.same and different.confidence < 0.5
    with pytest.raises(NeuralensError, match="2 faces found"):
        faces.compare(photo("two_people.jpg"), photo("obama.jpg"))
    assert faces.compare(photo("two_people.jpg"), photo("obama.jpg"), largest=True).distance > 0


def test_jitter_and_cnn_detector_agree_with_the_defaults(photo, encoded):
    plain = encoded("obama_small.jpg")[0]
    jittered = faces.encode(photo("obama_small.jpg"), jitter=2)[0]
    assert faces.distance(plain.embedding, jittered.embedding) < 0.15
    cnn = faces.encode(photo("obama_small.jpg"), detector="cnn", upsample=0)
    assert len(cnn) == 1 and faces.distance(plain.embedding, cnn[0].embedding) < 0.2
    with pytest.raises(NeuralensError, match="unknown detector"):
        faces.encode(photo("obama_small.jpg"), detector="sift")


def test_sharpness_drops_with_blur(photo):
    image = Image.open(photo("obama.jpg"))
    sharp = faces.encode(image)[0].sharpness
    blurred = faces.encode(image.filter(ImageFilter.GaussianBlur(3)))
    assert blurred and blurred[0].sharpness < 25 < sharp
    flat = np.full((150, 150, 3), 128, np.uint8)
    assert api.sharpness(flat) == 0.0


def test_yaw_from_hand_made_landmarks():
    # Eyes level at y=0, 2 units apart (centres x=-1 and x=+1), nose straight below the midpoint.
    frontal = np.array([[-1.2, 0], [-0.8, 0], [0.8, 0], [1.2, 0], [0, 1.0]])
    assert api.yaw(frontal) == pytest.approx(0.0)
    turned = frontal.copy()
    turned[4, 0] = 0.5  # nose 0.5 towards the left eye = 0.25 eye distances
    assert api.yaw(turned) == pytest.approx(0.25)
    rotated = frontal @ np.array([[0, 1], [-1, 0]])  # a 90-degree roll does not change yaw
    assert api.yaw(rotated) == pytest.approx(0.0, abs=1e-12)


def test_confidence_is_the_logistic_fit():
    fit = {"intercept": 9.0, "slope": -15.0}
    assert faces.confidence(0.6, fit) == pytest.approx(0.5)
    assert faces.confidence(0.4, fit) == pytest.approx(1 / (1 + np.exp(-3.0)))


def test_nearest_is_the_brute_force_argmin_in_any_chunking():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(1000, 128)).astype(np.float32)
    queries = rng.normal(size=(5, 128)).astype(np.float32)
    brute = np.linalg.norm(queries[:, None, :] - matrix[None, :, :], axis=2)
    for chunk in (1000, 333, 1):
        index, dist = api.nearest(queries, matrix, chunk=chunk)
        assert list(index) == list(brute.argmin(axis=1))
        assert np.allclose(dist, brute.min(axis=1), atol=1e-4)


def test_the_memo_returns_what_a_fresh_computation_would(photo):
    api._EMBEDDINGS.items.clear()
    api._DETECTIONS.items.clear()
    first = faces.encode(photo("obama2.jpg"))[0].embedding
    first[:] = 0  # a caller's change must not reach the memo
    again = faces.encode(photo("obama2.jpg"))[0].embedding
    api._EMBEDDINGS.items.clear()
    api._DETECTIONS.items.clear()
    fresh = faces.encode(photo("obama2.jpg"))[0].embedding
    assert np.array_equal(again, fresh) and np.any(fresh != 0)
    other = faces.encode(photo("biden2.jpg"))[0].embedding
    assert faces.distance(other, fresh) > 0.6
