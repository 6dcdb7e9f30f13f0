"""The head file written by ``neuralens faces train``: both trained heads as JSON numbers (no pickle).

The file holds the projection head and the classifier head, each with its own threshold and confidence
fit, the encoder's fingerprint, and which head to apply by default. ``load_head`` reads one of them back as
a ``Metric``; numpy only (no torch), so using a head costs nothing at start-up.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from ..errors import NeuralensError
from .metric import FEATURES, ClassifierMetric, HeadMetric, ProjectionMetric
from .models import EMBEDDING_DIM

HEAD_FORMAT = "neuralens-face-head"
HEAD_KINDS = ("projection", "classifier")


@dataclass
class TrainedHeads:
    """Both heads of one training run and the one to apply (``use``); ``info`` holds the report."""

    projection: ProjectionMetric
    classifier: ClassifierMetric
    use: str = "projection"
    info: Dict[str, object] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> HeadMetric:
        if kind not in HEAD_KINDS:
            raise NeuralensError(f"unknown head '{kind}' (choose projection or classifier)")
        return self.projection if kind == "projection" else self.classifier

    @property
    def chosen(self) -> HeadMetric:
        """The head the file applies by default."""
        return self[self.use]

    def to_dict(self) -> dict:
        """The JSON form written to the head file."""
        chosen = self.chosen
        calibration = {
            kind: {"threshold": self[kind].threshold, "confidence": self[kind].confidence_fit} for kind in HEAD_KINDS
        }
        return {
            "format": HEAD_FORMAT,
            "version": 1,
            "kind": self.use,
            "threshold": chosen.threshold,
            "confidence": chosen.confidence_fit,
            "pipeline": chosen.pipeline,
            "info": {**self.info, "calibration": calibration},
            "projection": {
                "weight": self.projection.weight.astype(float).tolist(),
                "bias": self.projection.bias.astype(float).tolist(),
            },
            "classifier": {
                "weight": self.classifier.weight.astype(float).tolist(),
                "bias": float(self.classifier.bias),
                "features": self.classifier.features,
            },
        }

    def save(self, path) -> Path:
        """Write the head file as JSON (atomically: a temporary file, then a rename). Returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict()))
        os.replace(tmp, path)
        return path


def _array(value, shape: Tuple[int, ...], what: str, path: Path) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise NeuralensError(f"{path}: damaged face head ({what} should be {shape} numbers)")
    return array


def load_head(path, kind: Optional[str] = None) -> HeadMetric:
    """Read a head file saved by ``train``. ``kind`` picks 'projection' or 'classifier' instead of the one
    the file recommends. Returns a ``ProjectionMetric`` or ``ClassifierMetric`` with its own threshold
    and confidence fit."""
    path = Path(path)
    if not path.is_file():
        raise NeuralensError(f"{path}: no such head file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NeuralensError(f"{path}: not a face head file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("format") != HEAD_FORMAT:
        raise NeuralensError(f"{path}: not a neuralens face head file")
    kind = kind or data.get("kind")
    if kind not in HEAD_KINDS or not isinstance(data.get(kind), dict):
        raise NeuralensError(f"{path}: has no '{kind}' head")
    threshold, fit = data.get("threshold"), data.get("confidence")
    if kind != data.get("kind"):  # the top-level threshold and fit belong to the recommended kind
        threshold = fit = None
        calibration = ((data.get("info") or {}).get("calibration") or {}).get(kind)
        if calibration:
            threshold, fit = calibration.get("threshold"), calibration.get("confidence")
        if threshold is None:
            raise NeuralensError(f"{path}: no threshold stored for the '{kind}' head")
    try:
        common = dict(
            threshold=float(threshold),
            confidence_fit=dict(fit or {}) or None,
            pipeline=dict(data.get("pipeline") or {}),
            info=dict(data.get("info") or {}),
        )
    except (TypeError, ValueError):
        raise NeuralensError(f"{path}: damaged face head (threshold or confidence fit)") from None
    part = data[kind]
    if kind == "projection":
        return ProjectionMetric(
            _array(part.get("weight"), (EMBEDDING_DIM, EMBEDDING_DIM), "weight", path),
            _array(part.get("bias"), (EMBEDDING_DIM,), "bias", path),
            **common,
        )
    features = part.get("features", "both")
    if features not in FEATURES:
        raise NeuralensError(f"{path}: damaged face head (unknown features {features!r})")
    size = 2 * EMBEDDING_DIM if features == "both" else EMBEDDING_DIM
    try:
        bias = float(part.get("bias", 0.0))
    except (TypeError, ValueError):
        raise NeuralensError(f"{path}: damaged face head (classifier bias)") from None
    return ClassifierMetric(_array(part.get("weight"), (size,), "weight", path), bias, features=features, **common)
