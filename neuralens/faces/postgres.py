"""The shared face gallery in PostgreSQL with the pgvector extension (``--gallery postgresql://...``).

Several servers and workers that open the same URL see one gallery: the same commands, API and guarantees
as the SQLite file (``gallery.Gallery``), whose storage-independent part (``GalleryBase``: pipeline checks,
thresholds, name lookups, exact search and re-ranking) it shares. Open it with ``open_gallery(url)``;
psycopg is imported only then (``pip install 'neuralens[postgres]'``); pgvector's binary format is read and
written here (``register_vector``), so the pgvector Python package is not needed.

Design notes (the why):
- Four tables, prefixed ``faces_`` so the gallery can share a database: settings (JSON values, the same
  keys as the SQLite file), persons (name as typed, ``names.name_key`` under UNIQUE), embeddings
  (``vector(128)``; an HNSW index with ``vector_l2_ops`` when a bulk import reaches ``exact_below`` or on
  ``build_index()``: the faces metric is Euclidean; the trained heads are searched exactly, as in SQLite)
  and one row of counters (embeddings, generation).
- Every write is one transaction. Two sessions enrolling the same new person meet at the UNIQUE key:
  ``INSERT ... ON CONFLICT DO NOTHING`` makes the second wait for the first and then add to that person,
  so there is never a second person of one name. A client killed mid-enrolment leaves nothing: PostgreSQL
  rolls back the transaction of a connection that goes away.
- The counters row is updated in every write that changes people or embeddings: searches read it (one
  small SELECT) to know the count without ``COUNT(*)`` over a million rows, and to know when the cached
  matrix of the exact search is stale. Writers queue on that row for the moment their transactions take.
- Search: exactly over a matrix cached in the process, as the SQLite gallery does below its crossover,
  unless the gallery holds at least ``exact_below`` embeddings (``EXACT_BELOW``, 2,000,000, by default)
  and has its HNSW index. Measured on this project's 2 cores (benchmarks/results/faces_postgres.md),
  pgvector's index (M=16) was slower than the exact search for the same recall at 10k, 100k and 1M
  embeddings (1M: exact 38 ms; the index 47 ms at ef_search 512 with recall@1 0.67), hence the high
  default. Through the index, it proposes ``candidates`` embeddings per face
  (``hnsw.ef_search`` = ``expansion_search``, at most pgvector's 1000), which are then measured exactly
  in float64 as the SQLite gallery measures its own index's candidates: the same names and distances.
- Removal is a DELETE: the rows are gone for every query at once. PostgreSQL keeps dead tuples until
  VACUUM, so removal vacuums the two tables at once (0.15 s at 100,000 and at 1,000,000 embeddings with the
  index, measured); autovacuum would do it later anyway. WAL and backups keep the bytes for their retention.
- The URL's password is never shown: ``path`` (used in every message) is the URL with it masked.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import struct
import urllib.parse
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, TypeVar

import numpy as np

from ..errors import NeuralensError
from ..options import check
from . import schema
from .api import DEFAULT_CONFIDENCE, DEFAULT_THRESHOLD
from .gallery import (
    EXPAND_PER_PERSON,
    BulkWriter,
    EmptyGallery,
    GalleryBase,
    _now,
    _Stored,
    stored_matrix,
)
from .index import IndexOptions
from .metric import EuclideanMetric, Metric
from .models import EMBEDDING_DIM
from .names import display_name, name_key

INSTALL_HINT = "pip install 'neuralens[postgres]'"
# The default crossover to the HNSW index (IndexOptions.exact_below when no options are given): above the
# sizes measured, where the exact search won (see the module's notes). Exact search keeps every embedding
# in each process's memory: 0.5 GB and a 9 s first read at 1,000,000.
EXACT_BELOW = 2_000_000
# The HNSW index's parameters: pgvector's defaults, by measurement on 20,000 face-like embeddings (2 cores):
# M=16 builds in 4.8 s, M=32 in 12.8 s, and M=32 made each later insert about 5 times slower (4.6 against
# 0.8 ms a row); recall with M=16 is in benchmarks/results/faces_postgres.md. Searching: IndexOptions'
# expansion_search (hnsw.ef_search) and candidates.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# Memory for building the index (a session setting, allowed to any role). The finished index took 79 MB at
# 100,000 embeddings and 794 MB at 1,000,000; a graph that outgrows this is built on in pages, more slowly
# (whether the 1M build, 21 minutes here, did was not checked).
BUILD_MEMORY = "1GB"
# Any constant, the same in every process: the advisory lock that serialises creating the tables.
_SCHEMA_LOCK = 0x6E6C6661636573  # "nlfaces"

T = TypeVar("T")
# (URL, the gallery's token) -> (generation, every embedding): see PostgresGallery._stored.
_MATRICES: Dict[Tuple[str, str], Tuple[int, _Stored]] = {}

_TABLES = [
    "CREATE TABLE IF NOT EXISTS faces_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS faces_persons (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS faces_embeddings (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES faces_persons(id) ON DELETE CASCADE,
    vector vector({EMBEDDING_DIM}) NOT NULL,
    image_sha256 TEXT NOT NULL,
    source TEXT,
    box TEXT,
    created TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS faces_embeddings_by_person ON faces_embeddings (person_id)",
    """CREATE TABLE IF NOT EXISTS faces_counts (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    embeddings BIGINT NOT NULL,
    generation BIGINT NOT NULL)""",
]


def redact(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` parameter) replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        if ":" in credentials and credentials.split(":", 1)[1]:
            netloc = credentials.split(":", 1)[0] + ":***@" + host
    query = urllib.parse.urlencode(
        [
            (k, "***" if k.lower() == "password" and v else v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="/:*",
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _psycopg():
    """The psycopg module, or a NeuralensError naming the extra to install."""
    try:
        import psycopg  # noqa: PLC0415
    except ImportError as exc:
        raise NeuralensError(f"the PostgreSQL gallery needs psycopg ({exc}): {INSTALL_HINT}") from None
    return psycopg


def register_vector(conn) -> None:
    """Teach ``conn`` pgvector's binary ``vector`` format, as numpy arrays both ways: a header of two
    big-endian int16 (dimensions, unused) and the big-endian float32 values. Our own few lines rather than
    the pgvector package's adapter, which decodes into its ``Vector`` class: numpy in and out is all the
    gallery needs, and it is exact (float32 both ends)."""
    from psycopg.adapt import Dumper, Loader  # noqa: PLC0415
    from psycopg.pq import Format  # noqa: PLC0415
    from psycopg.types import TypeInfo  # noqa: PLC0415

    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise NeuralensError("the pgvector extension's vector type is missing")
    info.register(conn)  # so that COPY can name it

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj) -> bytes:
            vector = np.asarray(obj, dtype=">f4").ravel()
            return struct.pack(">HH", len(vector), 0) + vector.tobytes()

    class VectorLoader(Loader):
        format = Format.BINARY

        def load(self, data) -> np.ndarray:
            return np.frombuffer(bytes(data), dtype=">f4", offset=4).astype(np.float32)

    conn.adapters.register_dumper(np.ndarray, VectorDumper)
    conn.adapters.register_loader(info.oid, VectorLoader)


def _first_line(exc: BaseException, url: str) -> str:
    """An exception's message in one line, with any password of ``url`` masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    password = urllib.parse.urlsplit(url).password
    return text.replace(password, "***") if password else text


