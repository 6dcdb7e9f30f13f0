"""Verification metrics on labelled pairs, pair-list readers and threshold/confidence calibration.

Conventions: a pair is accepted as 'same person' when its distance is <= the threshold. ``same`` arrays
are booleans (True = same person). Everything is plain numpy.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import NeuralensError
from . import api
from .metric import Metric, as_metric
from .models import Pipeline

FARS = (1e-2, 1e-3)


def _arrays(distances: Sequence[float], same: Sequence[bool]) -> Tuple[np.ndarray, np.ndarray]:
    """Check and convert a distance list and its labels; both classes must be present."""
    d = np.asarray(distances, dtype=np.float64).ravel()
    y = np.asarray(same, dtype=bool).ravel()
    if d.shape != y.shape:
        raise NeuralensError(f"{d.size} distances but {y.size} labels")
    if not np.all(np.isfinite(d)):
        raise NeuralensError("distances must be finite numbers")
    if y.all() or not y.any():
        raise NeuralensError(
            f"need both same-person and different-person pairs (got {int(y.sum())} same, {int((~y).sum())} different)"
        )
    return d, y


def accuracy(distances: Sequence[float], same: Sequence[bool], threshold: float) -> float:
    """Fraction of pairs classified right when 'same' means distance <= ``threshold``."""
    d, y = _arrays(distances, same)
    return float(np.mean((d <= threshold) == y))


def roc_points(distances: Sequence[float], same: Sequence[bool]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve: for each threshold (-inf, then every distinct distance ascending) the true-accept
    rate (TAR, same pairs accepted) and false-accept rate (FAR, different pairs accepted).
    Returns (thresholds, tar, far)."""
    d, y = _arrays(distances, same)
    thresholds, inverse = np.unique(d, return_inverse=True)
    positives = np.bincount(inverse, weights=y, minlength=thresholds.size)
    negatives = np.bincount(inverse, weights=~y, minlength=thresholds.size)
    tar = np.concatenate([[0.0], np.cumsum(positives) / y.sum()])
    far = np.concatenate([[0.0], np.cumsum(negatives) / (~y).sum()])
    return np.concatenate([[-np.inf], thresholds]), tar, far


def roc_auc(distances: Sequence[float], same: Sequence[bool]) -> float:
    """Area under the ROC curve = the probability that a random same pair is closer than a random
    different pair (ties count half), computed from the trapezoids of ``roc_points``."""
    _, tar, far = roc_points(distances, same)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2.0))


def equal_error_rate(distances: Sequence[float], same: Sequence[bool]) -> float:
    """The equal error rate: where the false-accept rate equals the false-reject rate (1 - TAR), found
    by linear interpolation between the two ROC points on either side of the crossing."""
    _, tar, far = roc_points(distances, same)
    frr = 1.0 - tar
    gap = frr - far  # starts at 1 (accept nothing), ends at -1 (accept everything)
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0:
        return float(far[i])
    s = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(far[i - 1] + s * (far[i] - far[i - 1]))


def tar_at_far(distances: Sequence[float], same: Sequence[bool], target: float) -> Optional[float]:
    """The highest true-accept rate whose false-accept rate is <= ``target``, or None when there are
    fewer than 1/target different pairs (too few to measure such a rate)."""
    d, y = _arrays(distances, same)
    if (~y).sum() < math.ceil(1.0 / target - 1e-9):
        return None
    _, tar, far = roc_points(d, y)
    return float(tar[far <= target + 1e-12].max())


def best_threshold(distances: Sequence[float], same: Sequence[bool]) -> Tuple[float, float]:
    """The threshold with the highest accuracy and that accuracy. Candidates are the midpoints between
    consecutive distinct distances (and just outside the range); the smallest best one wins ties."""
    d, y = _arrays(distances, same)
    values = np.unique(d)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1e-6]])
    # Accuracy for each candidate at once: same pairs accepted + different pairs rejected.
    accepted_same = np.searchsorted(np.sort(d[y]), candidates, side="right")
    accepted_diff = np.searchsorted(np.sort(d[~y]), candidates, side="right")
    accuracies = (accepted_same + ((~y).sum() - accepted_diff)) / d.size
    best = int(np.argmax(accuracies))
    return float(candidates[best]), float(accuracies[best])


def threshold_for_far(distances: Sequence[float], same: Sequence[bool], target: float) -> float:
    """The largest threshold whose false-accept rate on these pairs is <= ``target`` (needs at least
    1/target different pairs)."""
    d, y = _arrays(distances, same)
    negatives = np.sort(d[~y])
    if negatives.size < math.ceil(1.0 / target - 1e-9):
        raise NeuralensError(
            f"a false-accept rate of {target:g} needs at least {math.ceil(1 / target)} "
            f"different-person pairs; the list has {negatives.size}"
        )
    allowed = int(math.floor(target * negatives.size + 1e-9))
    if allowed >= negatives.size:
        return float(negatives[-1])
    # Just below the first different pair that must be rejected (ties with it are rejected too).
    return float(np.nextafter(negatives[allowed], -np.inf))


