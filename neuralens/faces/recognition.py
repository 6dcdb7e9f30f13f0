"""Enrol, identify, verify and compare: the decisions made on top of the face pipeline and the gallery.

Which face of a photo to use, whether it is good enough to enrol, whether it looks like someone else,
and where 'same person' ends (the metric's threshold) are decided here; ``Gallery`` only stores and
searches. Every function takes a metric (``neuralens.faces.metric``; default: the gallery's Euclidean
metric with its calibrated threshold) and never asks which kind it is.

    with Gallery("team.sqlite3") as gallery:
        enroll(gallery, "Ada Lovelace", ["ada.jpg"])
        [m.name for m in identify(gallery, "party.jpg")]
        verify(gallery, "door.jpg", "Ada Lovelace").same
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import NeuralensError
from . import api
from .api import Comparison, Face, ImageLike
from .gallery import EmptyGallery, Gallery
from .metric import Metric, as_metric
from .models import EMBEDDING_DIM, Pipeline
from .names import display_name

# Enrolment quality defaults (see docs/faces.md): a face box of at least 60 px, a chip sharpness (variance
# of the Laplacian) of at least 25 - sharp portraits measure 50-700, a Gaussian blur of 3 px brings them
# under 20 - and a yaw (nose offset from the eye midpoint) under 0.3 inter-eye distances.
MIN_FACE = 60
MIN_SHARPNESS = 25.0
MAX_YAW = 0.3

Photo = Union[ImageLike, np.ndarray]


@dataclass
class EnrollResult:
    """What an enrolment did: the person's stored name, embeddings added, photos skipped as already
    enrolled, warnings."""

    name: str
    added: int
    skipped: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """A JSON-ready form: {'name', 'added', 'skipped', 'warnings'}."""
        return {"name": self.name, "added": self.added, "skipped": list(self.skipped), "warnings": list(self.warnings)}


@dataclass
class Match:
    """One face of an identified photo: its nearest enrolled person (``nearest``), who it is (``name``,
    None when unknown: beyond the threshold) and the distance."""

    face: Face
    name: Optional[str]
    nearest: Optional[str]
    distance: float
    threshold: float
    confidence: float

    def to_dict(self) -> dict:
        """A JSON-ready form: the face's summary plus name ('unknown' when None), nearest, distance,
        threshold and confidence."""
        return {
            **self.face.to_dict(),
            "name": self.name or "unknown",
            "nearest": self.nearest,
            "distance": round(self.distance, 4),
            "threshold": round(self.threshold, 4),
            "confidence": round(self.confidence, 4),
        }


def image_sha256(image: Photo) -> str:
    """SHA-256 of a file's bytes, or of the pixels for an in-memory image."""
    if isinstance(image, (str, os.PathLike)):
        try:
            return hashlib.sha256(Path(image).read_bytes()).hexdigest()
        except OSError as exc:
            raise NeuralensError(f"{image}: cannot read ({exc.strerror or exc})") from None
    array = api.to_array(image)
    return hashlib.sha256(str(array.shape).encode() + array.tobytes()).hexdigest()


def check_quality(
    face: Face, source: str, min_face: int = MIN_FACE, min_sharpness: float = MIN_SHARPNESS, max_yaw: float = MAX_YAW
) -> None:
    """Raise NeuralensError naming ``source`` unless the face is big enough, sharp enough and frontal."""
    if face.size < min_face:
        raise NeuralensError(f"{source}: face is too small ({face.size} px, need at least {min_face} px)")
    if face.sharpness < min_sharpness:
        raise NeuralensError(
            f"{source}: face is too blurred (sharpness {face.sharpness:.0f}, need at least {min_sharpness:g})"
        )
    if abs(face.yaw) > max_yaw:
        raise NeuralensError(
            f"{source}: face is not frontal enough (turned {abs(face.yaw):.2f}, at most {max_yaw:g} allowed)"
        )


def choose_enrolment_face(
    found: Sequence[Face], label: str, largest: bool = False, face: Optional[int] = None, min_face: int = MIN_FACE
) -> Tuple[Face, Optional[str]]:
    """The face to enrol from a photo's faces, and a warning when smaller faces were passed over: with no
    choice made, one face big enough (>= ``min_face``) among others too small to enrol - the subject and
    people in the background - is taken. Otherwise ``api.select_face``. Returns (face, warning or None)."""
    usable = [f for f in found if f.size >= min_face]
    if len(found) > 1 and len(usable) == 1 and not largest and face is None:
        chosen = usable[0]
        return chosen, (
            f"{Path(label).name}: used the one face of {chosen.size} px; ignored "
            f"{len(found) - 1} smaller face(s) under {min_face} px"
        )
    return api.select_face(found, label, largest, face), None


