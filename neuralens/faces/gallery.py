"""The face gallery: enrolled people and their embeddings in one SQLite file, and the search over them.

What to enrol and how to decide (face choice, quality checks, thresholds) is ``recognition``'s business;
this module only stores and searches.

Design notes (the why):
- Embeddings are stored as little-endian float32 bytes, never pickled, and searched as one matrix.
- People are matched by a key (``names.name_key``: NFC + case folding) kept under the UNIQUE constraint;
  the name is shown as typed. ``Gallery.person`` is the one lookup every caller uses.
- The pipeline that made them (model hashes, alignment, detector, jitter) is recorded on first use and
  other pipelines are refused, because embeddings from different pipelines are not comparable.
- Every write is one ``BEGIN IMMEDIATE`` transaction: an interrupted enrolment leaves the gallery as it
  was, and with WAL and a busy timeout two processes enrolling at once wait for each other, losing nothing.
- ``secure_delete`` plus VACUUM and a WAL checkpoint on removal, so a removed person leaves no bytes behind.
- Small galleries are searched exactly (one matrix product); from ``IndexOptions.exact_below`` embeddings on,
  Euclidean searches go through the HNSW index beside the file (``index``), whose candidates are re-ranked
  exactly from SQLite. Embedding ids are never reused (a high-water mark in the settings), and every write
  that changes embeddings bumps a generation counter, so the index can tell what it is missing.
- What does not depend on the storage (the pipeline checks, thresholds, name lookups, exact search and the
  exact re-ranking of an index's candidates) is ``GalleryBase``'s, shared with the PostgreSQL gallery
  (``postgres.PostgresGallery``, for ``postgresql://`` URLs); ``open_gallery`` chooses between the two.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..errors import NeuralensError
from ..progress import Progress
from . import schema
from .api import DEFAULT_CONFIDENCE, DEFAULT_THRESHOLD
from .index import FaceIndex, GalleryState, IndexOptions
from .metric import EuclideanMetric, Metric
from .models import EMBEDDING_DIM, ENCODER_KEYS, Pipeline, fingerprint_differences
from .names import MAX_NAME, UnknownPerson, display_name, name_key
from .store import SQLiteStore

GALLERY_ENV = "NEURALENS_GALLERY"
FORMAT, FORMAT_VERSION = schema.FORMAT, schema.FORMAT_VERSION

__all__ = [
    "EmptyGallery",
    "Gallery",
    "GalleryBase",
    "GALLERY_ENV",
    "MAX_NAME",
    "Person",
    "UnknownPerson",
    "default_gallery_path",
    "gallery_target",
    "is_url",
    "open_gallery",
    "vector_bytes",
]


class EmptyGallery(NeuralensError):
    """A search in a gallery with nobody enrolled."""

    def __init__(self, path: Path, hint: str = "neuralens faces enroll"):
        super().__init__(f"gallery {path} is empty: enrol someone first ({hint})")
        self.path = path


URL_SCHEMES = ("postgresql://", "postgres://")
# Through the index, every embedding of the people among a face's candidates is measured too (at most this
# many each): the index finds the right person far more often than that person's nearest embedding (at 1M
# faces 0.998 against 0.898, benchmarks/results/faces_scale.md), and the distance to the right person decides
# "known or unknown" against the threshold.
EXPAND_PER_PERSON = 64


def is_url(target: Union[str, os.PathLike, None]) -> bool:
    """Whether ``target`` names a PostgreSQL gallery (a ``postgresql://`` or ``postgres://`` URL) rather
    than a file."""
    return isinstance(target, str) and target.strip().lower().startswith(URL_SCHEMES)


def gallery_target(target: Union[str, os.PathLike, None] = None) -> Union[str, Path]:
    """What a gallery argument means: ``target`` if given, else ``$NEURALENS_GALLERY``, else
    ``faces.sqlite3`` in the user's data folder. Returns the URL (a str) for PostgreSQL, else a Path."""
    chosen = target if target else os.environ.get(GALLERY_ENV)
    if chosen:
        return chosen.strip() if is_url(chosen) else Path(chosen).expanduser()
    from platformdirs import user_data_dir  # noqa: PLC0415

    return Path(user_data_dir("neuralens")) / "faces.sqlite3"


def default_gallery_path() -> Path:
    """``$NEURALENS_GALLERY`` if set, else ``faces.sqlite3`` in the user's data folder. Raises
    NeuralensError when ``$NEURALENS_GALLERY`` is a PostgreSQL URL (``gallery_target`` handles both)."""
    target = gallery_target()
    if isinstance(target, str):
        raise NeuralensError(f"${GALLERY_ENV} is a PostgreSQL URL, not a file: open it with faces.open_gallery()")
    return target


def open_gallery(
    target: Union[str, os.PathLike, None] = None,
    create: bool = True,
    timeout: float = 60.0,
    index: Optional[IndexOptions] = None,
) -> GalleryBase:
    """The one way to open a gallery from a string: ``target`` (else ``$NEURALENS_GALLERY``, else the
    default file; see ``gallery_target``) is a ``postgresql://`` URL for the shared PostgreSQL gallery
    (``postgres.PostgresGallery``; needs ``pip install 'neuralens[postgres]'``) or a path for the SQLite
    gallery (``Gallery``). ``create=False`` raises ``EmptyGallery`` for a gallery that does not exist yet;
    ``timeout`` is how long to wait for a lock or a connection, in seconds. Returns the open gallery."""
    chosen = gallery_target(target)
    if isinstance(chosen, str):
        from .postgres import PostgresGallery  # noqa: PLC0415 -- psycopg only for PostgreSQL galleries

        return PostgresGallery(chosen, create=create, timeout=timeout, index=index)
    return Gallery(chosen, create=create, timeout=timeout, index=index)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def vector_bytes(vector: np.ndarray) -> bytes:
    """A 128-d embedding as 512 little-endian float32 bytes (the stored form)."""
    vector = np.asarray(vector, dtype="<f4")
    if vector.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(vector)):
        raise NeuralensError(f"an embedding must be {EMBEDDING_DIM} finite numbers, got shape {vector.shape}")
    return vector.tobytes()


