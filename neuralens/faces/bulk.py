"""Bulk import and export of names with 128-d embeddings: ``.npz``, CSV and JSON Lines.

    with open_gallery("big.sqlite3") as gallery:    # or a postgresql:// URL
        import_file(gallery, "people.npz")        # ImportResult(added, people, new_people, skipped, ...)
        export_file(gallery, "backup.jsonl")      # ExportResult(path, people, embeddings, format)

The formats (docs/faces.md):
- ``.npz``: arrays ``names`` (strings, one per embedding) and ``embeddings`` (n x 128 numbers); optional
  ``sources`` and ``image_sha256`` (strings) and ``pipeline`` (a JSON string: the fingerprint). Read with
  ``allow_pickle=False``: a file that needs pickle (object arrays) is refused.
- CSV with a header: ``name`` and either ``embedding`` (a JSON list, or numbers separated by spaces) or the
  128 columns ``e0`` ... ``e127``; optional ``source`` and ``image_sha256``.
- JSON Lines: one object per line, ``{"name": ..., "embedding": [...]}`` (optional ``source``,
  ``image_sha256``); a line without ``name`` but with ``pipeline`` gives the fingerprint.

Rows whose names have the same key (``names.name_key``) are one person's embeddings (the first spelling is
kept); names already enrolled get the embeddings added. An embedding that person already has (same image
hash, or for imports without one the same vector) is skipped, so importing a file twice changes nothing.
Everything is checked before anything is written, and the write is one transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..errors import NeuralensError
from ..progress import Progress
from .gallery import GalleryBase, _now
from .models import EMBEDDING_DIM, Pipeline
from .names import display_name, name_key

FORMATS = {".npz": "npz", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
FILE_FORMAT = "neuralens-faces-embeddings"
_BLOCK = 50_000  # rows per INSERT batch and per progress step


@dataclass
class Embeddings:
    """Rows read from a file: names, an (n, 128) float32 matrix, optional sources and image hashes, and
    the pipeline fingerprint when the file gives one."""

    names: List[str]
    vectors: np.ndarray
    sources: Optional[List[Optional[str]]] = None
    hashes: Optional[List[Optional[str]]] = None
    pipeline: Optional[dict] = None


@dataclass
class ImportResult:
    """What an import did: embeddings added, distinct people in the file, of whom new to the gallery,
    embeddings skipped as already stored, warnings, and the seconds spent storing and indexing."""

    file: str
    added: int
    people: int
    new_people: int
    skipped: int
    warnings: List[str] = field(default_factory=list)
    store_seconds: float = 0.0
    index_seconds: float = 0.0

    def to_dict(self) -> dict:
        """A JSON-ready form of every field."""
        data = asdict(self)
        data["store_seconds"] = round(self.store_seconds, 3)
        data["index_seconds"] = round(self.index_seconds, 3)
        return data


@dataclass
class ExportResult:
    """What an export wrote: the file, its format, the number of people and of embeddings."""

    path: str
    format: str
    people: int
    embeddings: int

    def to_dict(self) -> dict:
        """A JSON-ready form: {'path', 'format', 'people', 'embeddings'}."""
        return asdict(self)


def file_format(path: Union[str, os.PathLike]) -> str:
    """'npz', 'csv' or 'jsonl' from the file's extension; NeuralensError for any other."""
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise NeuralensError(f"{path}: unknown embeddings format (use {', '.join(FORMATS)})")
    return kind


