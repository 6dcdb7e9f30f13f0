"""Face detection, 5-point alignment, 128-d encoding and comparison: small functions over dlib's models.

    from neuralens import faces
    [face.box for face in faces.encode("group.jpg")]
    faces.distance(a.embedding, b.embedding)

Comparison policy (thresholds, decisions) lives in ``metric`` and ``recognition``.
"""

from __future__ import annotations

import collections
import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import NeuralensError
from . import models
from .models import CHIP_PADDING, CHIP_SIZE, EMBEDDING_DIM, Pipeline

# dlib's documented threshold for this encoder: two faces are the same person when their embeddings are
# closer than 0.6 (99.38% on LFW). A gallery's `calibrate` may store another.
DEFAULT_THRESHOLD = 0.6
# Confidence = sigmoid(intercept + slope * distance). This default puts p = 0.5 at the 0.6 threshold and
# p ~ 0.95 at 0.4 / 0.05 at 0.8, roughly where dlib's same/different distance distributions sit on LFW;
# `calibrate` replaces it with a fit on the user's own pairs.
DEFAULT_CONFIDENCE = {"intercept": 9.0, "slope": -15.0}
# Detection runs on a copy whose long side is at most this (faces are then located in the full image):
# HOG time grows with the pixel count, and a face of 40+ px at this scale is still found.
DETECT_MAX_SIDE = 1024

# The same as neuralens.imageio.ImageLike; that module is imported lazily because it pulls in torch,
# which the face pipeline (dlib + numpy) does not need.
ImageLike = Union[str, os.PathLike, Image.Image]
Box = Tuple[int, int, int, int]  # left, top, right, bottom, in pixels of the original image


@dataclass
class Face:
    """One face found in an image: where it is, its landmarks, its embedding and quality measures."""

    box: Box
    score: float  # detector confidence (HOG: SVM margin; CNN: MMOD confidence)
    landmarks: np.ndarray  # (5, 2) float: right-eye corners, left-eye corners, base of the nose
    embedding: Optional[np.ndarray] = None  # (128,) float32
    sharpness: float = 0.0  # variance of the Laplacian of the aligned grey chip
    yaw: float = 0.0  # nose offset from the eye midpoint, in inter-eye distances (0 = frontal)
    index: int = 0  # 1-based position, numbered left to right

    @property
    def size(self) -> int:
        """The face's size in pixels: the shorter side of its box."""
        left, top, right, bottom = self.box
        return int(min(right - left, bottom - top))

    @property
    def area(self) -> int:
        """Box area in pixels."""
        left, top, right, bottom = self.box
        return int((right - left) * (bottom - top))

    def to_dict(self) -> dict:
        """A JSON-ready summary (without the embedding)."""
        return {
            "index": self.index,
            "box": list(self.box),
            "size": self.size,
            "score": round(self.score, 3),
            "sharpness": round(self.sharpness, 1),
            "yaw": round(self.yaw, 3),
        }


@dataclass
class Comparison:
    """The answer to 'same person?': the decision, the distance, the threshold used and a confidence."""

    same: bool
    distance: float
    threshold: float
    confidence: float  # probability of 'same person' from the logistic fit on distance
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready form."""
        return {
            "same": self.same,
            "distance": round(self.distance, 4),
            "threshold": round(self.threshold, 4),
            "confidence": round(self.confidence, 4),
            **self.details,
        }


def to_array(image: Union[ImageLike, np.ndarray]) -> np.ndarray:
    """Any image (path, PIL image or HxWx3 uint8 array) -> a contiguous HxWx3 uint8 RGB array."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise NeuralensError(f"expected an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
        return np.ascontiguousarray(image)
    from ..imageio import load_image  # noqa: PLC0415 -- see ImageLike above

    return np.ascontiguousarray(np.asarray(load_image(image), dtype=np.uint8))


class _Memo:
    """A small least-recently-used memo for the two slow pure steps (detection, encoding without
    jitter), keyed by a hash of the exact pixels: the same image seen twice in a process (a pair list
    that repeats photos, an API user comparing one photo with many) is worked on once."""

    def __init__(self, size: int):
        self.size, self.items = size, collections.OrderedDict()

    def get(self, key):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key, value) -> None:
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)


_DETECTIONS = _Memo(64)
_EMBEDDINGS = _Memo(4096)


def _pixels_key(array: np.ndarray, *settings) -> tuple:
    return (array.shape, hashlib.blake2b(array.tobytes(), digest_size=16).digest(), *settings)


