"""Verification metrics on hand-made distance lists (values worked out by hand in the comments),
calibration fits, and the pair-list readers and evaluation on real photos."""

import math

import numpy as np
import pytest

from neuralens.errors import NeuralensError
from neuralens.faces import metrics
from neuralens.faces.models import Pipeline

# Same pairs at 0.1, 0.3, 0.5; different pairs at 0.4, 0.7, 0.9.
D = [0.1, 0.3, 0.5, 0.4, 0.7, 0.9]
Y = [True, True, True, False, False, False]


def test_accuracy_at_a_threshold():
    # At 0.6: accepted 0.1 0.3 0.5 (right) and 0.4 (wrong); rejected 0.7 0.9 (right) -> 5/6.
    assert metrics.accuracy(D, Y, 0.6) == pytest.approx(5 / 6)
    # At 0.2: only 0.1 accepted -> 1 same right + 3 different right = 4/6.
    assert metrics.accuracy(D, Y, 0.2) == pytest.approx(4 / 6)


def test_roc_points():
    thresholds, tar, far = metrics.roc_points(D, Y)
    assert list(thresholds[1:]) == [0.1, 0.3, 0.4, 0.5, 0.7, 0.9]
    assert np.allclose(tar, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert np.allclose(far, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])


def test_auc_eer_and_best_threshold():
    # AUC: of the 9 (same, different) pairs, the same one is closer in 3 + 3 + 2 = 8.
    assert metrics.roc_auc(D, Y) == pytest.approx(8 / 9)
    # EER: at threshold 0.4, FAR = 1/3 and FRR = 1 - 2/3 = 1/3.
    assert metrics.equal_error_rate(D, Y) == pytest.approx(1 / 3)
    # Candidates 0.35 and 0.6 both reach 5/6; the smaller wins.
    assert metrics.best_threshold(D, Y) == (pytest.approx(0.35), pytest.approx(5 / 6))


def test_eer_interpolates_between_roc_points():
    # Same 0.1, 0.2; different 0.15, 0.3. ROC (far, frr): (0,1) (0,.5) (.5,.5) (.5,0) (1,0).
    # FRR - FAR: 1, .5, 0 -> exactly 0 at threshold 0.15 -> EER 0.5.
    assert metrics.equal_error_rate([0.1, 0.2, 0.15, 0.3], [True, True, False, False]) == pytest.approx(0.5)
    # Same 0.1, 0.3, 0.35; different 0.2, 0.4, 0.5 (thirds). Points (far, frr): (0,1) (0,2/3) (1/3,2/3)
    # (1/3,1/3) (1/3,0) ... the gap FRR-FAR goes 1/3 -> 0 at threshold 0.3 -> EER 1/3.
    assert metrics.equal_error_rate(
        [0.1, 0.3, 0.35, 0.2, 0.4, 0.5], [True, True, True, False, False, False]
    ) == pytest.approx(1 / 3)
    # A same and a different pair tied at 0.2 make a diagonal ROC segment. Same 0.1, 0.2; different 0.2,
    # 0.3. Points (far, frr): (0,1) (0,.5) at 0.1, (.5,0) at 0.2. On the segment far = .5s, frr = .5 - .5s,
    # equal at s = .5 -> EER 0.25.
    assert metrics.equal_error_rate([0.1, 0.2, 0.2, 0.3], [True, True, False, False]) == pytest.approx(0.25)


def test_eer_on_a_crossing_inside_a_segment():
    # Same 0.1, 0.3; different 0.2. ROC points (far, frr): (0,1) (0,.5) (1,.5) (1,0).
    # Between (0,.5) and (1,.5): far = s, frr = .5 -> equal at s = .5 -> EER 0.5.
    assert metrics.equal_error_rate([0.1, 0.3, 0.2], [True, True, False]) == pytest.approx(0.5)
    # Same 0.1, 0.2, 0.4, 0.5; different 0.3 (one). Points: (0,1) (0,.75) (0,.5) (1,.5) ...
    # -> crossing on the segment (0,.5)-(1,.5) at far = .5.
    assert metrics.equal_error_rate([0.1, 0.2, 0.4, 0.5, 0.3], [True] * 4 + [False]) == pytest.approx(0.5)


def test_tar_at_far_needs_enough_different_pairs():
    negatives = [0.5 + i / 100 for i in range(100)]  # 0.50 .. 1.49
    positives = [0.2] * 50 + [0.55] * 50
    d, y = positives + negatives, [True] * 100 + [False] * 100
    # FAR <= 1/100 allows one false accept: threshold 0.50 accepts the 50 positives at 0.2 only
    # (0.55 also accepts a second different pair, 0.51) -> TAR 0.5.
    assert metrics.tar_at_far(d, y, 1e-2) == pytest.approx(0.5)
    assert metrics.tar_at_far(d, y, 1e-3) is None  # 100 different pairs cannot measure 1e-3
    assert metrics.tar_at_far(D, Y, 1e-2) is None
    report = metrics.verification_metrics(d, y, 0.6)
    assert report["tar_at_far"] == {"0.01": pytest.approx(0.5), "0.001": None}


