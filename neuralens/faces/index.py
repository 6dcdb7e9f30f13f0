"""The approximate nearest-neighbour index beside a large gallery: HNSW (``usearch``), persisted next to the
SQLite file, never the source of truth.

    index = FaceIndex(gallery_path)
    index.sync(state, rows_since, all_ids)       # brings it level with the SQLite file (incremental)
    keys, _ = index.candidates(queries, 10)      # embedding ids to re-rank exactly from SQLite

Design notes (the why):
- Keys are the SQLite ``embeddings.id`` values. The gallery never reuses an id (it keeps a high-water mark),
  so "which ids does the index hold" against "which ids does the file hold" is an exact diff: additions are
  the ids above the index's highest, removals are found by comparing the two sets.
- The index only proposes candidates; the gallery re-reads their vectors and owners from SQLite and
  computes the distances exactly, so a stale entry can cost recall but never a wrong name or distance.
- Vectors are stored as bfloat16 (``IndexOptions.dtype``): half the disk of float32, and exact re-ranking
  makes the rounding harmless. Measured with usearch alone on face-like embeddings (2 cores, AMD EPYC with
  AVX512-BF16, M=32, ef_construction 64, 2026-12-07): build at 100,000 float32 34 s, float16 20 s, bfloat16
  13 s; at 1,000,000 float32 754 s, bfloat16 343 s; the same recall, and the index search alone 1.3-1.6x
  faster than float16's (through the gallery, with its SQLite reads, within the noise). int8 builds faster
  still, but usearch scales each int8 vector to unit length, so that index ranks by angle, not distance:
  recall@1 for strangers at 1,000,000 fell to 0.50 (float32: 0.87), so it is not offered.
- usearch over hnswlib, by measurement (100,000 face-like embeddings, 2 cores, M=32, ef_construction=200):
  build 28 s vs 58 s, the same recall (1.00 / 0.99 at ef=256), wheels for every platform (hnswlib 0.8
  compiles from source), and a saved index can be memory-mapped (``view``) so a one-off command opens a
  million-face index at once instead of reading ~0.5 GB (a development measurement with both libraries
  installed, 2026-12-02; the index itself is measured in ``benchmarks/results/faces_scale.md``).
- The file is written to a temporary name and renamed; a sidecar JSON says which gallery state it holds.
  A missing, unreadable or mismatched pair is rebuilt from SQLite.
- Removed people must leave nothing behind (docs/faces.md): usearch only marks a removed vector, so its
  slot is then overwritten by a zero placeholder that is removed in turn, before the index is saved.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Tuple

import numpy as np

from ..errors import NeuralensError
from ..options import check, option
from ..progress import Progress
from .models import EMBEDDING_DIM

INDEX_FORMAT = "neuralens-faces-index"
INDEX_VERSION = 1
# How the index stores its vectors (usearch scalar kinds; int8 is left out: see the design notes).
VECTOR_TYPES = ("bf16", "f16", "f32")
# Placeholder keys (for scrubbing removed slots) live far above any SQLite rowid a gallery will reach.
_PLACEHOLDER_BASE = 1 << 62
# The options a saved index was built with: another value makes it stale. An index saved before the sidecar
# recorded ``dtype`` (float16, 2026-12-02 to 12-07) lacks the key and is rebuilt once.
_BUILT_WITH = ("connectivity", "dtype")


@dataclass
class IndexOptions:
    """When the gallery searches through the HNSW index, and how the index is built and searched."""

    # The crossover (benchmarks/results/faces_scale.md, 2 cores): one face searched exactly takes 0.08 ms
    # among 10,000 embeddings and 1.9 ms among 100,000 (linear), through the index 0.3 and 1.1 ms.
    exact_below: int = option(
        50_000, "galleries with fewer embeddings are searched exactly (below this, exact is as fast)", minimum=0
    )
    # Measured on 100,000 face-like embeddings, 2 busy cores (recall@1 new photos / strangers, p50):
    # M=16 ef=512 0.96 / 0.96, 1.1 ms; M=32 ef=256 1.00 / 0.96, 0.9 ms; M=32 ef=512 1.00 / 1.00, 1.4 ms.
    # ef_construction 64 instead of 128 halves the build (15 vs 26-36 s) at the same recall.
    connectivity: int = option(32, "HNSW links per node (M)", minimum=4, maximum=128)
    expansion_add: int = option(64, "HNSW candidate list while building (ef_construction)", minimum=8)
    expansion_search: int = option(512, "HNSW candidate list while searching (ef)", minimum=8)
    dtype: str = option("bf16", "how the file's index stores vectors (exact re-ranking follows)", choices=VECTOR_TYPES)
    candidates: int = option(10, "neighbours taken from the index per face, then re-ranked exactly", minimum=1)
    save_after: int = option(
        5000, "embeddings added since the index file was written that are searched exactly beside it", minimum=0
    )


@dataclass(frozen=True)
class GalleryState:
    """What the gallery file holds, as the index needs to know it: a token naming the gallery, a counter of
    writes that changed embeddings, a counter of removals, and the highest embedding id ever given."""

    token: str
    generation: int
    removals: int
    high_water: int


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def index_paths(gallery_path: Path) -> Tuple[Path, Path]:
    """(index file, its sidecar JSON) for a gallery file: ``faces.sqlite3.usearch`` and ``...usearch.json``."""
    index = gallery_path.with_name(gallery_path.name + ".usearch")
    return index, index.with_name(index.name + ".json")


class FaceIndex:
    """The HNSW index of one gallery file. ``sync`` brings it level with the file, ``candidates`` searches
    it, ``remove`` drops ids at once (scrubbing their vectors), ``save`` writes it when it changed."""

    def __init__(self, gallery_path: Path, options: Optional[IndexOptions] = None):
        self.options = check(options or IndexOptions())
        self.path, self.meta_path = index_paths(gallery_path)
        self._index = None  # usearch.index.Index, loaded (writable) or viewed (read-only, memory-mapped)
        self._viewed = False
        self._state: Optional[GalleryState] = None  # the gallery state the index proper holds
        self._synced: Optional[GalleryState] = None  # the state the index and the tail hold together
        self._tail_ids: Optional[np.ndarray] = None  # embeddings added since the file was written ...
        self._tail: Optional[np.ndarray] = None  # ... and their vectors, searched exactly
        self._max_key = 0
        self._unsaved = 0

    # --- files ----------------------------------------------------------------------------------------
    def _new(self):
        try:
            from usearch.index import Index  # noqa: PLC0415 -- only large galleries need it
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise NeuralensError(f"usearch is not installed ({exc}); install the 'usearch' package") from None
        return Index(
            ndim=EMBEDDING_DIM,
            metric="l2sq",
            dtype=self.options.dtype,
            connectivity=self.options.connectivity,
            expansion_add=self.options.expansion_add,
            expansion_search=self.options.expansion_search,
        )

    def _read_meta(self) -> Optional[dict]:
        try:
            meta = json.loads(self.meta_path.read_text())
            size = self.path.stat().st_size
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT or meta.get("version") != INDEX_VERSION:
            return None
        if meta.get("bytes") != size or any(meta.get(key) != getattr(self.options, key) for key in _BUILT_WITH):
            return None  # not the file the sidecar describes, or built with other settings (rebuilt)
        return meta

    def _open(self, token: str, writable: bool) -> None:
        """Load the saved index when it belongs to this gallery (memory-mapped unless ``writable``); else
        start an empty one. A file that cannot be read is treated as missing."""
        if self._index is not None and (self._viewed is False or not writable):
            return
        meta = self._read_meta()
        index = self._new()
        state = None
        if meta is not None and meta.get("token") == token:
            try:
                if writable:
                    index.load(str(self.path))
                else:
                    index.view(str(self.path))
                state = GalleryState(token, int(meta["generation"]), int(meta["removals"]), int(meta["high_water"]))
                self._max_key = int(meta["max_key"])
            except (RuntimeError, ValueError, KeyError, OSError):
                index, state = self._new(), None
        if state is None:
            self._max_key = 0
        index.expansion_search = self.options.expansion_search
        self._index, self._viewed, self._state = index, not writable and state is not None, state

    def save(self) -> None:
        """Write the index and then its sidecar (each to a temporary name, then renamed) if it has changes."""
        if self._index is None or self._viewed or self._state is None or not self._unsaved:
            return
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            self._index.save(tmp)
            os.chmod(tmp, 0o600)  # biometric data, like the gallery itself
            # The old sidecar goes first: a crash before the new one is written leaves an index without
            # a sidecar (rebuilt), never a sidecar describing another state of the index.
            self.meta_path.unlink(missing_ok=True)
            os.replace(tmp, self.path)
        except (OSError, RuntimeError):
            Path(tmp).unlink(missing_ok=True)
            return  # the index is a cache: failing to save it costs time on the next open, nothing else
        meta = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "token": self._state.token,
            "generation": self._state.generation,
            "removals": self._state.removals,
            "high_water": self._state.high_water,
            "max_key": self._max_key,
            "count": len(self._index),
            **{key: getattr(self.options, key) for key in _BUILT_WITH},
            "bytes": self.path.stat().st_size,
        }
        _write_text(self.meta_path, json.dumps(meta))
        self._unsaved = 0

    def delete_files(self) -> None:
        """Remove the index and its sidecar from disk (the in-memory index is dropped too)."""
        self._index, self._state, self._synced, self._viewed = None, None, None, False
        self._tail_ids, self._tail = None, None
        for path in (self.path, self.meta_path):
            path.unlink(missing_ok=True)

    # --- keeping level with the gallery ------------------------------------------------------------
    def sync(
        self,
        state: GalleryState,
        rows_after: Callable[[int], Iterator[Tuple[np.ndarray, np.ndarray]]],
        all_ids: Callable[[], np.ndarray],
        progress: Optional[Callable[[int], Progress]] = None,
    ) -> int:
        """Bring the index level with the gallery. ``rows_after(id)`` yields (ids, (n, 128) vectors) blocks of
        the embeddings above ``id``; ``all_ids()`` is every stored id (needed only when something was removed
        since the index was saved); ``progress(total)`` makes the ``Progress`` shown while vectors are added
        to the index. Returns the number of vectors added or removed.

        A few embeddings added since the file was written (at most ``save_after``, nothing removed) are
        kept beside the memory-mapped index and searched exactly: a one-off command after an enrolment then
        reads a few rows instead of loading, extending and rewriting the whole index."""
        if self._synced == state:
            return 0
        self._open(state.token, writable=False)
        if self._state == state:
            self._synced, self._tail_ids, self._tail = state, None, None
            return 0
        if (
            self._state is not None
            and self._state.removals == state.removals
            and state.high_water - self._max_key <= self.options.save_after
        ):
            blocks = list(rows_after(self._max_key))
            if blocks:
                self._tail_ids = np.concatenate([ids for ids, _ in blocks]).astype(np.int64)
                self._tail = np.concatenate([vectors for _, vectors in blocks]).astype(np.float32)
            else:
                self._tail_ids, self._tail = None, None
            self._synced = state
            return 0 if self._tail_ids is None else len(self._tail_ids)
        self._open(state.token, writable=True)
        self._tail_ids, self._tail = None, None
        changed = 0
        if self._state is not None and self._state.removals != state.removals and len(self._index):
            stored = np.asarray(all_ids(), dtype=np.uint64)
            keys = np.asarray(self._index.keys, dtype=np.uint64)
            changed += self._remove_keys(np.setdiff1d(keys, stored, assume_unique=True))
        bar = progress(state.high_water - self._max_key) if progress else Progress(None, enabled=False)
        with bar:
            for ids, vectors in rows_after(self._max_key):
                ids = np.asarray(ids, dtype=np.uint64)
                self._index.add(ids, vectors, threads=_threads())
                self._max_key = max(self._max_key, int(ids.max()))
                changed += len(ids)
                bar.update(len(ids))
        self._state = self._synced = state
        self._unsaved += 1
        self.save()
        return changed

    def remove(self, ids: Iterable[int], before: GalleryState, after: GalleryState) -> None:
        """Drop ``ids`` now (the gallery deleted them, going from state ``before`` to ``after``), scrub their
        vectors from the index and rewrite its file, so no byte of a removed person stays in it. When the
        index was not level with ``before``, it is marked for a full comparison at the next ``sync``."""
        if not self.path.exists() and self._index is None:
            return
        self._open(after.token, writable=True)
        if self._state is None:
            self.delete_files()  # it belonged to another gallery or could not be read: rebuilt when needed
            return
        level = self._state == before
        self._remove_keys(np.asarray(list(ids), dtype=np.uint64))
        self._state = after if level else GalleryState(after.token, -1, -1, after.high_water)
        self._synced, self._tail_ids, self._tail = None, None, None  # the next search re-reads what is new
        self._unsaved += 1
        self.save()

    def _remove_keys(self, keys: np.ndarray) -> int:
        """Remove ``keys`` from the in-memory index and overwrite their slots: usearch keeps a removed
        vector's bytes and reuses the slot for the next addition, so as many zero placeholders are added
        and removed again. ``compact`` re-links the neighbours of removed nodes (without it, measured on
        5,000 vectors, recall after placeholders fell to 0.004; with it 0.93 as before)."""
        keys = keys[np.asarray(self._index.contains(keys), dtype=bool)] if len(keys) else keys
        if not len(keys):
            return 0
        self._index.remove(keys, compact=True, threads=_threads())
        placeholders = np.arange(len(keys), dtype=np.uint64) + np.uint64(_PLACEHOLDER_BASE)
        self._index.add(placeholders, np.zeros((len(keys), EMBEDDING_DIM), np.float32), threads=_threads())
        self._index.remove(placeholders, compact=True, threads=_threads())
        return len(keys)

    # --- search ---------------------------------------------------------------------------------------
    def set_expansion_search(self, value: int) -> None:
        """Search with another candidate list (ef) from now on: more is slower and finds more."""
        self.options = check(dataclasses.replace(self.options, expansion_search=int(value)))
        if self._index is not None:
            self._index.expansion_search = self.options.expansion_search

    def __len__(self) -> int:
        """The number of embeddings the index and its exactly searched tail hold."""
        tail = 0 if self._tail_ids is None else len(self._tail_ids)
        return tail + (0 if self._index is None else len(self._index))

    def candidates(self, queries: np.ndarray, count: Optional[int] = None) -> np.ndarray:
        """The ``count`` (default: the options') nearest stored ids for each query from the index, and as
        many from the exactly searched tail when there is one: an (n, count or 2 x count) int64 array, -1
        where there are fewer entries."""
        count = min(count or self.options.candidates, max(1, len(self)))
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        keys = np.full((len(queries), 0), -1, dtype=np.int64)
        if self._index is not None and len(self._index):
            found = self._index.search(queries, min(count, len(self._index)), threads=1)
            keys = np.asarray(found.keys, dtype=np.int64).reshape(len(queries), -1)
            # One query gives a Matches (with ``count``), several a BatchMatches (with ``counts``).
            counts = np.asarray(getattr(found, "counts", getattr(found, "count", keys.shape[1]))).reshape(-1)
            keys[np.arange(keys.shape[1])[None, :] >= counts[:, None]] = -1
        if self._tail_ids is not None:  # the few embeddings added since the file was written, exactly
            squared = (self._tail**2).sum(axis=1)[None, :] - 2.0 * (queries @ self._tail.T)
            nearest = np.argsort(squared, axis=1)[:, :count]
            keys = np.concatenate([keys, self._tail_ids[nearest]], axis=1)
        return keys


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, then rename), readable by its owner only."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