def detect(
    image: Union[ImageLike, np.ndarray], detector: str = "hog", upsample: int = 1, max_side: int = DETECT_MAX_SIDE
) -> List[Tuple[Box, float]]:
    """Find faces. Takes an image (path, PIL or RGB array), the detector ('hog' or 'cnn'), how many times
    to upsample (each doubles the size and finds faces half as small) and the long side the image is
    shrunk to for detection. Returns ``[(box, score), ...]`` with boxes ``(left, top, right, bottom)`` in
    the original image's pixels, ordered left to right."""
    Pipeline(detector=detector)  # validates the name
    if upsample not in range(0, 4):
        raise NeuralensError(f"upsample must be 0, 1, 2 or 3, got {upsample}")
    array = to_array(image)
    key = _pixels_key(array, detector, upsample, max_side)
    cached = _DETECTIONS.get(key)
    if cached is not None:
        return list(cached)
    height, width = array.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = array
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.ascontiguousarray(np.asarray(Image.fromarray(array).resize(size, Image.BILINEAR)))
    if detector == "hog":
        rects, scores, _ = models.hog_detector().run(small, upsample, 0.0)
        found = list(zip(rects, scores))
    else:
        found = [(d.rect, d.confidence) for d in models.cnn_detector()(small, upsample)]
    boxes = []
    for rect, score in found:
        left = max(0, int(round(rect.left() / scale)))
        top = max(0, int(round(rect.top() / scale)))
        right = min(width, int(round((rect.right() + 1) / scale)))
        bottom = min(height, int(round((rect.bottom() + 1) / scale)))
        if right > left and bottom > top:
            boxes.append(((left, top, right, bottom), float(score)))
    boxes.sort(key=lambda item: (item[0][0], item[0][1]))
    _DETECTIONS.put(key, tuple(boxes))
    return boxes


def _shape(array: np.ndarray, box: Box):
    """dlib's 5-point landmark detection for one box."""
    import dlib  # noqa: PLC0415 -- models.* already checked that it imports

    left, top, right, bottom = box
    return models.landmark_predictor()(array, dlib.rectangle(int(left), int(top), int(right) - 1, int(bottom) - 1))


def landmarks(image: Union[ImageLike, np.ndarray], box: Box) -> np.ndarray:
    """The 5 landmarks of the face in ``box``. Returns a (5, 2) float array of (x, y): the two corners of
    the subject's right eye, the two of the left eye, then the base of the nose."""
    shape = _shape(to_array(image), box)
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], dtype=np.float64)


def align(image: Union[ImageLike, np.ndarray], box: Box, size: int = CHIP_SIZE) -> Image.Image:
    """The face in ``box`` rotated upright and scaled from its 5 landmarks, as dlib's encoder expects.
    Returns a ``size`` x ``size`` RGB PIL image (150 px is what the encoder was trained on)."""
    import dlib  # noqa: PLC0415

    array = to_array(image)
    return Image.fromarray(dlib.get_face_chip(array, _shape(array, box), size=size, padding=CHIP_PADDING))


def sharpness(chip: Union[Image.Image, np.ndarray]) -> float:
    """Variance of the Laplacian of an aligned chip's grey levels: low means blurred. Measured on the
    fixed-size chip, so the value does not depend on the photo's resolution."""
    grey = np.asarray(Image.fromarray(np.asarray(chip)).convert("L"), dtype=np.float64)
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    return float(laplacian.var())


def yaw(points: np.ndarray) -> float:
    """How far the face is turned, from its 5 landmarks: the nose's sideways offset from the midpoint of
    the eyes, in units of the distance between the eyes. About 0 when frontal (frontal portraits measure
    below 0.15) and it grows as the head turns; the sign says which way."""
    points = np.asarray(points, dtype=np.float64)
    right_eye, left_eye, nose = points[0:2].mean(axis=0), points[2:4].mean(axis=0), points[4]
    axis = left_eye - right_eye
    between = float(np.hypot(*axis))
    if between < 1e-6:
        return math.inf
    return float(np.dot(nose - (left_eye + right_eye) / 2.0, axis / between) / between)


