"""Triplet loss and batch-hard mining on hand-made examples, heads that learn on synthetic embeddings,
and the head file format (JSON, no pickle)."""

import json

import numpy as np
import pytest
import torch

from neuralens.errors import NeuralensError
from neuralens.faces import Gallery, ProjectionMetric, identify, training
from neuralens.faces.models import Pipeline


def test_triplet_loss_on_hand_made_triplets():
    anchor = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    positive = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    negative = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    # Triplet 1: 1 - 4 + 0.2 < 0 -> 0.  Triplet 2: 4 - 1 + 0.2 = 3.2.  Mean 1.6.
    assert float(training.triplet_loss(anchor, positive, negative, margin=0.2)) == pytest.approx(1.6)


def test_batch_hard_mining_on_points_on_a_line():
    # Points 0, 5 (person A), 3, 6 (person B), 100 (person C, alone: no positive).
    x = torch.tensor([[0.0], [5.0], [3.0], [6.0], [100.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    positive, negative, valid = training.batch_hard_mining(x, labels)
    # Anchor 0: farthest same = 5 (idx 1), nearest other = 3 (idx 2).  Anchor 1 (5): same 0, other 6.
    # Anchor 2 (3): same 6 (idx 3), nearest other = 5 (idx 1).  Anchor 3 (6): same 3, nearest other 5.
    assert positive[:4].tolist() == [1, 0, 3, 2]
    assert negative[:4].tolist() == [2, 3, 1, 1]
    assert valid.tolist() == [True, True, True, True, False]
    # Losses: 25-9+.2 = 16.2; 25-1+.2 = 24.2; 9-4+.2 = 5.2; 9-1+.2 = 8.2 -> mean 13.45.
    assert float(training.batch_hard_triplet_loss(x, labels, margin=0.2)) == pytest.approx(13.45)


def test_batch_hard_loss_is_zero_without_triplets():
    x = torch.tensor([[0.0], [1.0]])
    assert float(training.batch_hard_triplet_loss(x, torch.tensor([0, 1]))) == 0.0


def test_adam_steps_by_hand():
    # With a constant gradient c, Adam's bias-corrected moments are m = c and v = c^2 at every step, so
    # each step moves every parameter by lr * sign(c) (up to eps).
    p = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    c = torch.tensor([3.0, -0.2, 1e-3])
    optimiser = training.Adam([p], lr=0.1)
    for _ in range(3):
        optimiser.zero_grad()
        (p * c).sum().backward()
        optimiser.step()
    assert torch.allclose(p.detach(), torch.tensor([0.5 - 0.3, -1.0 + 0.3, 2.0 - 0.3]), atol=1e-4)
    # Weight decay adds wd * p to the gradient.
    q = torch.tensor([-1.0], requires_grad=True)
    decayed = training.Adam([q], lr=0.1, weight_decay=2.0)
    (q * torch.tensor([-0.5])).sum().backward()  # g = -0.5 + 2 * (-1) = -2.5 -> q moves up by 0.1
    decayed.step()
    assert q.item() == pytest.approx(-0.9, abs=1e-5)


def test_pair_features_are_abs_difference_and_chi_square():
    a = np.array([[1.0, -2.0]], np.float32)
    b = np.array([[3.0, -1.0]], np.float32)
    # |a-b| = (2, 1); chi-square terms (a-b)^2 / (|a|+|b|) = 4/4, 1/3.
    assert np.allclose(training.pair_features(a, b), [[2, 1, 1, 1 / 3]], atol=1e-5)
    assert np.allclose(training.pair_features(a, b, "abs"), [[2, 1]], atol=1e-5)
    assert np.allclose(training.pair_features(a, b, "chi2"), [[1, 1 / 3]], atol=1e-5)
    with pytest.raises(NeuralensError, match="unknown pair features"):
        training.pair_features(a, b, "cosine")


def synthetic(people=24, per_person=6, seed=0):
    """Embeddings where identity lives in some dimensions and a large nuisance (pose, light) in others,
    which the pretrained metric cannot ignore but a trained head can."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.06, (people, 128))
    labels = np.repeat(np.arange(people), per_person)
    x = centres[labels] + rng.normal(0, 0.02, (len(labels), 128))
    x[:, :16] += rng.normal(0, 0.12, (len(labels), 16))
    return x.astype(np.float32), labels


def test_training_the_projection_head_lowers_its_loss():
    x, labels = synthetic()
    _, _, losses = training.train_projection(x, labels, steps=100, seed=0)
    assert losses["loss_before"] > 0.02
    assert losses["loss_after"] < 0.5 * losses["loss_before"]


@pytest.mark.parametrize("features", ["both", "abs", "chi2"])
def test_training_the_classifier_head_lowers_its_loss(features):
    x, labels = synthetic()
    weight, _, losses = training.train_classifier(x, labels, steps=200, features=features)
    assert weight.shape == ((256,) if features == "both" else (128,))
    assert losses["loss_after"] < 0.5 * losses["loss_before"]


def test_train_heads_reports_before_and_after_on_held_out_people(tmp_path):
    x, labels = synthetic(people=20, per_person=5)
    train, test = training.split_dataset(labels, 0.25, "people", seed=0)
    assert not set(labels[train]) & set(labels[test])  # whole people are held out
    heads, report = training.train_heads(
        x[train], labels[train], x[test], labels[test], Pipeline().fingerprint(), steps=150
    )
    for key in ("before", "projection", "classifier"):
        assert {"accuracy", "best_threshold", "roc_auc", "eer", "tar_at_far"} <= set(report[key])
    assert report["use"] in ("projection", "classifier") and heads.chosen.kind == heads.use == report["use"]
    assert max(report["projection"]["roc_auc"], report["classifier"]["roc_auc"]) > report["before"]["roc_auc"]
    path = heads.save(tmp_path / "head.json")
    data = json.loads(path.read_text())  # plain JSON: no pickle anywhere
    assert data["format"] == "neuralens-face-head" and data["kind"] == heads.use
    assert training.load_head(path).kind == heads.use
    for kind in ("projection", "classifier"):
        loaded = training.load_head(path, kind)
        original = heads[kind]
        assert type(loaded) is type(original) and loaded.threshold == pytest.approx(original.threshold)
        assert loaded.confidence_fit == pytest.approx(original.confidence_fit)
        assert np.allclose(loaded.distances(x[:3], x[:20]), original.distances(x[:3], x[:20]), atol=1e-5)
        pairs = loaded.pair_distances(x[:3], x[3:6])
        assert np.allclose(pairs, np.diag(loaded.distances(x[:3], x[3:6])), atol=1e-5)


def test_split_by_images_keeps_every_person_in_training():
    labels = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 2)
    train, test = training.split_dataset(labels, 0.5, "images", seed=0)
    assert set(labels[train]) == {"a", "b", "c"} and test.sum() == 3  # 2 of a, 1 of b, none of c
    with pytest.raises(NeuralensError, match="use --split images"):
        training.split_dataset(labels, 0.5, "people")


def test_bad_head_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(NeuralensError, match="not a face head file"):
        training.load_head(bad)
    bad.write_text(
        json.dumps(
            {
                "format": "neuralens-face-head",
                "kind": "projection",
                "threshold": 1,
                "confidence": {},
                "pipeline": {},
                "projection": {"weight": [[1, 2]], "bias": [0]},
            }
        )
    )
    with pytest.raises(NeuralensError, match="damaged face head"):
        training.load_head(bad)
    with pytest.raises(NeuralensError, match="no such head file"):
        training.load_head(tmp_path / "missing.json")


def test_an_identity_head_identifies_like_the_raw_encoder(tmp_path, enrolled, photo):
    head = ProjectionMetric(
        np.eye(128, dtype=np.float32),
        np.zeros(128, np.float32),
        threshold=0.6,
        confidence_fit={"intercept": 9, "slope": -15},
        pipeline=Pipeline().fingerprint(),
    )
    with Gallery(enrolled) as gallery:
        plain = identify(gallery, photo("two_people.jpg"))
        with_head = identify(gallery, photo("two_people.jpg"), head=head)  # the older keyword still works
        assert [m.name for m in with_head] == [m.name for m in plain] == ["Obama", "Biden"]
        assert np.allclose([m.distance for m in with_head], [m.distance for m in plain], atol=1e-5)
        head.pipeline = dict(head.pipeline, encoder_sha256="f" * 64)
        with pytest.raises(NeuralensError, match="another face encoder"):
            identify(gallery, photo("two_people.jpg"), metric=head)
