"""The SQLite file under the gallery: creating it privately, opening it, retrying while another process
holds a lock, and one-transaction writes. ``Gallery`` builds on ``SQLiteStore``."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..errors import NeuralensError
from . import schema


class SQLiteStore:
    """An SQLite file in WAL mode with the gallery's tables. ``missing`` makes the error raised when the
    file does not exist and ``create`` is false."""

    def __init__(
        self,
        path: Path,
        create: bool = True,
        timeout: float = 60.0,
        missing: Optional[Callable[[Path], Exception]] = None,
    ):
        self.path = path
        if not self.path.exists():
            if not create:
                raise (missing(self.path) if missing else NeuralensError(f"{self.path}: no such gallery"))
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
                    raise NeuralensError(
                        f"{self.path}: the gallery stayed locked by another process for {self._timeout:g} s"
                    ) from None
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
        """Create the tables on first use; check the format of an existing file and upgrade an old one
        (schema.prepare), all in one transaction. Foreign keys are off meanwhile: the upgrade rebuilds the
        persons table, and dropping it with them on would delete every embedding."""
        self._conn.execute("PRAGMA foreign_keys = OFF")
        try:
            with self._write() as conn:
                schema.prepare(conn, self.path)
        finally:
            self._conn.execute("PRAGMA foreign_keys = ON")

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

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