def encode(
    image: Union[ImageLike, np.ndarray],
    detector: str = "hog",
    jitter: int = 0,
    upsample: int = 1,
    pipeline: Optional[Pipeline] = None,
) -> List[Face]:
    """Find every face and compute its 128-d embedding. Takes an image (path, PIL or RGB array), the
    detector, the jitter count (re-encode that many jittered copies and average: slower, slightly more
    robust) and the upsample count; ``pipeline`` overrides detector and jitter. Returns a list of
    ``Face`` (box, landmarks, embedding, quality measures), ordered left to right; empty if none found."""
    import dlib  # noqa: PLC0415

    pipeline = pipeline or Pipeline(detector=detector, jitter=jitter)
    array = to_array(image)
    faces = []
    for number, (box, score) in enumerate(detect(array, pipeline.detector, upsample), start=1):
        shape = _shape(array, box)
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], dtype=np.float64)
        chip = dlib.get_face_chip(array, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        faces.append(
            Face(
                box=box,
                score=score,
                landmarks=points,
                embedding=_embed(chip, pipeline.jitter),
                sharpness=sharpness(chip),
                yaw=yaw(points),
                index=number,
            )
        )
    return faces


def _embed(chip: np.ndarray, jitter: int) -> np.ndarray:
    """The encoder's 128-d embedding of an aligned chip (memoised when deterministic: no jitter)."""
    key = _pixels_key(chip) if jitter == 0 else None
    cached = _EMBEDDINGS.get(key) if key else None
    if cached is None:
        vector = models.encoder().compute_face_descriptor(chip, jitter)
        cached = np.asarray(vector, dtype=np.float32).reshape(EMBEDDING_DIM)
        if key:
            _EMBEDDINGS.put(key, cached)
    return cached.copy()  # the caller may modify its copy; the memo's stays as computed


class SeveralFaces(NeuralensError):
    """A photo shows several faces and none was chosen. ``faces`` and ``source`` say which; ``hint`` is
    how to choose (the CLI's options by default; the web puts its own form field there)."""

    def __init__(self, source: str, faces: Sequence[Face], hint: str = "choose one with --largest or --face N"):
        self.source, self.faces = source, list(faces)
        listing = ", ".join(f"#{face.index} at {face.box[0]},{face.box[1]} ({face.size}px)" for face in faces)
        super().__init__(f"{source}: {len(faces)} faces found ({listing}); {hint}")

    def with_hint(self, hint: str) -> SeveralFaces:
        """The same error with another way to choose spelled out."""
        return SeveralFaces(self.source, self.faces, hint)


def select_face(faces: Sequence[Face], source: str, largest: bool = False, index: Optional[int] = None) -> Face:
    """The one face to use from a photo: the only one, the largest (``largest``) or number ``index``
    (1-based, left to right). Raises NeuralensError naming ``source`` for none or a bad index, and
    ``SeveralFaces`` for several faces without a choice."""
    if not faces:
        raise NeuralensError(f"{source}: no face found")
    if index is not None:
        if not 1 <= index <= len(faces):
            raise NeuralensError(f"{source}: --face {index} asked for, but the photo has {len(faces)} face(s)")
        return faces[index - 1]
    if len(faces) == 1:
        return faces[0]
    if largest:
        return max(faces, key=lambda face: face.area)
    raise SeveralFaces(source, faces)


def central_face(faces: Sequence[Face], image_size: Tuple[int, int]) -> Optional[Face]:
    """The face whose box centre is nearest the image centre (how LFW-style pair lists mean 'the' face)."""
    if not faces:
        return None
    cx, cy = image_size[0] / 2.0, image_size[1] / 2.0
    return min(
        faces, key=lambda f: (((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2, -f.area)
    )


def distance(a: np.ndarray, b: np.ndarray) -> Union[float, np.ndarray]:
    """Euclidean distance between embeddings. Two vectors -> a float; a (n, d) and a (m, d) matrix (or a
    vector and a matrix) -> an (n, m) (or (m,)) array, computed at once from the dot products."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.ndim == 1 and b.ndim == 1:
        return float(np.linalg.norm(a - b))
    a2, b2 = np.atleast_2d(a), np.atleast_2d(b)
    squared = (a2 * a2).sum(axis=1)[:, None] + (b2 * b2).sum(axis=1)[None, :] - 2.0 * (a2 @ b2.T)
    result = np.sqrt(np.maximum(squared, 0.0))
    if a.ndim == 1:
        return result[0]
    if b.ndim == 1:
        return result[:, 0]
    return result


def nearest(
    queries: np.ndarray, matrix: np.ndarray, matrix_norms: Optional[np.ndarray] = None, chunk: int = 1 << 18
) -> Tuple[np.ndarray, np.ndarray]:
    """For each query embedding, the row of ``matrix`` nearest to it, in one vectorised pass: squared
    distances |q|^2 + |g|^2 - 2 q.g from a single matrix product per block of rows. Takes (n, d) queries,
    an (m, d) matrix and optionally its precomputed squared row norms (m,). Returns (indices (n,),
    distances (n,)). Rows are processed ``chunk`` at a time so memory stays at n x chunk floats."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if matrix_norms is None:
        matrix_norms = np.einsum("ij,ij->i", matrix, matrix)
    best = np.zeros(len(queries), dtype=np.int64)
    best_sq = np.full(len(queries), np.inf, dtype=np.float32)
    for start in range(0, len(matrix), chunk):
        block = matrix[start : start + chunk]
        # |q|^2 is the same for every row, so it is left out of the argmin and added back at the end.
        partial = matrix_norms[start : start + chunk][None, :] - 2.0 * (queries @ block.T)
        index = np.argmin(partial, axis=1)
        value = partial[np.arange(len(queries)), index]
        better = value < best_sq
        best[better], best_sq[better] = index[better] + start, value[better]
    squared = best_sq + np.einsum("ij,ij->i", queries, queries)
    return best, np.sqrt(np.maximum(squared, 0.0)).astype(np.float64)


def confidence(dist: Union[float, np.ndarray], fit: Optional[dict] = None) -> Union[float, np.ndarray]:
    """Probability of 'same person' for a distance, from a logistic fit {'intercept', 'slope'}."""
    fit = fit or DEFAULT_CONFIDENCE
    logit = fit["intercept"] + fit["slope"] * np.asarray(dist, dtype=np.float64)
    result = 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))
    return float(result) if np.ndim(result) == 0 else result
