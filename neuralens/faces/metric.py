"""How far apart two face embeddings are, and where 'same person' ends: one object per metric.

``EuclideanMetric`` is dlib's own (Euclidean distance between 128-d embeddings, 0.6 by default, or the
gallery's calibrated threshold); ``ProjectionMetric`` and ``ClassifierMetric`` are the two heads that
``neuralens faces train`` makes. Everything that compares embeddings (compare, verify, identify,
evaluation, training reports) takes a metric and never asks which kind it is.

    metric = EuclideanMetric()                 # or heads.load_head("office-head.json")
    metric.distances(queries, stored)          # (n, m), smaller = more alike
    metric.decide(0.41).same
"""

from __future__ import annotations

import copy
import hashlib
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import NeuralensError
from . import api
from .api import DEFAULT_CONFIDENCE, DEFAULT_THRESHOLD, Comparison
from .models import ENCODER_KEYS, fingerprint_differences

FEATURES = ("both", "abs", "chi2")
CHI2_EPS = 1e-6


class Metric:
    """A distance between embeddings (smaller = more alike) with its decision threshold and the
    logistic fit that turns a distance into P(same person). Subclasses implement ``pair_distances`` and
    ``distances``; the rest is shared."""

    name = "metric"

    def __init__(self, threshold: float, confidence_fit: Optional[Dict[str, float]] = None):
        self.threshold = float(threshold)
        self.confidence_fit = dict(confidence_fit or DEFAULT_CONFIDENCE)

    def distances(self, queries: np.ndarray, stored: np.ndarray) -> np.ndarray:
        """Every query against every stored embedding: (n, 128), (m, 128) -> an (n, m) array."""
        raise NotImplementedError

    def pair_distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distances of row-aligned pairs: (n, 128), (n, 128) -> an (n,) float64 array."""
        raise NotImplementedError

    def nearest(
        self, queries: np.ndarray, stored: np.ndarray, stored_norms: Optional[np.ndarray] = None
    ) -> Tuple[np.ndarray, np.ndarray]:
        """For each query the nearest stored row. Takes (n, 128) queries, an (m, 128) matrix and optionally
        its squared row norms (a hint some metrics use). Returns (indices (n,), distances (n,))."""
        everything = self.distances(np.atleast_2d(queries), stored)
        best = np.argmin(everything, axis=1)
        return best, everything[np.arange(len(best)), best].astype(np.float64)

    def confidence(self, distance):
        """P(same person) for a distance (or an array of them), from this metric's logistic fit."""
        return api.confidence(distance, self.confidence_fit)

    def decide(self, distance: float, details: Optional[dict] = None) -> Comparison:
        """The verdict for one distance: a ``Comparison`` (same = distance <= threshold, confidence)."""
        distance = float(distance)
        return Comparison(
            same=distance <= self.threshold,
            distance=distance,
            threshold=self.threshold,
            confidence=float(self.confidence(distance)),
            details=dict(details or {}),
        )

    def calibrated(
        self, threshold: Optional[float] = None, confidence_fit: Optional[Dict[str, float]] = None
    ) -> Metric:
        """A copy with another threshold and/or confidence fit (None keeps this one's)."""
        other = copy.copy(self)
        if threshold is not None:
            other.threshold = float(threshold)
        if confidence_fit is not None:
            other.confidence_fit = dict(confidence_fit)
        return other

    def check_pipeline(self, fingerprint: Optional[dict]) -> None:
        """Raise NeuralensError when embeddings from this pipeline cannot be measured by this metric."""

    def fingerprint(self) -> str:
        """A short identifier of the metric and its parameters, e.g. 'euclidean' or 'projection:1a2b...'."""
        return self.name

    def to_dict(self) -> dict:
        """A JSON-ready summary: the metric's fingerprint, threshold and confidence fit."""
        return {"metric": self.fingerprint(), "threshold": self.threshold, "confidence": self.confidence_fit}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold:.4f})"


class EuclideanMetric(Metric):
    """dlib's metric: the Euclidean distance between the encoder's 128-d embeddings (threshold 0.6
    unless calibrated). The default everywhere."""

    name = "euclidean"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, confidence_fit: Optional[Dict[str, float]] = None):
        super().__init__(threshold, confidence_fit)

    def distances(self, queries: np.ndarray, stored: np.ndarray) -> np.ndarray:
        return api.distance(np.atleast_2d(queries), np.atleast_2d(stored))

    def pair_distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float32), axis=1)

    def nearest(self, queries, stored, stored_norms=None):
        # One matrix product per block of rows (api.nearest), never the whole (n, m) matrix.
        return api.nearest(queries, stored, stored_norms)