def lookalikes(gallery: Gallery, name: str, vectors: Sequence[np.ndarray]) -> List[Tuple[int, str]]:
    """Warnings for new embeddings of ``name`` already within the gallery's threshold of someone else:
    [(index into ``vectors``, message)]."""
    if not len(vectors) or gallery.embedding_count() == 0:
        return []
    metric = gallery.metric()
    names, dists = gallery.search(np.stack(vectors), metric, exclude=name)
    return [
        (i, f"face is within {d:.2f} of '{other}' (threshold {metric.threshold:.2f}): a duplicate or a look-alike?")
        for i, (other, d) in enumerate(zip(names, dists))
        if other is not None and d <= metric.threshold
    ]


def _label(photo: Photo, number: int) -> str:
    return str(photo) if isinstance(photo, (str, os.PathLike)) else f"photo {number}"


def enroll(
    gallery: Gallery,
    name: str,
    photos: Sequence[Photo],
    largest: bool = False,
    face: Optional[int] = None,
    detector: Optional[str] = None,
    jitter: Optional[int] = None,
    min_face: int = MIN_FACE,
    min_sharpness: float = MIN_SHARPNESS,
    max_yaw: float = MAX_YAW,
    upsample: int = 1,
) -> EnrollResult:
    """Enrol ``name`` into ``gallery`` from one or more photos (paths, PIL images or RGB arrays). Each photo
    must show exactly one usable face (see ``choose_enrolment_face``; or pass ``largest=True`` or
    ``face=N``, 1-based left to right) that is big, sharp and frontal enough; any failure raises
    NeuralensError naming the photo and stores nothing. Photos already enrolled for this person are
    skipped. Warns (in the result) when a face is within the threshold of another person. Returns an
    ``EnrollResult``."""
    name = display_name(name)
    if not photos:
        raise NeuralensError("enrol needs at least one photo")
    pipeline = gallery.default_pipeline(detector, jitter)
    fingerprint = pipeline.fingerprint()
    gallery.check_pipeline(fingerprint)  # before the slow encoding; checked again on write
    existing = gallery.image_hashes(name)
    result = EnrollResult(name=name, added=0)
    vectors, hashes, sources, boxes = [], [], [], []
    for number, photo in enumerate(photos, start=1):
        label = _label(photo, number)
        array = api.to_array(photo)  # first, so a missing or broken file gets load_image's message
        digest = image_sha256(photo)
        if digest in existing or digest in hashes:
            result.skipped.append(label)
            continue
        found = api.encode(array, pipeline=pipeline, upsample=upsample)
        chosen, warning = choose_enrolment_face(found, label, largest, face, min_face)
        if warning:
            result.warnings.append(warning)
        check_quality(chosen, label, min_face, min_sharpness, max_yaw)
        vectors.append(chosen.embedding)
        hashes.append(digest)
        sources.append(Path(label).name if isinstance(photo, (str, os.PathLike)) else None)
        boxes.append(chosen.box)
    result.warnings += [f"{sources[i] or 'photo'}: {w}" for i, w in lookalikes(gallery, name, vectors)]
    if vectors:
        result.name = gallery.add_embeddings(name, vectors, hashes, fingerprint, sources, boxes)
        result.added = len(vectors)
    else:
        result.name = gallery.person(name).name  # every photo skipped: they are enrolled already
    return result


def gallery_metric(gallery: Gallery, metric: Optional[Metric] = None, head: Optional[Metric] = None) -> Metric:
    """The metric to search ``gallery`` with: the one given (``head=`` is the older name), checked against
    the gallery's encoder, else the gallery's own Euclidean metric (its calibrated threshold and fit)."""
    chosen = as_metric(metric, head, default=gallery.metric())
    chosen.check_pipeline(gallery.pipeline)
    return chosen


