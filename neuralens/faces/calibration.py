"""Choosing a gallery's threshold and confidence fit from labelled pairs (``neuralens faces calibrate``).

result = calibrate("pairs.csv", "photos/", folds=10)        # or far=1e-3
result.threshold, result.confidence_fit
with Gallery() as gallery:
    result.store(gallery)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import NeuralensError
from . import metrics
from .gallery import Gallery
from .metric import EuclideanMetric
from .models import Pipeline


@dataclass
class Calibration:
    """A calibrated threshold and confidence fit, how they were chosen and on what.

    ``method`` is 'N-fold cross-validation' (then ``accuracy``, ``accuracy_std``, ``fold_thresholds``) or
    'far RATE' (then ``tar`` and ``far`` measured at the threshold). ``gallery`` is where it was stored."""

    threshold: float
    confidence_fit: Dict[str, float]
    method: str
    pairs: int
    no_face: int = 0
    accuracy: Optional[float] = None
    accuracy_std: Optional[float] = None
    fold_thresholds: List[float] = field(default_factory=list)
    tar: Optional[float] = None
    far: Optional[float] = None
    pairs_file: Optional[str] = None
    gallery: Optional[str] = None
    pipeline: Dict[str, object] = field(default_factory=dict, repr=False)

    def info(self) -> dict:
        """What the gallery records about the calibration (its 'calibration' setting)."""
        if self.accuracy is not None:
            info = {
                "method": self.method,
                "threshold": self.threshold,
                "accuracy": self.accuracy,
                "accuracy_std": self.accuracy_std,
                "fold_thresholds": list(self.fold_thresholds),
            }
        else:
            info = {"method": self.method, "tar": self.tar, "far": self.far}
        info.update({"pairs": self.pairs, "no_face": self.no_face, "pairs_file": self.pairs_file})
        return info

    def to_dict(self) -> dict:
        """A JSON-ready form: {'threshold', 'confidence', 'calibration' (see ``info``), 'gallery'}."""
        return {
            "threshold": self.threshold,
            "confidence": dict(self.confidence_fit),
            "calibration": self.info(),
            "gallery": self.gallery,
        }

    def metric(self) -> EuclideanMetric:
        """The Euclidean metric with this threshold and confidence fit."""
        return EuclideanMetric(self.threshold, self.confidence_fit)

    def store(self, gallery: Gallery) -> None:
        """Save the threshold and fit in ``gallery``'s settings (one transaction; claims its pipeline)."""
        gallery.set_calibration(
            self.threshold, self.confidence_fit, self.info(), self.pipeline or gallery.default_pipeline().fingerprint()
        )
        self.gallery = str(gallery.path)


def calibrate_distances(
    distances: Sequence[float], same: Sequence[bool], far: Optional[float] = None, folds: int = 10
) -> Calibration:
    """Calibrate on a labelled distance list. Without ``far``: the mean of the best thresholds of
    ``folds``-fold cross-validation, with its held-out accuracy; with ``far``: the largest threshold
    whose false-accept rate on these pairs is at most ``far`` (needs 1/far different pairs). Either way a
    logistic fit of same/different on distance for the confidence. Returns a ``Calibration``."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    if far is not None:
        if not 0 < far < 1:
            raise NeuralensError(f"a false-accept rate must be between 0 and 1, got {far}")
        threshold = metrics.threshold_for_far(d, y, far)
        result = Calibration(
            threshold=threshold,
            confidence_fit={},
            method=f"far {far:g}",
            pairs=int(d.size),
            tar=float((d[y] <= threshold).mean()),
            far=float((d[~y] <= threshold).mean()),
        )
    else:
        cv = metrics.cross_validate_threshold(d, y, folds)
        result = Calibration(
            threshold=cv["threshold"],
            confidence_fit={},
            method=f"{folds}-fold cross-validation",
            pairs=int(d.size),
            accuracy=cv["accuracy"],
            accuracy_std=cv["accuracy_std"],
            fold_thresholds=cv["fold_thresholds"],
        )
    result.confidence_fit = metrics.fit_logistic(d, y)
    return result


def calibrate(
    pairs_file,
    images,
    far: Optional[float] = None,
    folds: int = 10,
    pipeline: Optional[Pipeline] = None,
    upsample: int = 1,
    gallery: Optional[Gallery] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Calibration:
    """Calibrate on a labelled pair list (see ``metrics.read_pairs``) whose images are in the folder
    ``images``: each image's central face is encoded (``pipeline``: default the gallery's, else the
    defaults; ``progress(done, total)`` after each image), pairs with a faceless image are left out, and
    ``calibrate_distances`` chooses. With ``gallery`` the result is also stored there. Returns a
    ``Calibration``."""
    if pipeline is None:
        pipeline = gallery.default_pipeline() if gallery is not None else Pipeline()
    pairs = metrics.read_pairs(pairs_file, images)
    found, _ = metrics.embed_images([p for pair in pairs for p in (pair.a, pair.b)], pipeline, upsample, progress)
    d, y = metrics.pair_distances(pairs, found)
    result = calibrate_distances(d, y, far=far, folds=folds)
    result.no_face = sum(v is None for v in found.values())
    result.pairs_file = str(pairs_file)
    result.pipeline = pipeline.fingerprint()
    if gallery is not None:
        result.store(gallery)
    return result
