"""The face gallery: enrolled people and their embeddings in one SQLite file.

Design notes (the why):
- Embeddings are stored as little-endian float32 bytes, never pickled, and searched as one matrix.
- The pipeline that made them (model hashes, alignment, detector, jitter) is recorded on first use and
  other pipelines are refused, because embeddings from different pipelines are not comparable.
- Every write is one ``BEGIN IMMEDIATE`` transaction: an interrupted enrolment leaves the gallery as it
  was, and with WAL and a busy timeout two processes enrolling at once wait for each other, losing nothing.
- ``secure_delete`` plus VACUUM and a WAL checkpoint on removal, so a removed person leaves no bytes behind.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import NeuralensError
from . import api
from .api import DEFAULT_CONFIDENCE, DEFAULT_THRESHOLD, Comparison, Face, ImageLike
from .models import EMBEDDING_DIM, ENCODER_KEYS, Pipeline, fingerprint_differences

GALLERY_ENV = "NEURALENS_GALLERY"
FORMAT = "neuralens-faces-gallery"
FORMAT_VERSION = 1
# Enrolment quality defaults (see docs/faces.md): a face box of at least 60 px, a chip sharpness (variance
# of the Laplacian) of at least 25 — sharp portraits measure 50-700, a Gaussian blur of 3 px brings them
# under 20 — and a yaw (nose offset from the eye midpoint) under 0.3 inter-eye distances.
MIN_FACE = 60
MIN_SHARPNESS = 25.0
MAX_YAW = 0.3
MAX_NAME = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS persons (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    image_sha256 TEXT NOT NULL,
    source TEXT,
    box TEXT,
    created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS embeddings_by_person ON embeddings(person_id);
"""


def default_gallery_path() -> Path:
    """``$NEURALENS_GALLERY`` if set, else ``faces.sqlite3`` in the user's data folder."""
    env = os.environ.get(GALLERY_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir  # noqa: PLC0415
    return Path(user_data_dir("neuralens")) / "faces.sqlite3"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _is_ours(format_value: str) -> bool:
    """Whether a settings 'format' value names this gallery format."""
    try:
        return json.loads(format_value).get("name") == FORMAT
    except (ValueError, AttributeError):
        return False


def _check_name(name: str) -> str:
    """A person's name, stripped; one line of 1 to 100 printable characters."""
    name = (name or "").strip()
    if not name:
        raise NeuralensError("a person's name cannot be empty")
    if len(name) > MAX_NAME or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise NeuralensError(
            f"invalid name {name[:40]!r}: use one line of at most {MAX_NAME} printable characters")
    return name


def vector_bytes(vector: np.ndarray) -> bytes:
    """A 128-d embedding as 512 little-endian float32 bytes (the stored form)."""
    vector = np.asarray(vector, dtype="<f4")
    if vector.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(vector)):
        raise NeuralensError(f"an embedding must be {EMBEDDING_DIM} finite numbers, got shape {vector.shape}")
    return vector.tobytes()


def image_sha256(image: Union[ImageLike, np.ndarray]) -> str:
    """SHA-256 of a file's bytes, or of the pixels for an in-memory image."""
    if isinstance(image, (str, os.PathLike)):
        try:
            return hashlib.sha256(Path(image).read_bytes()).hexdigest()
        except OSError as exc:
            raise NeuralensError(f"{image}: cannot read ({exc.strerror or exc})") from None
    array = api.to_array(image)
    return hashlib.sha256(str(array.shape).encode() + array.tobytes()).hexdigest()


def check_quality(face: Face, source: str, min_face: int = MIN_FACE, min_sharpness: float = MIN_SHARPNESS,
                  max_yaw: float = MAX_YAW) -> None:
    """Raise NeuralensError naming ``source`` unless the face is big enough, sharp enough and frontal."""
    if face.size < min_face:
        raise NeuralensError(f"{source}: face is too small ({face.size} px, need at least {min_face} px)")
    if face.sharpness < min_sharpness:
        raise NeuralensError(
            f"{source}: face is too blurred (sharpness {face.sharpness:.0f}, need at least {min_sharpness:g})")
    if abs(face.yaw) > max_yaw:
        raise NeuralensError(
            f"{source}: face is not frontal enough (turned {abs(face.yaw):.2f}, at most {max_yaw:g} allowed)")