@dataclass
class Person:
    """An enrolled person: name (as typed), number of stored embeddings and when first enrolled."""

    name: str
    embeddings: int
    created: str

    def to_dict(self) -> dict:
        """A JSON-ready form: {'name', 'embeddings', 'created'}."""
        return asdict(self)


class _Stored(NamedTuple):
    """All embeddings as one matrix, with each row's owner (an index into ``ids`` / ``names``)."""

    ids: List[int]
    names: List[str]
    owners: np.ndarray
    matrix: np.ndarray
    norms: np.ndarray  # squared row norms, reused by every Euclidean search


def stored_matrix(people: Sequence[Tuple[int, str]], person_ids: Sequence[int], matrix: np.ndarray) -> _Stored:
    """The ``_Stored`` form of every embedding: ``people`` as (id, name), each row's owner's id in
    ``person_ids`` and the (n, 128) float32 ``matrix`` of their vectors."""
    position = {int(pid): i for i, (pid, _) in enumerate(people)}
    owners = np.fromiter((position[int(p)] for p in person_ids), dtype=np.int64, count=len(person_ids))
    matrix = np.ascontiguousarray(matrix, dtype=np.float32).reshape(len(person_ids), EMBEDDING_DIM)
    return _Stored(
        [int(pid) for pid, _ in people],
        [name for _, name in people],
        owners,
        matrix,
        np.einsum("ij,ij->i", matrix, matrix),
    )


class BulkWriter:
    """One bulk write (``bulk.import_embeddings``), inside the store's one transaction: ``people`` gives
    every key an id (creating the missing people), ``stored_hashes`` what is stored already, ``insert``
    adds rows of (person id, vector bytes, image hash, source, box JSON, created)."""

    def people(self, spelling: Dict[str, str], created: str) -> Tuple[Dict[str, int], int]:
        """Ids of the people whose keys are ``spelling``'s keys (created, with those names, when new).
        Returns (key -> id, the number created)."""
        raise NotImplementedError

    def stored_hashes(self) -> Set[Tuple[int, str]]:
        """(person id, image hash) of every stored embedding."""
        raise NotImplementedError

    def insert(self, rows: Sequence[tuple]) -> None:
        """Store ``rows`` (see the class)."""
        raise NotImplementedError