# --- reading ----------------------------------------------------------------------------------------------
def read_embeddings(path: Union[str, os.PathLike]) -> Embeddings:
    """Read and check a file of names and embeddings (format by extension). Raises NeuralensError, naming
    the file and the row, for a file that is not what its extension says, a wrong dimension, a value that
    is not a finite number, a bad name or an empty file."""
    path = Path(path)
    kind = file_format(path)
    if not path.is_file():
        raise NeuralensError(f"{path}: no such file")
    reader = {"npz": _read_npz, "csv": _read_csv, "jsonl": _read_jsonl}[kind]
    rows = reader(path)
    if not rows.names:
        raise NeuralensError(f"{path}: no embeddings in the file")
    if rows.vectors.shape != (len(rows.names), EMBEDDING_DIM):
        raise NeuralensError(
            f"{path}: embeddings must be {EMBEDDING_DIM} numbers each, got shape {tuple(rows.vectors.shape)}"
        )
    finite = np.isfinite(rows.vectors).all(axis=1)
    if not finite.all():
        raise NeuralensError(f"{path}: row {int(np.argmin(finite)) + 1}: the embedding has NaN or infinite values")
    for number, name in enumerate(rows.names, start=1):
        if not isinstance(name, str):
            raise NeuralensError(f"{path}: row {number}: the name is not text")
    if rows.pipeline is not None and not isinstance(rows.pipeline, dict):
        raise NeuralensError(f"{path}: the pipeline fingerprint must be a JSON object")
    return rows