@dataclass
class Person:
    """An enrolled person: name, number of stored embeddings and when first enrolled."""

    name: str
    embeddings: int
    created: str


@dataclass
class EnrollResult:
    """What an enrolment did: embeddings added, photos skipped as already enrolled, warnings."""

    name: str
    added: int
    skipped: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


@dataclass
class Match:
    """One face of an identified photo: its best match (``name`` None when unknown) and the distance."""

    face: Face
    name: Optional[str]
    nearest: Optional[str]
    distance: float
    threshold: float
    confidence: float

    def to_dict(self) -> dict:
        """A JSON-ready form."""
        return {**self.face.to_dict(), "name": self.name or "unknown", "nearest": self.nearest,
                "distance": round(self.distance, 4), "threshold": round(self.threshold, 4),
                "confidence": round(self.confidence, 4)}


class Gallery:
    """Enrolled people and their face embeddings in an SQLite file.

    ``Gallery(path)`` opens (creating it unless ``create=False``) the gallery at ``path``, or at
    ``$NEURALENS_GALLERY``, or at ``faces.sqlite3`` in the user's data folder. Use as a context manager or
    call ``close()``."""

    def __init__(self, path: Union[str, os.PathLike, None] = None, create: bool = True, timeout: float = 60.0):
        self.path = Path(path).expanduser() if path else default_gallery_path()
        if not self.path.exists():
            if not create:
                raise NeuralensError(f"gallery {self.path} is empty: enrol someone first (neuralens faces enroll)")
            if self.path.is_dir():
                raise NeuralensError(f"{self.path}: is a folder, not a gallery file")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Faces are biometric data: only the owner may read the file (SQLite gives its -wal and
                # -shm files the same permissions).
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass  # another process created it a moment ago
            except OSError as exc:
                raise NeuralensError(f"cannot create the gallery {self.path}: {exc.strerror or exc}") from None
        elif self.path.is_dir():
            raise NeuralensError(f"{self.path}: is a folder, not a gallery file")
        self._cache: Optional[Tuple[int, List[str], np.ndarray, np.ndarray]] = None
        self._norms: Optional[np.ndarray] = None
        self._writes = 0
        self._timeout = timeout
        self._conn = self._retry_when_busy(self._connect)

    # --- plumbing -------------------------------------------------------------------------------------
    def _retry_when_busy(self, action):
        """Run ``action``, retrying while another process holds a lock that SQLite's busy handler does
        not wait for (switching a new file to WAL, or two processes creating the schema at once)."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise NeuralensError(f"{self.path}: cannot use the gallery ({exc})") from None
                if time.monotonic() > deadline:
                    raise NeuralensError(f"{self.path}: the gallery stayed locked by another process for "
                                         f"{self._timeout:g} s") from None
                time.sleep(random.uniform(0.01, 0.1))

    def _connect(self) -> sqlite3.Connection:
        """Open the file, set the pragmas and create or check the schema."""
        conn = sqlite3.connect(str(self.path), timeout=self._timeout, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            # Deleted content is overwritten with zeros (privacy of removed people).
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            self._conn = conn
            self._init_schema()
        except sqlite3.OperationalError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise NeuralensError(f"{self.path}: not a neuralens gallery ({exc})") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _init_schema(self) -> None:
        """Create the tables on first use; check the format of an existing file."""
        with self._write() as conn:
            # One statement at a time: executescript() would commit in the middle of our transaction.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT value FROM settings WHERE key = 'format'").fetchone()
            if row is None:
                conn.execute("INSERT INTO settings VALUES ('format', ?)",
                             (json.dumps({"name": FORMAT, "version": FORMAT_VERSION}),))
                # The defaults are written down too, so the file says which threshold and fit it uses.
                conn.execute("INSERT INTO settings VALUES ('threshold', ?)", (json.dumps(DEFAULT_THRESHOLD),))
                conn.execute("INSERT INTO settings VALUES ('confidence', ?)", (json.dumps(DEFAULT_CONFIDENCE),))
            elif not _is_ours(row[0]):
                raise NeuralensError(f"{self.path}: not a neuralens face gallery")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (BEGIN IMMEDIATE) so concurrent writers queue instead
        of failing halfway; rolled back on any error or interruption."""
        conn = self._conn
        self._retry_when_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:  # SQLite may already have rolled back by itself (disk full, I/O error)
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise NeuralensError(f"{self.path}: the gallery was not changed ({exc})") from None
            raise
        self._writes += 1

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- settings -------------------------------------------------------------------------------------
    def setting(self, key: str, default=None):
        """A stored setting (JSON-decoded), or ``default``."""
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    @property
    def pipeline(self) -> Optional[Dict[str, object]]:
        """The fingerprint of the pipeline that made the stored embeddings (None until first enrolment)."""
        return self.setting("pipeline")

    @property
    def threshold(self) -> float:
        """The distance threshold: calibrated, or dlib's standard 0.6."""
        return float(self.setting("threshold", DEFAULT_THRESHOLD))

    @property
    def confidence_fit(self) -> dict:
        """The logistic fit of same/different on distance: calibrated, or the default."""
        return self.setting("confidence", DEFAULT_CONFIDENCE)

    def default_pipeline(self, detector: Optional[str] = None, jitter: Optional[int] = None) -> Pipeline:
        """The gallery's pipeline (or the defaults for a new one), with ``detector``/``jitter`` overriding."""
        stored = self.pipeline or {}
        return Pipeline(detector=detector or str(stored.get("detector", "hog")),
                        jitter=int(jitter if jitter is not None else stored.get("jitter", 0)))

    def _claim_pipeline(self, conn: sqlite3.Connection, fingerprint: dict) -> None:
        """Inside a write: record ``fingerprint`` as the gallery's pipeline, or refuse a different one."""
        row = conn.execute("SELECT value FROM settings WHERE key = 'pipeline'").fetchone()
        if row is None:
            conn.execute("INSERT INTO settings VALUES ('pipeline', ?)", (json.dumps(fingerprint),))
            return
        self._refuse_other(json.loads(row[0]), fingerprint)

    def _refuse_other(self, stored: Optional[dict], fingerprint: dict) -> None:
        """Raise NeuralensError when ``fingerprint`` differs from the gallery's stored pipeline."""
        differ = fingerprint_differences(stored, fingerprint) if stored else []
        if differ:
            detail = ", ".join(f"{k}: gallery {stored.get(k)!r} vs now {fingerprint.get(k)!r}" for k in differ)
            raise NeuralensError(f"{self.path} was made with another face pipeline ({detail}); "
                                 "refusing to mix embeddings (use the gallery's settings or another --gallery)")

    def check_query_pipeline(self, fingerprint: dict) -> None:
        """Refuse a query whose encoder, landmark model or alignment differ from the gallery's (a different
        detector or jitter is fine for a one-off query)."""
        stored = self.pipeline
        if stored and fingerprint_differences(stored, fingerprint, ENCODER_KEYS):
            raise NeuralensError(f"{self.path} was made with another face encoder or alignment; "
                                 "its embeddings cannot be compared with this one's")

    def set_calibration(self, threshold: float, fit: dict, info: dict, fingerprint: dict) -> None:
        """Store a calibrated threshold and confidence fit (one transaction); claims the pipeline."""
        with self._write() as conn:
            self._claim_pipeline(conn, fingerprint)
            for key, value in (("threshold", float(threshold)), ("confidence", fit), ("calibration", info)):
                conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(value)))

    # --- people ---------------------------------------------------------------------------------------
    def persons(self) -> List[Person]:
        """Everyone enrolled, by name, with their number of embeddings."""
        rows = self._conn.execute(
            "SELECT p.name, COUNT(e.id), p.created FROM persons p LEFT JOIN embeddings e ON e.person_id = p.id "
            "GROUP BY p.id ORDER BY p.name").fetchall()
        return [Person(name, count, created) for name, count, created in rows]

    def _person_id(self, name: str) -> int:
        row = self._conn.execute("SELECT id FROM persons WHERE name = ?", (_check_name(name),)).fetchone()
        if row is None:
            known = ", ".join(p.name for p in self.persons()[:10]) or "nobody yet"
            raise NeuralensError(f"no one called '{name.strip()}' in the gallery (enrolled: {known})")
        return int(row[0])

    def canonical_name(self, name: str) -> str:
        """The stored spelling of an enrolled person's name (names match case-insensitively)."""
        row = self._conn.execute("SELECT name FROM persons WHERE id = ?", (self._person_id(name),)).fetchone()
        return str(row[0])

    def __bool__(self) -> bool:
        """Always true: an empty gallery is still a gallery (``if gallery:`` must not mean 'has people')."""
        return True

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    def add_embeddings(self, name: str, vectors: Sequence[np.ndarray], hashes: Sequence[str],
                       fingerprint: dict, sources: Optional[Sequence[str]] = None,
                       boxes: Optional[Sequence[Sequence[int]]] = None) -> int:
        """Store embeddings for ``name`` (created if new) in one transaction: all of them or none.
        ``fingerprint`` is the pipeline that made them (see ``Pipeline.fingerprint``). Returns the count."""
        name = _check_name(name)
        if len(vectors) != len(hashes):
            raise NeuralensError("add_embeddings: one image hash per embedding is needed")
        sources = list(sources) if sources is not None else [None] * len(vectors)
        boxes = list(boxes) if boxes is not None else [None] * len(vectors)
        with self._write() as conn:
            self._claim_pipeline(conn, fingerprint)
            row = conn.execute("SELECT id FROM persons WHERE name = ?", (name,)).fetchone()
            person = row[0] if row else conn.execute(
                "INSERT INTO persons (name, created) VALUES (?, ?)", (name, _now())).lastrowid
            for vector, digest, source, box in zip(vectors, hashes, sources, boxes):
                conn.execute(
                    "INSERT INTO embeddings (person_id, vector, image_sha256, source, box, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (person, vector_bytes(vector), digest, source, json.dumps(list(box)) if box else None, _now()))
        return len(vectors)

    def enroll(self, name: str, photos: Sequence[Union[ImageLike, np.ndarray]], largest: bool = False,
               face: Optional[int] = None, detector: Optional[str] = None, jitter: Optional[int] = None,
               min_face: int = MIN_FACE, min_sharpness: float = MIN_SHARPNESS, max_yaw: float = MAX_YAW,
               upsample: int = 1) -> EnrollResult:
        """Enrol ``name`` from one or more photos. Each photo must show exactly one usable face (one at
        least ``min_face`` px, other faces being smaller; or pass ``largest=True`` or ``face=N``, 1-based
        left to right) that is big, sharp and frontal enough; any
        failure raises NeuralensError naming the photo and stores nothing. Photos already enrolled for
        this person are skipped. Warns (in the result) when a face is within the threshold of another
        person. Returns an ``EnrollResult``."""
        name = _check_name(name)
        if not photos:
            raise NeuralensError("enrol needs at least one photo")
        pipeline = self.default_pipeline(detector, jitter)
        fingerprint = pipeline.fingerprint()
        self._refuse_other(self.pipeline, fingerprint)  # before the slow encoding; checked again on write
        existing = {row[0] for row in self._conn.execute(
            "SELECT e.image_sha256 FROM embeddings e JOIN persons p ON p.id = e.person_id WHERE p.name = ?",
            (name,))}
        result = EnrollResult(name=name, added=0)
        vectors, hashes, sources, boxes = [], [], [], []
        for number, photo in enumerate(photos, start=1):
            label = str(photo) if isinstance(photo, (str, os.PathLike)) else f"photo {number}"
            array = api.to_array(photo)  # first, so a missing or broken file gets load_image's message
            digest = image_sha256(photo)
            if digest in existing or digest in hashes:
                result.skipped.append(label)
                continue
            found = api.encode(array, pipeline=pipeline, upsample=upsample)
            usable = [f for f in found if f.size >= min_face]
            if len(found) > 1 and len(usable) == 1 and not largest and face is None:
                # One face big enough to enrol and the others too small to be: the photo's subject and
                # people in the background. Taking the subject is not a guess.
                chosen = usable[0]
                result.warnings.append(f"{Path(label).name}: used the one face of {chosen.size} px; ignored "
                                       f"{len(found) - 1} smaller face(s) under {min_face} px")
            else:
                chosen = api.select_face(found, label, largest, face)
            check_quality(chosen, label, min_face, min_sharpness, max_yaw)
            vectors.append(chosen.embedding)
            hashes.append(digest)
            sources.append(Path(label).name if isinstance(photo, (str, os.PathLike)) else None)
            boxes.append(chosen.box)
        result.warnings += [f"{sources[i] or 'photo'}: {w}" for i, w in self._lookalikes(name, vectors)]
        if vectors:
            result.added = self.add_embeddings(name, vectors, hashes, fingerprint, sources, boxes)
        return result

    def _lookalikes(self, name: str, vectors: Sequence[np.ndarray]) -> List[Tuple[int, str]]:
        """Warnings for new embeddings already within the threshold of someone else."""
        names, owners, matrix = self._matrix()
        if not vectors or matrix.shape[0] == 0:
            return []
        row = self._conn.execute("SELECT name FROM persons WHERE name = ?", (name,)).fetchone()
        own = names.index(row[0]) if row else -1  # names are unique, so the stored spelling finds them
        others = owners != own
        if not others.any():
            return []
        dists = api.distance(np.stack(vectors), matrix[others])
        other_owners = owners[others]
        warnings = []
        for i, row in enumerate(dists):
            j = int(np.argmin(row))
            if row[j] <= self.threshold:
                warnings.append((i, f"face is within {row[j]:.2f} of '{names[other_owners[j]]}' "
                                    f"(threshold {self.threshold:.2f}): a duplicate or a look-alike?"))
        return warnings

    def rename(self, old: str, new: str) -> None:
        """Rename a person (refused when ``new`` is taken by someone else)."""
        new = _check_name(new)
        person = self._person_id(old)
        with self._write() as conn:
            row = conn.execute("SELECT id FROM persons WHERE name = ?", (new,)).fetchone()
            if row is not None and row[0] != person:
                raise NeuralensError(f"'{new}' is already enrolled; remove or rename them first")
            conn.execute("UPDATE persons SET name = ? WHERE id = ?", (new, person))

    def remove(self, name: str) -> int:
        """Delete a person and all their embeddings for good: the rows are deleted with secure_delete
        (zeroed), then the file is vacuumed and the WAL checkpointed and truncated, so no byte of them is
        left in the gallery's files. Returns the number of embeddings removed."""
        person = self._person_id(name)
        with self._write() as conn:
            count = conn.execute("DELETE FROM embeddings WHERE person_id = ?", (person,)).rowcount
            conn.execute("DELETE FROM persons WHERE id = ?", (person,))
        self.scrub()
        return int(count)

    def scrub(self) -> None:
        """Rewrite the file without free pages (VACUUM) and fold the WAL into it, truncated to zero."""
        self._retry_when_busy(lambda: self._conn.execute("VACUUM"))
        busy, _, _ = self._retry_when_busy(
            lambda: self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
        if busy:  # another process is reading; its snapshot keeps old pages until it finishes
            raise NeuralensError(f"{self.path}: removed, but another process holds the gallery open; "
                                 "run the removal again when it has finished to scrub the file")

    # --- search ---------------------------------------------------------------------------------------
    def _matrix(self) -> Tuple[List[str], np.ndarray, np.ndarray]:
        """All embeddings as one (n, 128) float32 matrix, with each row's owner (an index into the name
        list). Cached until the gallery changes (PRAGMA data_version sees other processes' writes)."""
        version = (self._conn.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if self._cache is not None and self._cache[0] == version:
            return self._cache[1], self._cache[2], self._cache[3]
        people = self._conn.execute("SELECT id, name FROM persons ORDER BY id").fetchall()
        position = {pid: i for i, (pid, _) in enumerate(people)}
        rows = self._conn.execute("SELECT person_id, vector FROM embeddings ORDER BY id").fetchall()
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").astype(np.float32)
        matrix = matrix.reshape(len(rows), EMBEDDING_DIM)
        owners = np.fromiter((position[r[0]] for r in rows), dtype=np.int64, count=len(rows))
        names = [name for _, name in people]
        self._cache = (version, names, owners, matrix)
        self._norms = np.einsum("ij,ij->i", matrix, matrix)  # squared row norms, reused by every search
        return names, owners, matrix

    def embeddings(self, name: Optional[str] = None) -> np.ndarray:
        """The stored embeddings, of everyone or of one person, as an (n, 128) float32 matrix."""
        names, owners, matrix = self._matrix()
        if name is None:
            return matrix.copy()
        return matrix[owners == names.index(self.canonical_name(name))]

    def search(self, queries: np.ndarray, head=None) -> Tuple[List[str], np.ndarray]:
        """Nearest enrolled person for each query embedding, in one vectorised pass over all stored
        embeddings. Takes an (n, 128) array and an optional trained head. Returns (names, distances)."""
        names, owners, matrix = self._matrix()
        if matrix.shape[0] == 0:
            raise NeuralensError(f"gallery {self.path} is empty: enrol someone first (neuralens faces enroll)")
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if head is None:
            best, dists = api.nearest(queries, matrix, self._norms)
        else:
            all_dists = head.distances(queries, matrix)
            best = np.argmin(all_dists, axis=1)
            dists = all_dists[np.arange(len(best)), best]
        return [names[owners[j]] for j in best], dists

    def _metric(self, head) -> Tuple[float, dict]:
        if head is None:
            return self.threshold, self.confidence_fit
        if self.pipeline:
            head.check_pipeline(self.pipeline)
        return head.threshold, head.confidence

    def identify(self, photo: Union[ImageLike, np.ndarray], head=None, detector: Optional[str] = None,
                 jitter: Optional[int] = None, upsample: int = 1) -> List[Match]:
        """Who is in a photo: every face with its nearest enrolled person, or ``name=None`` (unknown) when
        nobody is within the threshold. Returns a list of ``Match`` (left to right); empty if no face."""
        if len(self) == 0:
            raise NeuralensError(f"gallery {self.path} is empty: enrol someone first (neuralens faces enroll)")
        pipeline = self.default_pipeline(detector, jitter)
        self.check_query_pipeline(pipeline.fingerprint())
        threshold, fit = self._metric(head)
        faces = api.encode(photo, pipeline=pipeline, upsample=upsample)
        if not faces:
            return []
        nearest, dists = self.search(np.stack([f.embedding for f in faces]), head)
        return [Match(face=f, name=n if d <= threshold else None, nearest=n, distance=float(d),
                      threshold=threshold, confidence=float(api.confidence(d, fit)))
                for f, n, d in zip(faces, nearest, dists)]

    def verify(self, photo: Union[ImageLike, np.ndarray], name: str, head=None, largest: bool = False,
               face: Optional[int] = None, detector: Optional[str] = None, jitter: Optional[int] = None,
               upsample: int = 1) -> Comparison:
        """Is the face in ``photo`` the enrolled person ``name``? Compares with all of their embeddings and
        keeps the nearest. Returns a ``Comparison`` (same, distance, threshold, confidence)."""
        if len(self) == 0:
            raise NeuralensError(f"gallery {self.path} is empty: enrol someone first (neuralens faces enroll)")
        stored = self.embeddings(name)
        pipeline = self.default_pipeline(detector, jitter)
        self.check_query_pipeline(pipeline.fingerprint())
        threshold, fit = self._metric(head)
        label = str(photo) if isinstance(photo, (str, os.PathLike)) else "photo"
        query = api.select_face(api.encode(photo, pipeline=pipeline, upsample=upsample), label, largest, face)
        q = query.embedding[None, :]
        dists = head.distances(q, stored)[0] if head is not None else api.distance(q, stored)[0]
        dist = float(dists.min())
        return Comparison(same=dist <= threshold, distance=dist, threshold=threshold,
                          confidence=float(api.confidence(dist, fit)),
                          details={"name": self.canonical_name(name), "embeddings": int(len(stored)),
                                   "box": list(query.box)})


def annotate(photo: Union[ImageLike, np.ndarray], matches: Sequence[Match]) -> Image.Image:
    """A copy of the photo with a box and a label (name and distance, or 'unknown') on every face."""
    from PIL import ImageDraw, ImageFont  # noqa: PLC0415
    image = Image.fromarray(api.to_array(photo))
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    try:
        font = ImageFont.load_default(size=max(12, round(max(image.size) / 40)))
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    for match in matches:
        left, top, right, bottom = match.face.box
        colour = (40, 200, 60) if match.name else (230, 50, 40)
        draw.rectangle([left, top, right, bottom], outline=colour, width=width)
        label = f"{match.name} {match.distance:.2f}" if match.name else "unknown"
        text_box = draw.textbbox((left, bottom + width), label, font=font)
        draw.rectangle(text_box, fill=colour)
        draw.text((left, bottom + width), label, fill=(255, 255, 255), font=font)
    return image
