"""The metric objects: the Euclidean default measures what the encoder's distance always measured, the two
trained heads measure what the old head code measured (values recorded from it), and callers take any of
them without asking which."""

import json

import numpy as np
import pytest

from neuralens.errors import NeuralensError
from neuralens.faces import (
    ClassifierMetric,
    EuclideanMetric,
    Gallery,
    Metric,
    ProjectionMetric,
    api,
    compare,
    identify,
    load_head,
    verify,
)
from neuralens.faces.metric import as_metric
from neuralens.faces.models import Pipeline


def synthetic():
    """The embeddings and head weights the recorded values below were computed on."""
    rng = np.random.default_rng(7)
    q = rng.normal(0, 0.1, (3, 128)).astype(np.float32)
    g = rng.normal(0, 0.1, (4, 128)).astype(np.float32)
    w = (np.eye(128) + rng.normal(0, 0.05, (128, 128))).astype(np.float32)
    b = rng.normal(0, 0.01, 128).astype(np.float32)
    cw = rng.normal(0, 1.0, 256).astype(np.float32)
    return q, g, w, b, cw


# Computed by the head code before the metric objects existed (training.Head.distances / pair_distances).
PROJECTION = [
    [1.7362704, 1.6452231, 1.6049718, 1.5178895],
    [1.727664, 1.6693504, 1.778987, 1.785843],
    [1.7182454, 1.6578163, 1.5689045, 1.9605886],
]
CLASSIFIER = [
    [0.614808321, 0.5199303627, 0.5235000849, 0.7798703909],
    [0.9782398343, 0.9455599189, 0.925989747, 0.8544995189],
    [0.7617504001, 0.6430091262, 0.7866330147, 0.5535052419],
]


def test_heads_give_the_distances_they_gave_before():
    q, g, w, b, cw = synthetic()
    projection = ProjectionMetric(w, b, threshold=0.7)
    classifier = ClassifierMetric(cw, 0.3, threshold=0.5)
    assert np.allclose(projection.distances(q, g), PROJECTION, atol=1e-5)
    assert np.allclose(classifier.distances(q, g), CLASSIFIER, atol=1e-6)
    assert np.allclose(projection.pair_distances(q, g[:3]), np.diag(PROJECTION), atol=1e-5)
    assert np.allclose(classifier.pair_distances(q, g[:3]), np.diag(CLASSIFIER), atol=1e-6)
    index, dist = classifier.nearest(q, g)
    assert list(index) == list(np.argmin(CLASSIFIER, axis=1)) and np.allclose(dist, np.min(CLASSIFIER, axis=1))
    assert (
        projection.fingerprint().startswith("projection:")
        and projection.fingerprint() != ProjectionMetric(2 * w, b, threshold=0.7).fingerprint()
    )


def test_euclidean_is_the_encoders_distance_with_dlibs_threshold():
    q, g, *_ = synthetic()
    metric = EuclideanMetric()
    brute = np.linalg.norm(q[:, None, :].astype(np.float64) - g[None, :, :], axis=2)
    assert np.allclose(metric.distances(q, g), api.distance(q, g)) and np.allclose(metric.distances(q, g), brute)
    assert np.allclose(metric.pair_distances(q, g[:3]), np.diag(brute))
    index, dist = metric.nearest(q, g)
    assert list(index) == list(brute.argmin(axis=1)) and np.allclose(dist, brute.min(axis=1), atol=1e-5)
    assert metric.threshold == 0.6 and metric.confidence(0.6) == pytest.approx(0.5)
    verdict = metric.decide(0.41, {"name": "x"})
    assert verdict.same and verdict.threshold == 0.6 and verdict.confidence > 0.9 and verdict.details == {"name": "x"}
    assert not metric.calibrated(threshold=0.4).decide(0.41).same and metric.threshold == 0.6
    assert metric.to_dict() == {
        "metric": "euclidean",
        "threshold": 0.6,
        "confidence": {"intercept": 9.0, "slope": -15.0},
    }