def _read_npz(path: Path) -> Embeddings:
    if not zipfile.is_zipfile(path):  # np.load would take any other file for a pickle
        raise NeuralensError(f"{path}: not an .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise NeuralensError(f"{path}: not an .npz file ({exc})") from None
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise NeuralensError(f"{path}: cannot read it without pickle ({exc}); store names as strings") from None
    for needed in ("names", "embeddings"):
        if needed not in arrays:
            raise NeuralensError(f"{path}: no array '{needed}' (found: {', '.join(arrays) or 'none'})")
    names, vectors = arrays["names"], arrays["embeddings"]
    if names.dtype.kind != "U" or names.ndim != 1:
        raise NeuralensError(f"{path}: 'names' must be a 1-d array of strings, got {names.dtype} {names.shape}")
    if vectors.dtype.kind not in "fiu":
        raise NeuralensError(f"{path}: 'embeddings' must be numbers, got {vectors.dtype}")
    if vectors.ndim != 2 or len(vectors) != len(names):
        raise NeuralensError(
            f"{path}: 'embeddings' must be {len(names)} x {EMBEDDING_DIM} (one row per name), got {vectors.shape}"
        )
    pipeline = None
    if "pipeline" in arrays:
        pipeline = _json_value(str(arrays["pipeline"]), path, "pipeline")
    return Embeddings(
        names=names.tolist(),
        vectors=vectors.astype(np.float32),
        sources=_strings(arrays, "sources", len(names), path),
        hashes=_strings(arrays, "image_sha256", len(names), path),
        pipeline=pipeline,
    )


def _strings(arrays: dict, name: str, count: int, path: Path) -> Optional[List[Optional[str]]]:
    if name not in arrays:
        return None
    values = arrays[name]
    if values.dtype.kind != "U" or values.shape != (count,):
        raise NeuralensError(f"{path}: '{name}' must be {count} strings")
    return [value or None for value in values.tolist()]


def _json_value(text: str, path: Path, what: str):
    try:
        return json.loads(text)
    except ValueError:
        raise NeuralensError(f"{path}: {what} is not valid JSON") from None


def _text(path: Path) -> str:
    data = path.read_bytes()
    if b"\0" in data[:65536]:
        raise NeuralensError(f"{path}: a binary file, not {file_format(path).upper()} text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NeuralensError(f"{path}: not UTF-8 text") from None


def _numbers(value, path: Path, row: int) -> List[float]:
    """An embedding given as a list of numbers, a JSON list in a string, or numbers separated by spaces."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = _json_value(text, path, f"row {row}: the embedding")
        else:
            value = text.replace(",", " ").split()
    if not isinstance(value, list):
        raise NeuralensError(f"{path}: row {row}: the embedding must be a list of numbers")
    try:
        numbers = [float(x) for x in value]
    except (TypeError, ValueError):
        raise NeuralensError(f"{path}: row {row}: the embedding has something that is not a number") from None
    if len(numbers) != EMBEDDING_DIM:
        raise NeuralensError(f"{path}: row {row}: expected {EMBEDDING_DIM} numbers, got {len(numbers)}")
    return numbers


def _read_csv(path: Path) -> Embeddings:
    reader = csv.reader(io.StringIO(_text(path)))
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        raise NeuralensError(f"{path}: empty file") from None
    except csv.Error as exc:
        raise NeuralensError(f"{path}: not CSV ({exc})") from None
    if "name" not in header:
        raise NeuralensError(f"{path}: the CSV header has no 'name' column (found: {', '.join(header[:8])})")
    where = {column: i for i, column in enumerate(header)}
    columns = [f"e{i}" for i in range(EMBEDDING_DIM)]
    if "embedding" not in where and not all(column in where for column in columns):
        raise NeuralensError(f"{path}: the CSV needs an 'embedding' column or the columns e0 ... e{EMBEDDING_DIM - 1}")
    names, vectors, sources, hashes = [], [], [], []
    try:
        for row_number, row in enumerate(reader, start=1):
            if not row:
                continue
            if len(row) != len(header):
                raise NeuralensError(f"{path}: row {row_number}: {len(row)} fields, the header has {len(header)}")
            names.append(row[where["name"]])
            if "embedding" in where:
                vectors.append(_numbers(row[where["embedding"]], path, row_number))
            else:
                vectors.append(_numbers([row[where[column]] for column in columns], path, row_number))
            sources.append(row[where["source"]] or None if "source" in where else None)
            hashes.append(row[where["image_sha256"]] or None if "image_sha256" in where else None)
    except csv.Error as exc:
        raise NeuralensError(f"{path}: not CSV ({exc})") from None
    return Embeddings(
        names,
        np.asarray(vectors, dtype=np.float32).reshape(-1, EMBEDDING_DIM),
        sources if "source" in where else None,
        hashes if "image_sha256" in where else None,
    )


def _read_jsonl(path: Path) -> Embeddings:
    names, vectors, sources, hashes, pipeline = [], [], [], [], None
    for line_number, line in enumerate(_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise NeuralensError(f"{path}: line {line_number} is not JSON") from None
        if not isinstance(item, dict):
            raise NeuralensError(f"{path}: line {line_number}: expected a JSON object")
        if "name" not in item:
            if "pipeline" in item:
                pipeline = item["pipeline"]
                continue
            raise NeuralensError(f"{path}: line {line_number}: no 'name'")
        if "embedding" not in item:
            raise NeuralensError(f"{path}: line {line_number}: no 'embedding'")
        names.append(item["name"])
        vectors.append(_numbers(item["embedding"], path, line_number))
        sources.append(item.get("source"))
        hashes.append(item.get("image_sha256"))
    return Embeddings(
        names,
        np.asarray(vectors, dtype=np.float32).reshape(-1, EMBEDDING_DIM),
        sources,
        hashes,
        pipeline,
    )


# --- importing ----------------------------------------------------------------------------------------------
def import_file(gallery: GalleryBase, path: Union[str, os.PathLike], progress: bool = True) -> ImportResult:
    """Read ``path`` (see ``read_embeddings``) and store its embeddings (``import_embeddings``). Returns an
    ``ImportResult``."""
    rows = read_embeddings(path)
    return import_embeddings(gallery, rows, progress=progress, label=str(path))


def _vector_hash(vector_bytes: bytes) -> str:
    return "vector:" + hashlib.sha256(vector_bytes).hexdigest()


def import_embeddings(
    gallery: GalleryBase, rows: Embeddings, progress: bool = True, label: str = "embeddings"
) -> ImportResult:
    """Store ``rows`` in ``gallery`` in one transaction: all of them or none (an interruption or a crash
    leaves the gallery as it was). Names are checked first (``names.display_name``); the pipeline is the
    file's fingerprint when given (refused when it differs from the gallery's), else the gallery's, else
    the default dlib pipeline (said in the warnings). Then, for a gallery big enough to be searched
    through the index, the index is brought up to date. Returns an ``ImportResult``."""
    started = time.perf_counter()
    result = ImportResult(file=label, added=0, people=0, new_people=0, skipped=0)
    keys: List[str] = []
    spelling: Dict[str, str] = {}
    for number, name in enumerate(rows.names, start=1):
        try:
            shown = display_name(name)
        except NeuralensError as exc:
            raise NeuralensError(f"{label}: row {number}: {exc}") from None
        key = name_key(shown)
        spelling.setdefault(key, shown)
        keys.append(key)
    result.people = len(spelling)
    fingerprint = rows.pipeline
    if fingerprint is None:
        fingerprint = gallery.pipeline or Pipeline().fingerprint()
        result.warnings.append(
            "the file gives no pipeline fingerprint: assumed "
            + ("the gallery's" if gallery.pipeline else "the default dlib pipeline (5-point alignment, HOG)")
        )
    gallery.check_pipeline(fingerprint)
    vectors = np.ascontiguousarray(rows.vectors, dtype="<f4")
    with (
        Progress(len(keys), "importing faces", unit="face", enabled=progress) as bar,
        gallery.bulk_write(fingerprint) as writer,
    ):
        created = _now()
        people, result.new_people = writer.people(spelling, created)
        seen = set()
        if result.new_people < len(spelling):  # some people exist already: what they have must not be stored twice
            seen = writer.stored_hashes()
        for start in range(0, len(keys), _BLOCK):
            block = []
            for i in range(start, min(len(keys), start + _BLOCK)):
                data = vectors[i].tobytes()
                digest = (rows.hashes[i] if rows.hashes else None) or _vector_hash(data)
                owner = people[keys[i]]
                if (owner, digest) in seen:
                    result.skipped += 1
                    continue
                seen.add((owner, digest))
                source = rows.sources[i] if rows.sources else None
                block.append((owner, data, digest, source, None, created))
            if block:
                writer.insert(block)
                result.added += len(block)
            bar.update(min(_BLOCK, len(keys) - start))
    result.store_seconds = time.perf_counter() - started
    if gallery.uses_index():
        started = time.perf_counter()
        gallery.sync_index(progress=progress)  # builds or extends the index and writes it
        result.index_seconds = time.perf_counter() - started
    return result


# --- exporting ----------------------------------------------------------------------------------------------
def export_file(gallery: GalleryBase, path: Union[str, os.PathLike]) -> ExportResult:
    """Write every stored embedding with its person's name, source and image hash to ``path`` (format by
    extension), with the gallery's pipeline fingerprint where the format has room for it (npz, JSON
    Lines). The file is written under a temporary name and renamed, readable by its owner only (faces are
    biometric data). Returns an ``ExportResult``."""
    path = Path(path)
    kind = file_format(path)
    if not path.parent.is_dir():
        raise NeuralensError(f"{path}: the folder {path.parent} does not exist")
    rows = gallery.export_rows()
    names = [r[0] for r in rows]
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), EMBEDDING_DIM)
    sources = [r[2] or "" for r in rows]
    hashes = [r[3] or "" for r in rows]
    pipeline = gallery.pipeline
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if kind == "npz":
                arrays = {
                    "names": np.asarray(names, dtype=str),
                    "embeddings": vectors.astype(np.float32),
                    "sources": np.asarray(sources, dtype=str),
                    "image_sha256": np.asarray(hashes, dtype=str),
                }
                if pipeline:
                    arrays["pipeline"] = np.asarray(json.dumps(pipeline))
                np.savez(out, **arrays)
            else:
                text = io.TextIOWrapper(out, encoding="utf-8", newline="")
                _write_rows(text, kind, names, vectors, sources, hashes, pipeline)
                text.flush()
                text.detach()
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise NeuralensError(f"cannot write {path}: {exc.strerror or exc}") from None
    return ExportResult(str(path), kind, len(set(names)), len(rows))


def _write_rows(
    out: io.TextIOBase,
    kind: str,
    names: Sequence[str],
    vectors: np.ndarray,
    sources: Sequence[str],
    hashes: Sequence[str],
    pipeline: Optional[dict],
) -> None:
    if kind == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["name", "source", "image_sha256", *[f"e{i}" for i in range(EMBEDDING_DIM)]])
        for name, vector, source, digest in zip(names, vectors.tolist(), sources, hashes):
            writer.writerow([name, source, digest, *vector])
        return
    out.write(json.dumps({"format": FILE_FORMAT, "pipeline": pipeline}) + "\n")
    for name, vector, source, digest in zip(names, vectors.tolist(), sources, hashes):
        out.write(json.dumps({"name": name, "embedding": vector, "source": source or None, "image_sha256": digest}))
        out.write("\n")