class HeadMetric(Metric):
    """What the trained heads share: the encoder they were trained on (``pipeline``) and the file's
    notes (``info``)."""

    kind = ""

    def __init__(
        self,
        threshold: float,
        confidence_fit: Optional[Dict[str, float]] = None,
        pipeline: Optional[dict] = None,
        info: Optional[dict] = None,
    ):
        super().__init__(threshold, confidence_fit)
        self.pipeline = dict(pipeline or {})
        self.info = dict(info or {})

    def check_pipeline(self, fingerprint: Optional[dict]) -> None:
        """Refuse embeddings from another encoder, landmark model or alignment than the head saw."""
        if fingerprint and fingerprint_differences(self.pipeline, fingerprint, ENCODER_KEYS):
            raise NeuralensError("this head was trained on embeddings of another face encoder or alignment")

    def _digest(self, *arrays) -> str:
        digest = hashlib.sha256()
        for array in arrays:
            digest.update(np.ascontiguousarray(array, dtype="<f4").tobytes())
        return f"{self.name}:{digest.hexdigest()[:16]}"


class ProjectionMetric(HeadMetric):
    """The Siamese head trained with the triplet loss: Euclidean distance after the linear map
    f(x) = W x + b (W (128, 128), b (128,))."""

    name = kind = "projection"

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray,
        threshold: float,
        confidence_fit: Optional[Dict[str, float]] = None,
        pipeline: Optional[dict] = None,
        info: Optional[dict] = None,
    ):
        super().__init__(threshold, confidence_fit, pipeline, info)
        self.weight = np.asarray(weight, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)

    def project(self, x: np.ndarray) -> np.ndarray:
        """Apply the projection: (n, 128) -> (n, 128)."""
        return np.asarray(x, dtype=np.float32) @ self.weight.T + self.bias

    def distances(self, queries, stored):
        return api.distance(self.project(np.atleast_2d(queries)), self.project(np.atleast_2d(stored)))

    def pair_distances(self, a, b):
        return np.linalg.norm(self.project(a) - self.project(b), axis=1).astype(np.float64)

    def fingerprint(self) -> str:
        return self._digest(self.weight, self.bias)


def pair_features(a: np.ndarray, b: np.ndarray, features: str = "both") -> np.ndarray:
    """Features of embedding pairs for the classifier head: 'abs' = |a - b|, 'chi2' = the chi-square terms
    (a - b)^2 / (|a| + |b|), 'both' = the two side by side. The embeddings are signed, so the usual
    (a + b) denominator of the chi-square distance, meant for non-negative features, is taken in absolute
    values. Takes two (n, 128) arrays; returns (n, 128) or (n, 256)."""
    if features not in FEATURES:
        raise NeuralensError(f"unknown pair features '{features}' (choose from {', '.join(FEATURES)})")
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    diff = a - b
    parts = []
    if features in ("both", "abs"):
        parts.append(np.abs(diff))
    if features in ("both", "chi2"):
        parts.append(diff * diff / (np.abs(a) + np.abs(b) + CHI2_EPS))
    return np.concatenate(parts, axis=-1)


class ClassifierMetric(HeadMetric):
    """The binary classification head: logistic regression on the pair features (see ``pair_features``);
    the distance is 1 - P(same)."""

    name = kind = "classifier"

    def __init__(
        self,
        weight: np.ndarray,
        bias: float,
        threshold: float,
        confidence_fit: Optional[Dict[str, float]] = None,
        features: str = "both",
        pipeline: Optional[dict] = None,
        info: Optional[dict] = None,
    ):
        super().__init__(threshold, confidence_fit, pipeline, info)
        if features not in FEATURES:
            raise NeuralensError(f"unknown pair features '{features}' (choose from {', '.join(FEATURES)})")
        self.weight = np.asarray(weight, dtype=np.float32)
        self.bias = float(bias)
        self.features = features

    def same_probability(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The classifier's P(same) for row-aligned pairs (n, 128), (n, 128) -> (n,)."""
        logit = pair_features(a, b, self.features) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))

    def pair_distances(self, a, b):
        return 1.0 - self.same_probability(a, b).astype(np.float64)

    def distances(self, queries, stored, chunk: int = 65536):
        queries = np.atleast_2d(queries)
        out = np.empty((len(queries), len(stored)), dtype=np.float64)
        for i, q in enumerate(queries):
            for start in range(0, len(stored), chunk):
                part = stored[start : start + chunk]
                out[i, start : start + len(part)] = 1.0 - self.same_probability(np.broadcast_to(q, part.shape), part)
        return out

    def fingerprint(self) -> str:
        return self._digest(self.weight, [self.bias], [FEATURES.index(self.features)])


def as_metric(
    metric: Optional[Metric] = None, head: Optional[Metric] = None, default: Optional[Metric] = None
) -> Metric:
    """The one place where the optional ``metric=`` / older ``head=`` arguments become a metric: the one
    given, else ``default``, else ``EuclideanMetric()``."""
    if metric is not None and head is not None and metric is not head:
        raise NeuralensError("give a metric or a head, not both")
    chosen = metric if metric is not None else head
    if chosen is None:
        return default if default is not None else EuclideanMetric()
    if not isinstance(chosen, Metric):
        raise NeuralensError(f"expected a face metric (e.g. from load_head), got {type(chosen).__name__}")
    return chosen