def test_as_metric_is_the_one_place_head_becomes_a_metric():
    q, g, w, b, _ = synthetic()
    head = ProjectionMetric(w, b, threshold=0.7)
    assert isinstance(as_metric(), EuclideanMetric) and as_metric(head=head) is head and as_metric(head) is head
    default = EuclideanMetric(0.5)
    assert as_metric(None, None, default) is default
    with pytest.raises(NeuralensError, match="expected a face metric"):
        as_metric(head="head.json")
    with pytest.raises(NeuralensError, match="not both"):
        as_metric(head, ProjectionMetric(w, b, threshold=0.1))
    assert isinstance(head, Metric) and issubclass(ClassifierMetric, Metric)


def test_the_gallerys_metric_carries_its_calibration(tmp_path, enrolled, photo, encoded):
    with Gallery(enrolled) as gallery:
        metric = gallery.metric()
        assert isinstance(metric, EuclideanMetric) and metric.threshold == gallery.threshold
        plain = identify(gallery, photo("obama_and_biden.jpg"))
        queries = np.stack([f.embedding for f in encoded("obama_and_biden.jpg")])
        brute = np.linalg.norm(queries[:, None, :] - gallery.embeddings()[None], axis=2).min(axis=1)
        assert np.allclose([m.distance for m in plain], brute, atol=1e-5)  # the Euclidean default, as before
        strict = identify(gallery, photo("obama_and_biden.jpg"), metric=metric.calibrated(threshold=0.1))
        assert [m.name for m in strict] == [None, None, None]
        assert np.allclose([m.distance for m in strict], [m.distance for m in plain])
        doubled = ProjectionMetric(2 * np.eye(128), np.zeros(128), threshold=1.2, pipeline=Pipeline().fingerprint())
        result = verify(gallery, photo("obama_small.jpg"), "obama", metric=doubled)
        assert result.same and result.threshold == 1.2
        assert result.distance == pytest.approx(
            2 * verify(gallery, photo("obama_small.jpg"), "obama").distance, abs=1e-4
        )


def test_compare_takes_a_metric_and_an_explicit_threshold_wins(encoded):
    a, b = encoded("obama.jpg")[0].embedding, encoded("obama_small.jpg")[0].embedding
    plain = compare(a, b)
    assert plain.distance == pytest.approx(float(np.linalg.norm(a - b)), abs=1e-6) and plain.threshold == 0.6
    doubled = ProjectionMetric(2 * np.eye(128), np.zeros(128), threshold=1.5, pipeline=Pipeline().fingerprint())
    assert compare(a, b, metric=doubled).distance == pytest.approx(2 * plain.distance, abs=1e-5)
    assert compare(a, b, head=doubled).threshold == 1.5
    assert compare(a, b, metric=doubled, threshold=0.1).same is False


def test_a_head_file_loads_as_its_metric(tmp_path):
    q, g, w, b, cw = synthetic()
    path = tmp_path / "head.json"
    path.write_text(
        json.dumps(
            {
                "format": "neuralens-face-head",
                "version": 1,
                "kind": "classifier",
                "threshold": 0.5,
                "confidence": {"intercept": 1.0, "slope": -2.0},
                "pipeline": {},
                "info": {
                    "calibration": {"projection": {"threshold": 0.7, "confidence": {"intercept": 3.0, "slope": -4.0}}}
                },
                "projection": {"weight": w.tolist(), "bias": b.tolist()},
                "classifier": {"weight": cw.tolist(), "bias": 0.3, "features": "both"},
            }
        )
    )
    classifier = load_head(path)
    assert isinstance(classifier, ClassifierMetric) and classifier.threshold == 0.5
    assert np.allclose(classifier.distances(q, g), CLASSIFIER, atol=1e-6)
    projection = load_head(path, "projection")
    assert isinstance(projection, ProjectionMetric) and projection.threshold == 0.7
    assert projection.confidence_fit == {"intercept": 3.0, "slope": -4.0}
    assert np.allclose(projection.distances(q, g), PROJECTION, atol=1e-5)