class PostgresGallery(GalleryBase):
    """Enrolled people and their face embeddings in PostgreSQL with pgvector, shared by every process that
    opens the same URL.

    ``PostgresGallery(url)`` connects (within ``timeout`` seconds; locks are waited for as long), creates
    the tables and the ``vector`` extension on first use unless ``create=False`` (then ``EmptyGallery``)
    and refuses a database whose tables another version made. ``index`` sets the exact/HNSW crossover
    (``IndexOptions.exact_below``) and the search (``expansion_search`` is ``hnsw.ef_search``,
    ``candidates`` the neighbours re-ranked exactly); the index's build parameters are ``HNSW_M`` and
    ``HNSW_EF_CONSTRUCTION``. Raises NeuralensError, in one line, when the server cannot be reached
    or the extension cannot be created. Use as a context manager or call ``close()``."""

    _tables = {"persons": "faces_persons", "embeddings": "faces_embeddings"}
    _param = "%s"
    _by_key = 'p.key COLLATE "C"'  # code-point order, the SQLite file's (binary) order of the same keys

    def __init__(self, url: str, create: bool = True, timeout: float = 60.0, index: Optional[IndexOptions] = None):
        self._psycopg = _psycopg()
        self._url = url
        self.path = redact(url)
        self.index_options = check(index or IndexOptions(exact_below=EXACT_BELOW))
        self._timeout = timeout
        settings = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        extra = {} if "connect_timeout" in settings else {"connect_timeout": max(1, int(min(timeout, 10)))}
        try:
            self._conn = self._psycopg.connect(url, autocommit=True, **extra)
        except self._psycopg.Error as exc:
            raise NeuralensError(f"cannot reach the PostgreSQL gallery {self.path}: {_first_line(exc, url)}") from None
        try:
            self._conn.execute(f"SET lock_timeout = {int(timeout * 1000)}")
            self._prepare(create)
            self._token = str(self.setting("token", ""))
            register_vector(self._conn)
            ef = min(1000, max(self.index_options.expansion_search, self.index_options.candidates))
            self._conn.execute(f"SET hnsw.ef_search = {int(ef)}")
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, self._psycopg.Error):
                raise NeuralensError(f"{self.path}: cannot use the gallery ({_first_line(exc, url)})") from None
            raise

    # --- plumbing -------------------------------------------------------------------------------------
    def _prepare(self, create: bool) -> None:
        """Check the tables' format, or create them (under an advisory lock, so that two processes
        creating one gallery at once do not collide) with the extension and the HNSW index."""
        exists = self._conn.execute("SELECT to_regclass('faces_settings') IS NOT NULL").fetchone()[0]
        if not exists and not create:
            raise EmptyGallery(self.path)
        if not exists:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                self._create_extension()
                for statement in _TABLES:
                    self._conn.execute(statement)
                fmt = {"name": schema.FORMAT, "version": schema.FORMAT_VERSION, "store": "postgresql"}
                for key, value in (
                    ("format", fmt),
                    ("token", secrets.token_hex(8)),  # names this gallery in the process-wide matrix cache
                    ("threshold", DEFAULT_THRESHOLD),
                    ("confidence", DEFAULT_CONFIDENCE),
                ):
                    self._conn.execute(
                        "INSERT INTO faces_settings VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                        (key, json.dumps(value)),
                    )
                self._conn.execute("INSERT INTO faces_counts VALUES (TRUE, 0, 0) ON CONFLICT (one) DO NOTHING")
        found = self.setting("format")
        if not isinstance(found, dict) or found.get("name") != schema.FORMAT:
            raise NeuralensError(f"{self.path}: its faces_settings table is not a neuralens face gallery's")
        version = found.get("version", 0)
        if not isinstance(version, int) or version > schema.FORMAT_VERSION:
            raise NeuralensError(
                f"{self.path}: made by a newer neuralens (gallery format {version}); upgrade neuralens"
            )

    def _create_extension(self) -> None:
        """``CREATE EXTENSION vector`` unless it is there, with one line saying what to do when the
        server lacks pgvector or the role may not create it."""
        if self._conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            return
        try:
            with self._conn.transaction():  # a savepoint: the error's message is ours, not an aborted transaction
                self._conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except self._psycopg.Error as exc:
            raise NeuralensError(
                f"{self.path}: the pgvector extension is not enabled in this database and cannot be created "
                f"({_first_line(exc, self._url)}); have its owner or an administrator run CREATE EXTENSION vector"
            ) from None

    def _write(self, work: Callable[..., T]) -> T:
        """Run ``work(connection)`` in one transaction: all of it or nothing. A deadlock, or a person removed
        by another session between our lookup and our insert, is retried (twice) from the start."""
        errors = self._psycopg.errors
        retried = (errors.DeadlockDetected, errors.SerializationFailure, errors.ForeignKeyViolation)
        for attempt in range(3):
            try:
                with self._conn.transaction():
                    return work(self._conn)
            except retried:
                if attempt == 2:
                    raise NeuralensError(
                        f"{self.path}: the gallery was not changed (too many conflicting writes)"
                    ) from None
            except errors.LockNotAvailable:
                raise NeuralensError(
                    f"{self.path}: the gallery stayed locked by another session for {self._timeout:g} s"
                ) from None
            except self._psycopg.Error as exc:
                raise NeuralensError(
                    f"{self.path}: the gallery was not changed ({_first_line(exc, self._url)})"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _changed(self, conn, added: int = 0) -> int:
        """Inside a write that changed people or embeddings: count them and bump the generation. Returns
        the number of embeddings now stored."""
        return int(
            conn.execute(
                "UPDATE faces_counts SET embeddings = embeddings + %s, generation = generation + 1 RETURNING embeddings",
                (added,),
            ).fetchone()[0]
        )

    def build_index(self) -> bool:
        """Build the HNSW index now, whatever the gallery's size, in one transaction (an operator's step,
        at a quiet time: 42 s at 100,000 embeddings, 21 minutes at 1,000,000 on 2 cores). Searches use it
        from ``exact_below`` embeddings on. Returns False when it existed already."""

        def work(conn) -> bool:
            if self._has_index(conn):
                return False
            self._ensure_index(conn, count=self.index_options.exact_below)
            return True

        return self._write(work)

    @staticmethod
    def _has_index(conn) -> bool:
        return bool(conn.execute("SELECT to_regclass('faces_embeddings_hnsw') IS NOT NULL").fetchone()[0])

    def _ensure_index(self, conn, count: int) -> None:
        """Inside a bulk import that leaves ``count`` embeddings: build the HNSW index once the gallery is
        large enough to be searched through it (an enrolment never does: the build takes minutes). Below
        ``exact_below`` there is no index to keep up: building one over 20,000 rows took 4.8 s, adding the
        same rows one by one to an index 20 s (0.8 ms a row). Once built, PostgreSQL keeps it up to date
        with every write. The build takes a SHARE lock: other sessions' searches go on, their writes wait."""
        if count < self.index_options.exact_below:
            return
        if self._has_index(conn):
            return
        conn.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
        conn.execute(
            "CREATE INDEX IF NOT EXISTS faces_embeddings_hnsw ON faces_embeddings "
            f"USING hnsw (vector vector_l2_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
        )

    def _state(self) -> Tuple[int, int, bool]:
        """(number of embeddings, generation, whether the HNSW index exists): one small read, so it is done
        for every search."""
        row = self._conn.execute(
            "SELECT embeddings, generation, to_regclass('faces_embeddings_hnsw') IS NOT NULL FROM faces_counts"
        ).fetchone()
        return int(row[0]), int(row[1]), bool(row[2])

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    # --- settings -------------------------------------------------------------------------------------
    def setting(self, key: str, default=None):
        """A stored setting (JSON-decoded), or ``default``."""
        row = self._conn.execute("SELECT value FROM faces_settings WHERE key = %s", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def _claim_pipeline(self, conn, fingerprint: dict) -> None:
        """Inside a write: record ``fingerprint`` as the gallery's pipeline, or refuse a different one."""
        claimed = conn.execute(
            "INSERT INTO faces_settings VALUES ('pipeline', %s) ON CONFLICT (key) DO NOTHING",
            (json.dumps(fingerprint),),
        ).rowcount
        if not claimed:
            stored = conn.execute("SELECT value FROM faces_settings WHERE key = 'pipeline'").fetchone()[0]
            self.check_pipeline(fingerprint, json.loads(stored))

    def set_calibration(self, threshold: float, fit: dict, info: dict, fingerprint: dict) -> None:
        """Store a calibrated threshold and confidence fit (one transaction); claims the pipeline."""

        def work(conn) -> None:
            self._claim_pipeline(conn, fingerprint)
            for key, value in (("threshold", float(threshold)), ("confidence", fit), ("calibration", info)):
                conn.execute(
                    "INSERT INTO faces_settings VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (key, json.dumps(value)),
                )

        self._write(work)

    # --- people ---------------------------------------------------------------------------------------
    def embedding_count(self) -> int:
        """The number of stored embeddings, everyone's together."""
        return self._state()[0]

    def _person_id(self, conn, name: str, created: str) -> Tuple[int, str]:
        """Inside a write: (id, stored name) of the person with ``name``'s key, created when new. A session
        creating the same person at this moment makes this one wait for its commit, then find that person."""
        row = conn.execute(
            "INSERT INTO faces_persons (name, key, created) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING RETURNING id, name",
            (name, name_key(name), created),
        ).fetchone()
        if row is None:
            row = conn.execute("SELECT id, name FROM faces_persons WHERE key = %s", (name_key(name),)).fetchone()
        return int(row[0]), str(row[1])

    def _insert_rows(self, conn, rows: Sequence[tuple]) -> int:
        """Inside a write: store rows of (person id, vector bytes, image hash, source, box JSON, created)
        with one COPY, and count them. Returns the number of embeddings now stored."""
        with conn.cursor().copy(
            "COPY faces_embeddings (person_id, vector, image_sha256, source, box, created) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "vector", "text", "text", "text", "text"])
            for person_id, data, digest, source, box, created in rows:
                copy.write_row((person_id, np.frombuffer(data, dtype="<f4"), digest, source, box, created))
        return self._changed(conn, added=len(rows))

    def _add(self, name: str, prepared: list, fingerprint: dict) -> str:

        def work(conn) -> str:
            self._claim_pipeline(conn, fingerprint)
            created = _now()
            person, stored = self._person_id(conn, name, created)
            self._insert_rows(conn, [(person, *row, created) for row in prepared])
            return stored

        return self._write(work)

    def rename(self, old: str, new: str) -> str:
        """Rename a person (refused when ``new`` is someone else's name; a new spelling of their own, such
        as another case, is fine). Returns the new stored name."""
        new = display_name(new)
        person, _ = self._lookup(old)

        def work(conn) -> None:
            taken = self._find(conn, new)
            if taken is not None and taken[0] != person:
                raise NeuralensError(f"'{taken[1]}' is already enrolled; remove or rename them first")
            conn.execute("UPDATE faces_persons SET name = %s, key = %s WHERE id = %s", (new, name_key(new), person))
            self._changed(conn)

        try:
            self._write(work)
        except NeuralensError as exc:
            if "duplicate key" in str(exc):  # someone enrolled ``new`` between the check and the update
                raise NeuralensError(f"'{new}' is already enrolled; remove or rename them first") from None
            raise
        return new

    def remove(self, name: str) -> int:
        """Delete a person and all their embeddings (one transaction): they are gone for every query at
        once. The tables are then vacuumed, so their dead rows are reclaimed now rather than at the next
        autovacuum (0.15 s at 1,000,000 embeddings). Returns the number removed."""
        person, shown = self._lookup(name)

        def work(conn) -> int:
            # Locking the person first makes an enrolment of them that is under way finish (and be
            # removed too) or wait and start again, so no embedding is left without its person.
            if conn.execute("SELECT id FROM faces_persons WHERE id = %s FOR UPDATE", (person,)).fetchone() is None:
                return -1
            count = conn.execute("DELETE FROM faces_embeddings WHERE person_id = %s", (person,)).rowcount
            conn.execute("DELETE FROM faces_persons WHERE id = %s", (person,))
            self._changed(conn, added=-count)
            return count

        count = self._write(work)
        if count < 0:  # removed by another session meanwhile
            self._lookup(shown)
            return 0
        self._conn.execute("VACUUM faces_embeddings, faces_persons")
        return int(count)

    # --- bulk -----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def bulk_write(self, fingerprint: dict) -> Iterator[BulkWriter]:
        """One transaction for a bulk import (``bulk.import_embeddings``), claiming the pipeline: all of it
        is stored or none. An import that brings the gallery to ``exact_below`` embeddings ends by building
        the HNSW index."""
        try:
            with self._conn.transaction():
                self._claim_pipeline(self._conn, fingerprint)
                yield _PostgresBulk(self)
                # After every block: one build over all the rows, not block after block into an index.
                self._ensure_index(self._conn, self._state()[0])
        except self._psycopg.Error as exc:
            raise NeuralensError(f"{self.path}: the gallery was not changed ({_first_line(exc, self._url)})") from None

    def export_rows(self) -> List[Tuple[str, bytes, Optional[str], Optional[str]]]:
        """Every stored embedding in id order as (person's name, vector bytes, source, image hash)."""
        rows = self._conn.execute(
            "SELECT p.name, e.vector, e.source, e.image_sha256 FROM faces_embeddings e "
            "JOIN faces_persons p ON p.id = e.person_id ORDER BY e.id",
            binary=True,
        )
        return [
            (name, np.asarray(vector, dtype="<f4").tobytes(), source, digest) for name, vector, source, digest in rows
        ]

    # --- search ---------------------------------------------------------------------------------------
    def uses_index(self, metric: Optional[Metric] = None) -> bool:
        """Whether a search with ``metric`` goes through the HNSW index: Euclidean (the index's metric), at
        least ``exact_below`` embeddings stored, and the index built."""
        if not isinstance(metric or EuclideanMetric(), EuclideanMetric):
            return False
        count, _, indexed = self._state()
        return indexed and count >= self.index_options.exact_below

    def _stored(self) -> _Stored:
        """Every embedding as one matrix with its owners, read in one snapshot and cached in this process
        until the counters' generation changes (any session's write). The cache outlives this object: the
        web opens the gallery for every request, and reading 100,000 embeddings takes 0.7 s."""
        key = (self._url, self._token)
        generation = self._state()[1]
        cached = _MATRICES.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        with self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            generation = self._state()[1]
            people = self._conn.execute("SELECT id, name FROM faces_persons ORDER BY id").fetchall()
            rows = self._conn.execute(
                "SELECT person_id, vector FROM faces_embeddings ORDER BY id", binary=True
            ).fetchall()
        matrix = np.stack([r[1] for r in rows]) if rows else np.zeros((0, EMBEDDING_DIM), np.float32)
        stored = stored_matrix(people, [r[0] for r in rows], matrix)
        _MATRICES[key] = (generation, stored)
        return stored

    def embeddings(self, name: Optional[str] = None) -> np.ndarray:
        """The stored embeddings, of everyone or of one person, as an (n, 128) float32 matrix."""
        if name is None:
            return self._stored().matrix.copy()
        pid, _ = self._lookup(name)
        rows = self._conn.execute(
            "SELECT vector FROM faces_embeddings WHERE person_id = %s ORDER BY id", (pid,), binary=True
        ).fetchall()
        if not rows:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return np.stack([np.asarray(r[0], dtype=np.float32) for r in rows])

    def _candidates(self, queries: np.ndarray, count: int) -> List[List[Tuple[int, str, np.ndarray]]]:
        # The inner ORDER BY ... LIMIT on the table alone is the form pgvector's index scan answers; the
        # join to the names comes after it.
        found = []
        for query in queries:
            rows = self._conn.execute(
                "SELECT c.person_id, p.name, c.vector FROM (SELECT person_id, vector FROM faces_embeddings "
                "ORDER BY vector <-> %s LIMIT %s) c JOIN faces_persons p ON p.id = c.person_id",
                (np.asarray(query, dtype=np.float32), int(count)),
                binary=True,
            ).fetchall()
            found.append([(int(pid), str(name), np.asarray(vector, dtype=np.float32)) for pid, name, vector in rows])
        return found

    def _people_rows(self, person_ids: Sequence[int]) -> Dict[int, List[Tuple[int, str, np.ndarray]]]:
        found: Dict[int, List[Tuple[int, str, np.ndarray]]] = {}
        if not person_ids:
            return found
        rows = self._conn.execute(
            "SELECT r.person_id, p.name, r.vector FROM (SELECT person_id, vector, ROW_NUMBER() OVER "
            "(PARTITION BY person_id ORDER BY id) AS n FROM faces_embeddings WHERE person_id = ANY(%s)) r "
            "JOIN faces_persons p ON p.id = r.person_id WHERE r.n <= %s",
            ([int(pid) for pid in person_ids], EXPAND_PER_PERSON),
            binary=True,
        ).fetchall()
        for pid, name, vector in rows:
            found.setdefault(int(pid), []).append((int(pid), str(name), np.asarray(vector, dtype=np.float32)))
        return found


class _PostgresBulk(BulkWriter):
    def __init__(self, gallery: PostgresGallery):
        self.gallery, self.conn = gallery, gallery._conn

    def people(self, spelling: Dict[str, str], created: str) -> Tuple[Dict[str, int], int]:
        known = dict(self.conn.execute("SELECT key, id FROM faces_persons").fetchall())
        new = [(spelling[key], key, created) for key in spelling if key not in known]
        if new:
            with self.conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO faces_persons (name, key, created) VALUES (%s, %s, %s) ON CONFLICT (key) DO NOTHING",
                    new,
                )
            known = dict(self.conn.execute("SELECT key, id FROM faces_persons").fetchall())
            self.gallery._changed(self.conn)
        return {key: int(value) for key, value in known.items()}, len(new)

    def stored_hashes(self) -> Set[Tuple[int, str]]:
        rows = self.conn.execute("SELECT person_id, image_sha256 FROM faces_embeddings")
        return {(int(pid), digest) for pid, digest in rows}

    def insert(self, rows: Sequence[tuple]) -> None:
        self.gallery._insert_rows(self.conn, rows)