def test_threshold_for_a_false_accept_rate():
    negatives = np.array([0.5 + i / 100 for i in range(100)])
    d = np.concatenate([[0.1, 0.2], negatives])
    y = np.array([True, True] + [False] * 100)
    t = metrics.threshold_for_far(d, y, 1e-2)
    assert t == np.nextafter(0.51, -np.inf)  # accepts exactly one different pair (0.50)
    assert (negatives <= t).sum() == 1
    with pytest.raises(NeuralensError, match="needs at least 1000"):
        metrics.threshold_for_far(d, y, 1e-3)


def test_cross_validated_threshold_and_folds():
    assert list(metrics.stratified_folds([True, False, True, False, True, True], 2)) == [0, 0, 1, 1, 0, 1]
    d = [0.2, 0.3] * 10 + [0.8, 0.9] * 10
    y = [True] * 20 + [False] * 20
    result = metrics.cross_validate_threshold(d, y, 10)
    # Every fold's training part has same pairs up to 0.3 and different from 0.8: midpoint 0.55.
    assert result["threshold"] == pytest.approx(0.55) and result["accuracy"] == 1.0
    assert len(result["fold_thresholds"]) == 10
    with pytest.raises(NeuralensError, match="10-fold"):
        metrics.cross_validate_threshold(D, Y, 10)


def test_logistic_fit_recovers_a_known_curve():
    rng = np.random.default_rng(1)
    d = rng.uniform(0, 1.2, 20000)
    y = rng.uniform(size=d.size) < 1 / (1 + np.exp(-(6.0 - 10.0 * d)))
    fit = metrics.fit_logistic(d, y)
    assert fit["intercept"] == pytest.approx(6.0, abs=0.4) and fit["slope"] == pytest.approx(-10.0, abs=0.6)
    # The intercept is unpenalised, so the fitted probabilities sum to the number of same pairs.
    p = 1 / (1 + np.exp(-(fit["intercept"] + fit["slope"] * d)))
    assert p.sum() == pytest.approx(y.sum(), rel=1e-6)
    separated = metrics.fit_logistic([0.2, 0.3, 0.8, 0.9], [True, True, False, False])
    assert math.isfinite(separated["slope"]) and separated["slope"] < 0


def test_metrics_refuse_one_class_lists():
    with pytest.raises(NeuralensError, match="need both"):
        metrics.roc_auc([0.1, 0.2], [True, True])
    with pytest.raises(NeuralensError, match="2 distances but 1 labels"):
        metrics.accuracy([0.1, 0.2], [True], 0.5)


# --- pair lists -----------------------------------------------------------------------------------
@pytest.fixture()
def lfw_tree(tmp_path, photo, faceless):
    """An LFW-style folder: DIR/Name/Name_0001.jpg ..."""
    import shutil

    layout = {
        "Barack_Obama": ["obama.jpg", "obama2.jpg", "obama_small.jpg"],
        "Joe_Biden": ["biden.jpg", "biden2.jpg"],
        "Nobody": [faceless],
    }
    for person, files in layout.items():
        (tmp_path / "lfw" / person).mkdir(parents=True)
        for i, name in enumerate(files, start=1):
            source = name if not isinstance(name, str) else photo(name)
            shutil.copy(source, tmp_path / "lfw" / person / f"{person}_{i:04d}.jpg")
    return tmp_path / "lfw"


def test_read_lfw_pairs(tmp_path, lfw_tree):
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("1\t3\nBarack_Obama\t1\t2\nJoe_Biden\t1\t2\nBarack_Obama\t1\tJoe_Biden\t2\n")
    pairs = metrics.read_pairs(pairs_file, lfw_tree)
    assert [p.same for p in pairs] == [True, True, False]
    assert pairs[2].a == lfw_tree / "Barack_Obama" / "Barack_Obama_0001.jpg"
    assert pairs[2].b == lfw_tree / "Joe_Biden" / "Joe_Biden_0002.jpg"
    pairs_file.write_text("Barack_Obama\t1\n")
    with pytest.raises(NeuralensError, match=r"pairs.txt:1: expected"):
        metrics.read_pairs(pairs_file, lfw_tree)
    pairs_file.write_text("Barack_Obama\t1\t9\n")
    with pytest.raises(NeuralensError, match="1 image\\(s\\) not found"):
        metrics.read_pairs(pairs_file, lfw_tree)


def test_read_csv_pairs(tmp_path, lfw_tree):
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        "file_x,file_y,Decision\nBarack_Obama/Barack_Obama_0001.jpg,"
        "Barack_Obama/Barack_Obama_0002.jpg,Yes\nBarack_Obama/Barack_Obama_0001.jpg,"
        "Joe_Biden/Joe_Biden_0001.jpg,no\n"
    )
    assert [p.same for p in metrics.read_pairs(csv_file, lfw_tree)] == [True, False]
    csv_file.write_text(
        "file_x,file_y,Decision\nBarack_Obama/Barack_Obama_0001.jpg,Barack_Obama/Barack_Obama_0002.jpg,Maybe\n"
    )
    with pytest.raises(NeuralensError, match=r"pairs.csv:2: Decision must be Yes or No"):
        metrics.read_pairs(csv_file, lfw_tree)
    csv_file.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(NeuralensError, match="missing file_x, file_y, decision"):
        metrics.read_pairs(csv_file, lfw_tree)