class GalleryBase:
    """What every gallery shares, whatever stores it: the pipeline checks, the threshold and confidence fit,
    name lookups, exact search over a cached matrix and the exact re-ranking of an index's candidates.

    A store provides ``setting``, ``_stored``, ``embedding_count``, ``uses_index`` and ``_candidates`` (and
    its writes), and its SQL dialect for the shared queries (``_sql``); ``path`` names it in messages (a file, or a URL without its
    password)."""

    path: Union[Path, str]
    index_options: IndexOptions
    _conn = None  # the store's connection (``execute(sql, params)``: sqlite3's and psycopg's alike)
    _tables = {"persons": "persons", "embeddings": "embeddings"}
    _param = "?"
    _by_key = "p.key"  # SQLite compares text by its bytes: code-point order

    # --- settings -------------------------------------------------------------------------------------
    def setting(self, key: str, default=None):
        """A stored setting (JSON-decoded), or ``default``."""
        raise NotImplementedError

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

    def metric(self) -> EuclideanMetric:
        """The encoder's Euclidean metric with this gallery's threshold and confidence fit."""
        return EuclideanMetric(self.threshold, self.confidence_fit)

    def default_pipeline(self, detector: Optional[str] = None, jitter: Optional[int] = None) -> Pipeline:
        """The gallery's pipeline (or the defaults for a new one), with ``detector``/``jitter`` overriding."""
        stored = self.pipeline or {}
        return Pipeline(
            detector=detector or str(stored.get("detector", "hog")),
            jitter=int(jitter if jitter is not None else stored.get("jitter", 0)),
        )

    def check_pipeline(self, fingerprint: dict, stored: Optional[dict] = None) -> None:
        """Raise NeuralensError when embeddings made by ``fingerprint`` may not be stored here: it differs
        from the gallery's pipeline (``stored``, default: the recorded one)."""
        stored = stored if stored is not None else self.pipeline
        differ = fingerprint_differences(stored, fingerprint) if stored else []
        if differ:
            detail = ", ".join(f"{k}: gallery {stored.get(k)!r} vs now {fingerprint.get(k)!r}" for k in differ)
            raise NeuralensError(
                f"{self.path} was made with another face pipeline ({detail}); "
                "refusing to mix embeddings (use the gallery's settings or another --gallery)"
            )

    def check_query_pipeline(self, fingerprint: dict) -> None:
        """Refuse a query whose encoder, landmark model or alignment differ from the gallery's (a different
        detector or jitter is fine for a one-off query)."""
        stored = self.pipeline
        if stored and fingerprint_differences(stored, fingerprint, ENCODER_KEYS):
            raise NeuralensError(
                f"{self.path} was made with another face encoder or alignment; "
                "its embeddings cannot be compared with this one's"
            )

    # --- people ---------------------------------------------------------------------------------------
    def _sql(self, text: str) -> str:
        """``text`` in this store's dialect: ``{persons}``, ``{embeddings}`` become its table names, ``{p}`` its
        parameter marker and ``{by_key}`` its code-point ordering of the name keys."""
        return text.format(p=self._param, by_key=self._by_key, **self._tables)

    def _people(self, person_id: Optional[int] = None) -> List[Person]:
        """Everyone (or the one person with id ``person_id``), by key, with their embedding counts."""
        where, params = ("WHERE p.id = {p}", (person_id,)) if person_id is not None else ("", ())
        rows = self._conn.execute(
            self._sql(
                "SELECT p.name, COUNT(e.id), p.created FROM {persons} p LEFT JOIN {embeddings} e "
                f"ON e.person_id = p.id {where} GROUP BY p.id ORDER BY {{by_key}}, p.id"
            ),
            params,
        ).fetchall()
        return [Person(name, int(count), created) for name, count, created in rows]

    def _find(self, conn, name: str) -> Optional[Tuple[int, str]]:
        """(id, stored name) of the person whose key is ``name``'s, read through ``conn``, or None."""
        key = findable_key(name)
        if key is None:
            return None
        row = conn.execute(self._sql("SELECT id, name FROM {persons} WHERE key = {p}"), (key,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def __len__(self) -> int:
        """The number of people enrolled."""
        return int(self._conn.execute(self._sql("SELECT COUNT(*) FROM {persons}")).fetchone()[0])

    def image_hashes(self, name: str) -> Set[str]:
        """SHA-256 of every photo enrolled for ``name`` (empty when nobody has that name yet)."""
        found = self._find(self._conn, name)
        if found is None:
            return set()
        rows = self._conn.execute(self._sql("SELECT image_sha256 FROM {embeddings} WHERE person_id = {p}"), (found[0],))
        return {row[0] for row in rows}

    def persons(self) -> List[Person]:
        """Everyone enrolled, by name (ignoring case), with their number of embeddings."""
        return self._people()

    def _lookup(self, name: str) -> Tuple[int, str]:
        found = self._find(self._conn, name) if isinstance(name, str) else None
        if found is None:
            known = ", ".join(p.name for p in self.persons()[:10]) or "nobody yet"
            shown = name.strip()[:100] if isinstance(name, str) else repr(name)
            raise UnknownPerson(f"no one called '{shown}' in the gallery (enrolled: {known})")
        return found

    def person(self, name: str) -> Person:
        """The enrolled person called ``name`` - matched by key: regardless of case and of how accents are
        encoded. The one lookup used by the CLI, the Python API and the web. Raises ``UnknownPerson``."""
        return self._people(self._lookup(name)[0])[0]

    def __bool__(self) -> bool:
        """Always true: an empty gallery is still a gallery (``if gallery:`` must not mean 'has people')."""
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection to the store."""
        raise NotImplementedError

    def add_embeddings(
        self,
        name: str,
        vectors: Sequence[np.ndarray],
        hashes: Sequence[str],
        fingerprint: dict,
        sources: Optional[Sequence[str]] = None,
        boxes: Optional[Sequence[Sequence[int]]] = None,
    ) -> str:
        """Store embeddings for ``name`` (created if new; an existing person when the name matches theirs)
        in one transaction: all of them or none. ``fingerprint`` is the pipeline that made them (see
        ``Pipeline.fingerprint``). Returns the person's stored name."""
        name, prepared = check_new_embeddings(name, vectors, hashes, sources, boxes)
        return self._add(name, prepared, fingerprint)

    def _add(self, name: str, prepared: list, fingerprint: dict) -> str:
        """``add_embeddings`` once checked: ``prepared`` rows of (vector bytes, hash, source, box JSON) for
        ``name`` (already a display name), in one transaction. Returns the person's stored name."""
        raise NotImplementedError

    # --- search ---------------------------------------------------------------------------------------
    def embedding_count(self) -> int:
        """The number of stored embeddings, everyone's together."""
        raise NotImplementedError

    def uses_index(self, metric: Optional[Metric] = None) -> bool:
        """Whether a search with ``metric`` goes through the HNSW index: Euclidean (the index's metric)
        and at least ``exact_below`` embeddings stored."""
        raise NotImplementedError

    def sync_index(self, progress: bool = True) -> int:
        """Bring the index level with the stored embeddings; returns the number of vectors added or
        removed (0 for stores whose index keeps itself up to date)."""
        return 0

    def _stored(self) -> _Stored:
        """Every embedding as one (n, 128) float32 matrix with its owners, cached until the gallery changes."""
        raise NotImplementedError

    def _candidates(self, queries: np.ndarray, count: int) -> List[List[Tuple[int, str, np.ndarray]]]:
        """For each query, up to ``count`` stored embeddings near it from the index, as (person id, name,
        vector); the caller measures them exactly."""
        raise NotImplementedError

    def _people_rows(self, person_ids: Sequence[int]) -> Dict[int, List[Tuple[int, str, np.ndarray]]]:
        """person id -> up to ``EXPAND_PER_PERSON`` of their stored embeddings (the first ones), as (person id,
        name, vector), for the people of ``person_ids`` that still exist."""
        raise NotImplementedError

    def search(
        self, queries: np.ndarray, metric: Optional[Metric] = None, exclude: Optional[str] = None
    ) -> Tuple[List[Optional[str]], np.ndarray]:
        """Nearest enrolled person for each query embedding, in one vectorised pass over all stored
        embeddings (or all but those of ``exclude``). Takes an (n, 128) array and a metric (default: the
        Euclidean one). Returns (names, distances); a name is None (distance inf) when there is nobody
        to compare with besides ``exclude``. Raises ``EmptyGallery`` when nobody is enrolled."""
        metric = metric or EuclideanMetric()
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if self.embedding_count() == 0:
            raise EmptyGallery(self.path)
        if self.uses_index(metric):
            return self._search_index(queries, exclude)
        return self.search_exact(queries, metric, exclude)

    def search_exact(
        self, queries: np.ndarray, metric: Optional[Metric] = None, exclude: Optional[str] = None
    ) -> Tuple[List[Optional[str]], np.ndarray]:
        """``search`` by one vectorised pass over every stored embedding, whatever the gallery's size."""
        metric = metric or EuclideanMetric()
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        stored = self._stored()
        if stored.matrix.shape[0] == 0:
            raise EmptyGallery(self.path)
        matrix, norms, owners = stored.matrix, stored.norms, stored.owners
        if exclude is not None:
            found = self._find(self._conn, exclude)
            if found is not None:
                keep = owners != stored.ids.index(found[0])
                matrix, norms, owners = matrix[keep], norms[keep], owners[keep]
            if matrix.shape[0] == 0:
                return [None] * len(queries), np.full(len(queries), np.inf)
        best, dists = metric.nearest(queries, matrix, norms)
        return [stored.names[owners[j]] for j in best], np.asarray(dists, dtype=np.float64)

    def _search_index(
        self, queries: np.ndarray, exclude: Optional[str] = None
    ) -> Tuple[List[Optional[str]], np.ndarray]:
        """``search`` through the HNSW index: ``index_options.candidates`` per face from it, and every embedding
        (up to ``EXPAND_PER_PERSON``) of the people they belong to, distances and owners exactly from the store.
        With ``exclude``, a query whose candidates all belong to that person asks again for 32 times as many
        before giving up (None, inf): enough for anyone with fewer embeddings than that."""
        self.sync_index()
        skip = None
        if exclude is not None:
            found = self._find(self._conn, exclude)
            skip = found[0] if found is not None else None
        names: List[Optional[str]] = [None] * len(queries)
        dists = np.full(len(queries), np.inf)
        todo = np.arange(len(queries))
        count = self.index_options.candidates
        for _ in range(2):  # the first try, then one with 32 times the candidates
            missed = []
            found = self._candidates(queries[todo], count)
            people = self._people_rows(sorted({row[0] for rows in found for row in rows if row[0] != skip}))
            for query, found_rows in zip(todo, found):
                usable = [row for row in found_rows if row[0] != skip]
                if not usable:
                    missed.append(query)
                    continue
                usable += [row for pid in dict.fromkeys(u[0] for u in usable) for row in people.get(pid, [])]
                vectors = np.stack([u[2] for u in usable])
                distance = np.sqrt(((vectors - queries[query]) ** 2).sum(axis=1, dtype=np.float64))
                best = int(np.argmin(distance))
                names[query], dists[query] = usable[best][1], float(distance[best])
            todo = np.asarray(missed, dtype=np.int64)
            if not len(todo) or skip is None:
                break
            count *= 32
        return names, dists


def findable_key(name: str) -> Optional[str]:
    """``name``'s key (``names.name_key``), or None when no stored name can have it: a lone surrogate,
    which neither SQLite nor PostgreSQL can even encode."""
    key = name_key(name)
    if not key.isprintable() and any(0xD800 <= ord(ch) <= 0xDFFF for ch in key):
        return None
    return key


def check_new_embeddings(
    name: str,
    vectors: Sequence[np.ndarray],
    hashes: Sequence[str],
    sources: Optional[Sequence[Optional[str]]],
    boxes: Optional[Sequence[Optional[Sequence[int]]]],
) -> Tuple[str, list]:
    """What ``add_embeddings`` checks before any store writes: the display name, one hash per embedding.
    Returns (the name as stored, rows of (vector bytes, hash, source, box JSON))."""
    name = display_name(name)
    if not len(vectors):
        raise NeuralensError("add_embeddings: no embeddings given")
    if len(vectors) != len(hashes):
        raise NeuralensError("add_embeddings: one image hash per embedding is needed")
    sources = list(sources) if sources is not None else [None] * len(vectors)
    boxes = list(boxes) if boxes is not None else [None] * len(vectors)
    rows = [
        (vector_bytes(vector), digest, source, json.dumps(list(box)) if box else None)
        for vector, digest, source, box in zip(vectors, hashes, sources, boxes)
    ]
    return name, rows


class Gallery(GalleryBase, SQLiteStore):
    """Enrolled people and their face embeddings in an SQLite file.

    ``Gallery(path)`` opens (creating it unless ``create=False``) the gallery at ``path``, or at
    ``$NEURALENS_GALLERY``, or at ``faces.sqlite3`` in the user's data folder; a file from an older version
    is upgraded. ``len(gallery)`` is the number of people. Use as a context manager or call ``close()``.
    Enrolment, identification and verification are functions of ``neuralens.faces.recognition``."""

    def __init__(
        self,
        path: Union[str, os.PathLike, None] = None,
        create: bool = True,
        timeout: float = 60.0,
        index: Optional[IndexOptions] = None,
    ):
        self._cache: Optional[Tuple[tuple, _Stored]] = None
        self._counted: Optional[Tuple[tuple, int, GalleryState]] = None
        if is_url(path):
            raise NeuralensError("a postgresql:// gallery is opened with faces.open_gallery(), not Gallery()")
        SQLiteStore.__init__(
            self, Path(path).expanduser() if path else default_gallery_path(), create, timeout, EmptyGallery
        )
        self.index = FaceIndex(self.path, index)

    @property
    def index_options(self) -> IndexOptions:
        """How the HNSW index beside the file is built and searched."""
        return self.index.options

    def close(self) -> None:
        """Close the database connection."""
        SQLiteStore.close(self)

    # --- settings -------------------------------------------------------------------------------------
    def setting(self, key: str, default=None):
        """A stored setting (JSON-decoded), or ``default``."""
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def _claim_pipeline(self, conn: sqlite3.Connection, fingerprint: dict) -> None:
        """Inside a write: record ``fingerprint`` as the gallery's pipeline, or refuse a different one."""
        row = conn.execute("SELECT value FROM settings WHERE key = 'pipeline'").fetchone()
        if row is None:
            conn.execute("INSERT INTO settings VALUES ('pipeline', ?)", (json.dumps(fingerprint),))
            return
        self.check_pipeline(fingerprint, json.loads(row[0]))

    def set_calibration(self, threshold: float, fit: dict, info: dict, fingerprint: dict) -> None:
        """Store a calibrated threshold and confidence fit (one transaction); claims the pipeline."""
        with self._write() as conn:
            self._claim_pipeline(conn, fingerprint)
            for key, value in (("threshold", float(threshold)), ("confidence", fit), ("calibration", info)):
                conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(value)))

    # --- people ---------------------------------------------------------------------------------------
    def embedding_count(self) -> int:
        """The number of stored embeddings, everyone's together."""
        return self._counts()[0]

    def _version(self) -> tuple:
        """Changes when this or another connection has written (PRAGMA data_version sees the others)."""
        return (self._conn.execute("PRAGMA data_version").fetchone()[0], self._writes)

    def _counts(self) -> Tuple[int, GalleryState]:
        """(number of embeddings, the state the index syncs to), read once per change of the file: counting
        a million rows takes tens of milliseconds, too long to do for every search."""
        version = self._version()
        if self._counted is None or self._counted[0] != version:
            count = int(self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
            self._counted = (version, count, self._read_state(self._conn))
        return self._counted[1], self._counted[2]

    def _read_state(self, conn: sqlite3.Connection) -> GalleryState:
        values = dict(conn.execute("SELECT key, value FROM settings WHERE key LIKE 'embeddings_%'").fetchall())
        highest = conn.execute("SELECT MAX(id) FROM embeddings").fetchone()[0] or 0
        return GalleryState(
            token=json.loads(values.get("embeddings_token", '""')),
            generation=int(json.loads(values.get("embeddings_generation", "0"))),
            removals=int(json.loads(values.get("embeddings_removals", "0"))),
            high_water=max(int(json.loads(values.get("embeddings_high_water", "0"))), int(highest)),
        )

    def _changed(
        self, conn: sqlite3.Connection, state: GalleryState, added: int = 0, removed: bool = False
    ) -> GalleryState:
        """Inside a write that changed embeddings, from ``state`` (read before the change): bump the
        generation (and the removal count), record the high-water mark and make sure the gallery has its
        token. Returns the new state."""
        token = state.token or secrets.token_hex(8)
        new = GalleryState(token, state.generation + 1, state.removals + int(removed), state.high_water + added)
        for key, value in (
            ("embeddings_token", token),
            ("embeddings_generation", new.generation),
            ("embeddings_removals", new.removals),
            ("embeddings_high_water", new.high_water),
        ):
            conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(value)))
        return new

    def insert_embeddings(self, conn: sqlite3.Connection, rows: Sequence[tuple]) -> GalleryState:
        """Inside a write: store ``rows`` of (person_id, vector bytes, image_sha256, source, box JSON, created)
        under fresh ids above the high-water mark (ids are never reused, which the index relies on).
        Returns the gallery's new state."""
        state = self._read_state(conn)
        first = state.high_water + 1
        conn.executemany(
            "INSERT INTO embeddings (id, person_id, vector, image_sha256, source, box, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((first + i, *row) for i, row in enumerate(rows)),
        )
        return self._changed(conn, state, added=len(rows))

    def _add(self, name: str, prepared: list, fingerprint: dict) -> str:
        with self._write() as conn:
            self._claim_pipeline(conn, fingerprint)
            found = self._find(conn, name)
            if found is None:
                found = (
                    conn.execute(
                        "INSERT INTO persons (name, key, created) VALUES (?, ?, ?)", (name, name_key(name), _now())
                    ).lastrowid,
                    name,
                )
            self.insert_embeddings(conn, [(found[0], *row, _now()) for row in prepared])
        return found[1]

    def rename(self, old: str, new: str) -> str:
        """Rename a person (refused when ``new`` is someone else's name; a new spelling of their own, such
        as another case, is fine). Returns the new stored name."""
        new = display_name(new)
        person, _ = self._lookup(old)
        with self._write() as conn:
            taken = self._find(conn, new)
            if taken is not None and taken[0] != person:
                raise NeuralensError(f"'{taken[1]}' is already enrolled; remove or rename them first")
            conn.execute("UPDATE persons SET name = ?, key = ? WHERE id = ?", (new, name_key(new), person))
        return new

    def remove(self, name: str) -> int:
        """Delete a person and all their embeddings for good: the rows are deleted with secure_delete
        (zeroed), then the file is vacuumed and the WAL checkpointed and truncated, so no byte of them is
        left in the gallery's files. Returns the number of embeddings removed."""
        person, _ = self._lookup(name)
        with self._write() as conn:
            before = self._read_state(conn)
            ids = [row[0] for row in conn.execute("SELECT id FROM embeddings WHERE person_id = ?", (person,))]
            count = conn.execute("DELETE FROM embeddings WHERE person_id = ?", (person,)).rowcount
            conn.execute("DELETE FROM persons WHERE id = ?", (person,))
            after = self._changed(conn, before, removed=True)
        self.index.remove(ids, before, after)
        self.scrub()
        return int(count)

    def scrub(self) -> None:
        """Rewrite the file without free pages (VACUUM) and fold the WAL into it, truncated to zero."""
        self._retry_when_busy(lambda: self._conn.execute("VACUUM"))
        busy, _, _ = self._retry_when_busy(lambda: self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
        if busy:  # another process is reading; its snapshot keeps old pages until it finishes
            raise NeuralensError(
                f"{self.path}: removed, but another process holds the gallery open; "
                "run the removal again when it has finished to scrub the file"
            )

    # --- bulk -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def bulk_write(self, fingerprint: dict) -> Iterator[BulkWriter]:
        """One write transaction for a bulk import (``bulk.import_embeddings``), claiming the pipeline:
        all of it is stored or none."""
        with self._write() as conn:
            self._claim_pipeline(conn, fingerprint)
            yield _SQLiteBulk(self, conn)

    def export_rows(self) -> List[Tuple[str, bytes, Optional[str], Optional[str]]]:
        """Every stored embedding in id order as (person's name, vector bytes, source, image hash)."""
        return self._conn.execute(
            "SELECT p.name, e.vector, e.source, e.image_sha256 FROM embeddings e JOIN persons p ON p.id = e.person_id "
            "ORDER BY e.id"
        ).fetchall()

    # --- the index ------------------------------------------------------------------------------------
    def uses_index(self, metric: Optional[Metric] = None) -> bool:
        """Whether a search with ``metric`` goes through the HNSW index: Euclidean (the index's metric)
        and at least ``exact_below`` embeddings stored."""
        return isinstance(metric or EuclideanMetric(), EuclideanMetric) and (
            self.embedding_count() >= self.index.options.exact_below
        )

    def _rows_after(self, key: int, block: int = 50_000) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        cursor = self._conn.execute("SELECT id, vector FROM embeddings WHERE id > ? ORDER BY id", (key,))
        while True:
            rows = cursor.fetchmany(block)
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows))
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), EMBEDDING_DIM)
            yield ids, vectors

    def _all_ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self._conn.execute("SELECT id FROM embeddings")), dtype=np.uint64)

    def sync_index(self, progress: bool = True) -> int:
        """Bring the HNSW index level with the file: load it (memory-mapped when nothing changed), add the
        embeddings it lacks and drop the removed ones; a missing or stale index is rebuilt, with a progress
        bar when there is much to add. Returns the number of vectors added or removed."""
        count, state = self._counts()

        def bar(total: int) -> Progress:
            return Progress(min(total, count), "indexing faces", unit="face", enabled=progress and total >= 10_000)

        return self.index.sync(state, self._rows_after, self._all_ids, bar)

    # --- search ---------------------------------------------------------------------------------------
    def _stored(self) -> _Stored:
        """Every embedding as one (n, 128) float32 matrix with its owners. Cached until the gallery
        changes (PRAGMA data_version sees other processes' writes)."""
        version = (self._conn.execute("PRAGMA data_version").fetchone()[0], self._writes)
        if self._cache is not None and self._cache[0] == version:
            return self._cache[1]
        people = self._conn.execute("SELECT id, name FROM persons ORDER BY id").fetchall()
        rows = self._conn.execute("SELECT person_id, vector FROM embeddings ORDER BY id").fetchall()
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4")
        stored = stored_matrix(people, [r[0] for r in rows], matrix)
        self._cache = (version, stored)
        return stored

    def embeddings(self, name: Optional[str] = None) -> np.ndarray:
        """The stored embeddings, of everyone or of one person, as an (n, 128) float32 matrix."""
        if name is None:
            return self._stored().matrix.copy()
        pid, _ = self._lookup(name)
        rows = self._conn.execute("SELECT vector FROM embeddings WHERE person_id = ? ORDER BY id", (pid,)).fetchall()
        matrix = np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").astype(np.float32)
        return matrix.reshape(len(rows), EMBEDDING_DIM)

    def _candidate_rows(self, ids: np.ndarray) -> Dict[int, Tuple[int, str, np.ndarray]]:
        """id -> (person id, name, vector) for the given embedding ids that still exist, read from SQLite."""
        wanted = sorted({int(i) for i in np.asarray(ids).ravel() if i >= 0})
        found: Dict[int, Tuple[int, str, np.ndarray]] = {}
        for start in range(0, len(wanted), 900):  # below SQLite's older limit of 999 bound parameters
            part = wanted[start : start + 900]
            rows = self._conn.execute(
                "SELECT e.id, e.person_id, p.name, e.vector FROM embeddings e JOIN persons p ON p.id = e.person_id "
                f"WHERE e.id IN ({','.join('?' * len(part))})",
                part,
            )
            for eid, pid, name, blob in rows:
                found[int(eid)] = (int(pid), str(name), np.frombuffer(blob, dtype="<f4").astype(np.float32))
        return found

    def _candidates(self, queries: np.ndarray, count: int) -> List[List[Tuple[int, str, np.ndarray]]]:
        keys = self.index.candidates(queries, count)
        rows = self._candidate_rows(keys)
        return [[rows[k] for k in row if k in rows] for row in keys]

    def _people_rows(self, person_ids: Sequence[int]) -> Dict[int, List[Tuple[int, str, np.ndarray]]]:
        found: Dict[int, List[Tuple[int, str, np.ndarray]]] = {}
        wanted = [int(pid) for pid in person_ids]
        for start in range(0, len(wanted), 900):  # below SQLite's older limit of 999 bound parameters
            part = wanted[start : start + 900]
            rows = self._conn.execute(
                "SELECT r.person_id, p.name, r.vector FROM (SELECT person_id, vector, ROW_NUMBER() OVER "
                "(PARTITION BY person_id ORDER BY id) AS n FROM embeddings "
                f"WHERE person_id IN ({','.join('?' * len(part))})) r JOIN persons p ON p.id = r.person_id "
                "WHERE r.n <= ?",
                [*part, EXPAND_PER_PERSON],
            )
            for pid, name, blob in rows:
                vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
                found.setdefault(int(pid), []).append((int(pid), str(name), vector))
        return found


class _SQLiteBulk(BulkWriter):
    def __init__(self, gallery: Gallery, conn: sqlite3.Connection):
        self.gallery, self.conn = gallery, conn

    def people(self, spelling: Dict[str, str], created: str) -> Tuple[Dict[str, int], int]:
        people = dict(self.conn.execute("SELECT key, id FROM persons").fetchall())
        new = [key for key in spelling if key not in people]
        self.conn.executemany(
            "INSERT INTO persons (name, key, created) VALUES (?, ?, ?)", ((spelling[k], k, created) for k in new)
        )
        if new:
            people = dict(self.conn.execute("SELECT key, id FROM persons").fetchall())
        return people, len(new)

    def stored_hashes(self) -> Set[Tuple[int, str]]:
        return set(self.conn.execute("SELECT person_id, image_sha256 FROM embeddings").fetchall())

    def insert(self, rows: Sequence[tuple]) -> None:
        self.gallery.insert_embeddings(self.conn, rows)