def _query_pipeline(gallery: Gallery, detector: Optional[str], jitter: Optional[int]) -> Pipeline:
    if len(gallery) == 0:
        raise EmptyGallery(gallery.path)
    pipeline = gallery.default_pipeline(detector, jitter)
    gallery.check_query_pipeline(pipeline.fingerprint())
    return pipeline


def identify(
    gallery: Gallery,
    photo: Photo,
    metric: Optional[Metric] = None,
    detector: Optional[str] = None,
    jitter: Optional[int] = None,
    upsample: int = 1,
    head: Optional[Metric] = None,
) -> List[Match]:
    """Who is in a photo: every face with its nearest enrolled person, or ``name=None`` (unknown) when
    nobody is within the metric's threshold. Returns a list of ``Match`` (left to right); empty if no
    face. Raises ``EmptyGallery`` when nobody is enrolled."""
    pipeline = _query_pipeline(gallery, detector, jitter)
    metric = gallery_metric(gallery, metric, head)
    faces = api.encode(photo, pipeline=pipeline, upsample=upsample)
    if not faces:
        return []
    nearest, dists = gallery.search(np.stack([f.embedding for f in faces]), metric)
    return [
        Match(
            face=f,
            name=n if d <= metric.threshold else None,
            nearest=n,
            distance=float(d),
            threshold=metric.threshold,
            confidence=float(metric.confidence(d)),
        )
        for f, n, d in zip(faces, nearest, dists)
    ]


def verify(
    gallery: Gallery,
    photo: Photo,
    name: str,
    metric: Optional[Metric] = None,
    largest: bool = False,
    face: Optional[int] = None,
    detector: Optional[str] = None,
    jitter: Optional[int] = None,
    upsample: int = 1,
    head: Optional[Metric] = None,
) -> Comparison:
    """Is the face in ``photo`` the enrolled person ``name``? Compares it with all of their embeddings and
    keeps the nearest. Returns a ``Comparison`` (same, distance, threshold, confidence; details: the
    stored name, the number of embeddings, the face's box). Raises ``UnknownPerson`` for a name nobody
    has and ``EmptyGallery`` when nobody is enrolled."""
    if len(gallery) == 0:
        raise EmptyGallery(gallery.path)
    person = gallery.person(name)
    stored = gallery.embeddings(person.name)
    pipeline = _query_pipeline(gallery, detector, jitter)
    metric = gallery_metric(gallery, metric, head)
    label = str(photo) if isinstance(photo, (str, os.PathLike)) else "photo"
    query = api.select_face(api.encode(photo, pipeline=pipeline, upsample=upsample), label, largest, face)
    dist = float(metric.distances(query.embedding[None, :], stored)[0].min())
    return metric.decide(dist, {"name": person.name, "embeddings": int(len(stored)), "box": list(query.box)})


def _one_embedding(item, name: str, pipeline: Pipeline, largest: bool) -> np.ndarray:
    """An embedding given directly, or computed from the single (or largest) face of an image."""
    if isinstance(item, np.ndarray) and item.ndim == 1:
        if item.shape != (EMBEDDING_DIM,):
            raise NeuralensError(f"{name}: expected a {EMBEDDING_DIM}-d embedding, got shape {item.shape}")
        return item.astype(np.float32)
    label = str(item) if not isinstance(item, (Image.Image, np.ndarray)) else name
    return api.select_face(api.encode(item, pipeline=pipeline), label, largest=largest).embedding


def compare(
    a,
    b,
    threshold: Optional[float] = None,
    fit: Optional[dict] = None,
    detector: str = "hog",
    jitter: int = 0,
    largest: bool = False,
    head: Optional[Metric] = None,
    metric: Optional[Metric] = None,
) -> Comparison:
    """Same person or not. Takes two photos (paths, PIL images or RGB arrays, each with one face, or the
    largest with ``largest=True``) or two 128-d embeddings, and the metric (default Euclidean;
    ``head=`` is the older name for a trained head's metric). ``threshold`` and ``fit`` replace the
    metric's own threshold and confidence fit when given. Returns a ``Comparison``."""
    metric = as_metric(metric, head).calibrated(threshold, fit)
    pipeline = Pipeline(detector=detector, jitter=jitter)
    metric.check_pipeline(pipeline.fingerprint())
    first = _one_embedding(a, "first image", pipeline, largest)
    second = _one_embedding(b, "second image", pipeline, largest)
    return metric.decide(float(metric.pair_distances(first[None, :], second[None, :])[0]))