def test_evaluate_pairs_on_real_photos(tmp_path, lfw_tree):
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text(
        "Barack_Obama\t1\t2\nBarack_Obama\t1\t3\nBarack_Obama\t2\t3\nJoe_Biden\t1\t2\n"
        "Barack_Obama\t1\tJoe_Biden\t1\nBarack_Obama\t2\tJoe_Biden\t2\n"
        "Barack_Obama\t3\tJoe_Biden\t1\nBarack_Obama\t3\tNobody\t1\n"
    )
    report = metrics.evaluate_pairs(pairs_file, lfw_tree, pipeline=Pipeline(), upsample=0)
    assert report["pairs"] == 8 and report["pairs_used"] == 7 and report["no_face"] == 1
    assert report["images"] == 6 and report["seconds_per_image"] > 0
    assert report["accuracy"] == 1.0 and report["roc_auc"] == 1.0 and report["eer"] == 0.0
    assert report["same_pairs"] == 4 and report["different_pairs"] == 3
    assert report["tar_at_far"] == {"0.01": None, "0.001": None}


def test_evaluate_pairs_with_a_head_uses_its_distances_and_threshold(tmp_path, lfw_tree):
    from neuralens.faces import ProjectionMetric

    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("Barack_Obama\t1\t2\nJoe_Biden\t1\t2\nBarack_Obama\t1\tJoe_Biden\t1\n")
    head = ProjectionMetric(
        2 * np.eye(128, dtype=np.float32),
        np.zeros(128, np.float32),
        threshold=1.2,
        confidence_fit={"intercept": 9, "slope": -15},
        pipeline=Pipeline().fingerprint(),
    )
    raw = metrics.evaluate_pairs(pairs_file, lfw_tree, upsample=0)
    doubled = metrics.evaluate_pairs(pairs_file, lfw_tree, head=head, upsample=0)
    assert np.allclose(doubled["distances"], 2 * raw["distances"], atol=1e-5)  # W = 2I doubles distances
    assert doubled["threshold"] == 1.2 and doubled["accuracy"] == 1.0
    head.pipeline = dict(head.pipeline, alignment="something else")
    with pytest.raises(NeuralensError, match="another face encoder or alignment"):
        metrics.evaluate_pairs(pairs_file, lfw_tree, head=head, upsample=0)


def test_calibrate_distances_by_cross_validation_and_by_false_accept_rate():
    from neuralens.faces import calibrate_distances

    result = calibrate_distances(D, Y, folds=2)
    expected = metrics.cross_validate_threshold(D, Y, 2)
    assert result.method == "2-fold cross-validation" and result.threshold == pytest.approx(expected["threshold"])
    assert result.accuracy == pytest.approx(expected["accuracy"]) and result.pairs == 6
    assert result.confidence_fit == pytest.approx(metrics.fit_logistic(D, Y))
    # At most half the 3 different pairs (0.4, 0.7, 0.9) accepted: just below 0.7, where all same pairs pass.
    by_far = calibrate_distances(D, Y, far=0.5)
    assert by_far.threshold == pytest.approx(0.7) and by_far.threshold < 0.7
    assert by_far.tar == 1.0 and by_far.far == pytest.approx(1 / 3) and by_far.accuracy is None
    assert by_far.to_dict()["calibration"] == {
        "method": "far 0.5",
        "tar": 1.0,
        "far": pytest.approx(1 / 3),
        "pairs": 6,
        "no_face": 0,
        "pairs_file": None,
    }
    with pytest.raises(NeuralensError, match="between 0 and 1"):
        calibrate_distances(D, Y, far=2)


def test_calibrate_a_pair_list_into_a_gallery(tmp_path, lfw_tree):
    from neuralens.faces import Gallery, calibrate

    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text(
        "Barack_Obama\t1\t2\nBarack_Obama\t1\t3\nJoe_Biden\t1\t2\nBarack_Obama\t1\tJoe_Biden\t1\n"
        "Barack_Obama\t2\tJoe_Biden\t2\nBarack_Obama\t3\tNobody\t1\n"
    )
    seen = []
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        result = calibrate(
            pairs_file,
            lfw_tree,
            folds=2,
            upsample=0,
            gallery=gallery,
            progress=lambda done, total: seen.append((done, total)),
        )
        assert seen[-1] == (6, 6) and result.no_face == 1 and result.pairs == 5
        assert gallery.threshold == pytest.approx(result.threshold) and 0.3 < result.threshold < 0.9
        assert gallery.confidence_fit == pytest.approx(result.confidence_fit)
        assert gallery.setting("calibration") == result.info() and result.gallery == str(gallery.path)
        assert gallery.metric().threshold == pytest.approx(result.threshold)
    data = result.to_dict()
    assert set(data) == {"threshold", "confidence", "calibration", "gallery"}
    assert data["calibration"]["method"] == "2-fold cross-validation" and data["calibration"]["pairs_file"]