def fit_logistic(
    distances: Sequence[float], same: Sequence[bool], ridge: float = 1.0, iterations: int = 50
) -> Dict[str, float]:
    """Logistic regression of same/different on distance by Newton's method: P(same) =
    sigmoid(intercept + slope * distance). The slope has a small ridge penalty (on standardised
    distances) so that perfectly separated pairs still give a finite fit. Returns {'intercept', 'slope'}."""
    d, y = _arrays(distances, same)
    mean, scale = float(d.mean()), float(d.std()) or 1.0
    x = np.stack([np.ones_like(d), (d - mean) / scale], axis=1)
    w = np.zeros(2)
    penalty = np.diag([0.0, ridge])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    slope = w[1] / scale
    return {"intercept": float(w[0] - slope * mean), "slope": float(slope)}


def stratified_folds(same: Sequence[bool], folds: int) -> np.ndarray:
    """A fold number for every pair: the i-th same pair and the i-th different pair (in list order)
    go to fold i mod ``folds``, so every fold has both kinds in the list's proportions."""
    y = np.asarray(same, dtype=bool)
    fold = np.empty(y.size, dtype=np.int64)
    for label in (True, False):
        where = np.flatnonzero(y == label)
        fold[where] = np.arange(where.size) % folds
    return fold


def cross_validate_threshold(distances: Sequence[float], same: Sequence[bool], folds: int = 10) -> dict:
    """The LFW protocol: for each of ``folds`` folds choose the best threshold on the others and measure
    accuracy on it. Returns {'threshold' (the mean of the fold thresholds), 'accuracy' and
    'accuracy_std' (over the held-out folds), 'fold_thresholds'}."""
    if folds < 2:
        raise NeuralensError(f"cross-validation needs at least 2 folds, got {folds}")
    d, y = _arrays(distances, same)
    if min(int(y.sum()), int((~y).sum())) < folds:
        raise NeuralensError(
            f"{folds}-fold cross-validation needs at least {folds} same and {folds} "
            f"different pairs (got {int(y.sum())} and {int((~y).sum())})"
        )
    fold = stratified_folds(y, folds)
    thresholds, accuracies = [], []
    for k in range(folds):
        train = fold != k
        threshold, _ = best_threshold(d[train], y[train])
        thresholds.append(threshold)
        accuracies.append(float(np.mean((d[~train] <= threshold) == y[~train])))
    return {
        "threshold": float(np.mean(thresholds)),
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "fold_thresholds": [float(t) for t in thresholds],
    }


def verification_metrics(distances: Sequence[float], same: Sequence[bool], threshold: float) -> dict:
    """Every verification metric for a labelled distance list at ``threshold``: accuracy, best threshold
    and its accuracy, ROC AUC, EER, and TAR at FAR 1e-2 / 1e-3 (None where there are too few pairs)."""
    d, y = _arrays(distances, same)
    best, best_acc = best_threshold(d, y)
    return {
        "pairs_used": int(d.size),
        "same_pairs": int(y.sum()),
        "different_pairs": int((~y).sum()),
        "threshold": float(threshold),
        "accuracy": accuracy(d, y, threshold),
        "best_threshold": best,
        "best_accuracy": best_acc,
        "roc_auc": roc_auc(d, y),
        "eer": equal_error_rate(d, y),
        "tar_at_far": {f"{far:g}": tar_at_far(d, y, far) for far in FARS},
    }


# --- pair lists ---------------------------------------------------------------------------------------
@dataclass
class Pair:
    """Two image paths and whether they show the same person."""

    a: Path
    b: Path
    same: bool


_YES = {"yes", "y", "true", "1", "same"}
_NO = {"no", "n", "false", "0", "different"}


def _read_csv(text: str, path: Path, images: Path) -> List[Pair]:
    """CSV with a header row and columns file_x, file_y, Decision (Yes/No)."""
    reader = csv.DictReader(text.splitlines())
    fields = {name.strip().lower(): name for name in reader.fieldnames or []}
    missing = [c for c in ("file_x", "file_y", "decision") if c not in fields]
    if missing:
        raise NeuralensError(f"{path}: CSV needs the columns file_x,file_y,Decision (missing {', '.join(missing)})")
    pairs = []
    for line, row in enumerate(reader, start=2):
        decision = (row.get(fields["decision"]) or "").strip().lower()
        if decision not in _YES | _NO:
            raise NeuralensError(f"{path}:{line}: Decision must be Yes or No, got {decision!r}")
        x = (row.get(fields["file_x"]) or "").strip()
        y = (row.get(fields["file_y"]) or "").strip()
        if not x or not y:
            raise NeuralensError(f"{path}:{line}: empty file name")
        pairs.append(Pair(images / x, images / y, decision in _YES))
    return pairs


def _lfw_image(images: Path, name: str, number: str, where: str) -> Path:
    try:
        return images / name / f"{name}_{int(number):04d}.jpg"
    except ValueError:
        raise NeuralensError(f"{where}: image number must be a whole number, got {number!r}") from None


