"""The gallery file's tables, and the upgrade of files written by older versions.

Version 1 kept people's names under ``UNIQUE COLLATE NOCASE``, which folds ASCII letters only: 'Émile' and
'émile', or 'Straße' and 'STRASSE', or 'É' precomposed and 'E' + a combining accent, were different people.
Version 2 stores each name's key (``names.name_key``: NFC, then case folding) under the UNIQUE constraint
and the name as typed (NFC) beside it. A version-1 file is upgraded when it is opened, in the caller's
transaction; when two of its people share a key the upgrade is refused, naming them, and nothing changes.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from pathlib import Path
from typing import Dict

from ..errors import NeuralensError
from .api import DEFAULT_CONFIDENCE, DEFAULT_THRESHOLD
from .names import name_key

FORMAT = "neuralens-faces-gallery"
FORMAT_VERSION = 2

_PERSONS = """CREATE TABLE {table} (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL)"""

TABLES = [
    "CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _PERSONS.format(table="IF NOT EXISTS persons"),
    """CREATE TABLE IF NOT EXISTS embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    image_sha256 TEXT NOT NULL,
    source TEXT,
    box TEXT,
    created TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS embeddings_by_person ON embeddings(person_id)",
]


def _format(conn: sqlite3.Connection):
    """The decoded 'format' setting, or None."""
    row = conn.execute("SELECT value FROM settings WHERE key = 'format'").fetchone()
    if row is None:
        return None
    try:
        value = json.loads(row[0])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Inside a write transaction (with foreign keys off): create the tables of a new gallery, check the
    format of an existing one and upgrade a version-1 file. Raises NeuralensError for a file that is not a
    gallery, one from a newer version, or an upgrade that would merge two people."""
    for statement in TABLES:
        conn.execute(statement)
    found = _format(conn)
    if found is None:
        conn.execute(
            "INSERT INTO settings VALUES ('format', ?)", (json.dumps({"name": FORMAT, "version": FORMAT_VERSION}),)
        )
        # The defaults are written down too, so the file says which threshold and fit it uses.
        conn.execute("INSERT INTO settings VALUES ('threshold', ?)", (json.dumps(DEFAULT_THRESHOLD),))
        conn.execute("INSERT INTO settings VALUES ('confidence', ?)", (json.dumps(DEFAULT_CONFIDENCE),))
        return
    if found.get("name") != FORMAT:
        raise NeuralensError(f"{path}: not a neuralens face gallery")
    version = found.get("version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise NeuralensError(f"{path}: made by a newer neuralens (gallery format {version}); upgrade neuralens")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(persons)")}
    if "key" not in columns:
        upgrade_names(conn, path)
    if version < FORMAT_VERSION:
        conn.execute(
            "UPDATE settings SET value = ? WHERE key = 'format'", (json.dumps({**found, "version": FORMAT_VERSION}),)
        )


def upgrade_names(conn: sqlite3.Connection, path: Path) -> None:
    """Rebuild a version-1 ``persons`` table with a ``key`` column (SQLite cannot drop a UNIQUE
    constraint in place): same ids, so the embeddings keep their owners. Foreign keys must be off, or
    dropping the old table would delete every embedding."""
    rows = conn.execute("SELECT id, name, created FROM persons ORDER BY id").fetchall()
    owners: Dict[str, str] = {}
    for _, name, _ in rows:
        key = name_key(name)
        if key in owners:
            raise NeuralensError(
                f"{path}: cannot upgrade the gallery: '{owners[key]}' and '{name}' are two people whose names "
                "now match (names match regardless of case and of how accents are encoded); rename one of "
                "them with the neuralens version that made the file, then open it again"
            )
        owners[key] = name
    conn.execute(_PERSONS.format(table="persons_v2"))
    conn.executemany(
        "INSERT INTO persons_v2 (id, name, key, created) VALUES (?, ?, ?, ?)",
        [(pid, unicodedata.normalize("NFC", name), name_key(name), created) for pid, name, created in rows],
    )
    conn.execute("DROP TABLE persons")
    conn.execute("ALTER TABLE persons_v2 RENAME TO persons")
    if conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
        raise NeuralensError(f"{path}: cannot upgrade the gallery: some embeddings belong to nobody")