def _read_lfw(text: str, path: Path, images: Path) -> List[Pair]:
    """LFW's pairs.txt: an optional header line of counts, then 'name n1 n2' (same person) or
    'name1 n1 name2 n2' (different people); images at DIR/name/name_NNNN.jpg."""
    pairs = []
    for line, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields or (line == 1 and all(f.isdigit() for f in fields)):
            continue
        where = f"{path}:{line}"
        if len(fields) == 3:
            pairs.append(
                Pair(
                    _lfw_image(images, fields[0], fields[1], where),
                    _lfw_image(images, fields[0], fields[2], where),
                    True,
                )
            )
        elif len(fields) == 4:
            pairs.append(
                Pair(
                    _lfw_image(images, fields[0], fields[1], where),
                    _lfw_image(images, fields[2], fields[3], where),
                    False,
                )
            )
        else:
            raise NeuralensError(f"{where}: expected 'name n1 n2' or 'name1 n1 name2 n2' (LFW pairs format)")
    return pairs


def read_pairs(path, images) -> List[Pair]:
    """Read a pair list: a CSV with columns file_x,file_y,Decision (Yes/No), paths relative to
    ``images``, or LFW's pairs.txt format. Returns a list of ``Pair``; every image must exist."""
    path, images = Path(path), Path(images)
    if not path.is_file():
        raise NeuralensError(f"{path}: no such file")
    if not images.is_dir():
        raise NeuralensError(f"{images}: no such folder (--images)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise NeuralensError(f"{path}: cannot read the pair list ({exc})") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    pairs = _read_csv(text, path, images) if "," in first else _read_lfw(text, path, images)
    if not pairs:
        raise NeuralensError(f"{path}: no pairs in the list")
    missing = sorted({str(p) for pair in pairs for p in (pair.a, pair.b) if not p.is_file()})
    if missing:
        raise NeuralensError(f"{path}: {len(missing)} image(s) not found, e.g. {missing[0]}")
    return pairs


def embed_images(
    paths: Iterable[Path], pipeline: Pipeline, upsample: int = 1, progress: Optional[Callable[[int, int], None]] = None
) -> Tuple[Dict[Path, Optional[np.ndarray]], float]:
    """The embedding of the central face of each image (None when no face is found), each image encoded
    once. Returns ({path: embedding or None}, seconds per image)."""
    unique = list(dict.fromkeys(paths))
    result: Dict[Path, Optional[np.ndarray]] = {}
    start = time.perf_counter()
    for i, path in enumerate(unique, start=1):
        array = api.to_array(path)
        face = api.central_face(
            api.encode(array, pipeline=pipeline, upsample=upsample), (array.shape[1], array.shape[0])
        )
        result[path] = None if face is None else face.embedding
        if progress:
            progress(i, len(unique))
    seconds = (time.perf_counter() - start) / max(1, len(unique))
    return result, seconds


def pair_distances(
    pairs: Sequence[Pair],
    embeddings: Dict[Path, Optional[np.ndarray]],
    metric: Optional[Metric] = None,
    head: Optional[Metric] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Distances (by ``metric``, default Euclidean; ``head=`` is its older name) and labels of the pairs
    whose two images both have a face. Returns (distances, same)."""
    metric = as_metric(metric, head)
    usable = [p for p in pairs if embeddings.get(p.a) is not None and embeddings.get(p.b) is not None]
    if not usable:
        return np.zeros(0), np.zeros(0, dtype=bool)
    a = np.stack([embeddings[p.a] for p in usable])
    b = np.stack([embeddings[p.b] for p in usable])
    return metric.pair_distances(a, b), np.array([p.same for p in usable], dtype=bool)


def evaluate_pairs(
    pairs_file,
    images,
    threshold: Optional[float] = None,
    pipeline: Optional[Pipeline] = None,
    metric: Optional[Metric] = None,
    upsample: int = 1,
    progress: Optional[Callable[[int, int], None]] = None,
    head: Optional[Metric] = None,
) -> dict:
    """Run the face pipeline on a labelled pair list and report ``verification_metrics`` of ``metric``
    (default Euclidean) at ``threshold`` (default: the metric's own), plus the number of pairs, images,
    images without a face and seconds per image. Pairs with a faceless image are left out of the metrics
    (and counted). The report also holds the 'distances' and 'same' arrays."""
    pairs = read_pairs(pairs_file, images)
    pipeline = pipeline or Pipeline()
    metric = as_metric(metric, head)
    metric.check_pipeline(pipeline.fingerprint())
    embeddings, seconds = embed_images([p for pair in pairs for p in (pair.a, pair.b)], pipeline, upsample, progress)
    d, y = pair_distances(pairs, embeddings, metric)
    report = {
        "pairs": len(pairs),
        "images": len(embeddings),
        "no_face": sum(1 for e in embeddings.values() if e is None),
        "seconds_per_image": seconds,
    }
    if d.size == 0 or y.all() or not y.any():
        raise NeuralensError(
            f"{pairs_file}: after leaving out {report['no_face']} image(s) without a face, "
            f"{int(y.sum())} same and {int((~y).sum())} different pairs are left; need both"
        )
    report.update(verification_metrics(d, y, metric.threshold if threshold is None else threshold))
    report["distances"], report["same"] = d, y
    return report
