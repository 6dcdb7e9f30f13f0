"""Shared storage for a queue's inputs and results, named by a URL: what travels in a message is a key
(``inputs/3f2c....jpg``), never the image.

Only the local-folder form is built (``file:///shared/dir``: a folder every client and worker mounts, such as
NFS); an S3-compatible store would implement the same five methods. Every write is atomic (a temporary file in
the same folder, then a rename), so a reader never sees half a file and a worker killed mid-write leaves at
most a stray temporary file."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union
from urllib.parse import unquote, urlsplit

from ..cache import cache_folder
from ..errors import NeuralensError
from ..imageio import check_writable_folder
from .options import check_storage_url

# Keys are made by neuralens (content hashes, job ids), never by users: letters, digits, '.', '_', '-' and '/'.
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def default_storage_url() -> str:
    """The storage used when none is given: ``queue/`` in the cache folder (enough for one machine)."""
    return (cache_folder() / "queue").resolve().as_uri()


def check_key(key: str) -> str:
    """Return ``key`` when it is a well-formed storage key; NeuralensError otherwise (a message naming a
    path such as ``../../etc/passwd`` is refused, not followed)."""
    if not isinstance(key, str) or not KEY.match(key) or ".." in key.split("/"):
        raise NeuralensError(f"bad storage key {key!r}")
    return key


def file_key(path: Union[str, os.PathLike], prefix: str = "inputs") -> str:
    """A content-addressed key for a file (``inputs/<sha256>.jpg``): the same file uploaded twice, by any
    client, is stored once."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    suffix = Path(path).suffix.lower()
    suffix = suffix if re.match(r"^\.[a-z0-9]{1,8}$", suffix) else ""
    return f"{prefix}/{digest.hexdigest()[:40]}{suffix}"


class LocalStorage:
    """Storage in a folder (``file:///shared/dir``), created when missing."""

    def __init__(self, url: str):
        check_storage_url(url)
        self.url = url
        self.root = Path(unquote(urlsplit(url).path))
        check_writable_folder(self.root)

    def path(self, key: str) -> Path:
        """The local file of ``key`` (it may not exist yet)."""
        return self.root / check_key(key)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def fetch(self, key: str) -> Path:
        """A local file with the content of ``key``; NeuralensError when it is not there (a client and a
        worker given different storage URLs end up here, so the message says so)."""
        path = self.path(key)
        if not path.is_file():
            raise NeuralensError(f"{key} is not in the storage {self.url}: do the client and the workers share it?")
        return path

    def put_file(self, source: Union[str, os.PathLike], key: str, replace: bool = False) -> str:
        """Copy a file to ``key`` atomically, streamed. An existing key is kept unless ``replace`` (keys of
        inputs are content hashes: there, the same key is the same file). Returns the key."""
        if replace or not self.exists(key):
            self._write(key, Path(source))
        return key

    def put_bytes(self, data: bytes, key: str) -> str:
        """Write ``data`` at ``key`` atomically, replacing what was there. Returns the key."""
        self._write(key, data)
        return key

    def create(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` only if nothing is there yet, atomically and exclusively: of two workers
        racing, exactly one gets True. (The data is written to a temporary file first and then hard-linked
        into place: a link fails when the name exists, and the file is never seen half-written.)"""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temporary(path, data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def read_bytes(self, key: str) -> Optional[bytes]:
        """The content of ``key``, or None when it is not there."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def copy_to(self, key: str, destination: Union[str, os.PathLike]) -> Path:
        """Copy ``key`` to a local file atomically (a temporary file beside it, then a rename), for results
        the client keeps. Returns the destination."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temporary(destination, self.fetch(key))
        try:
            os.replace(tmp, destination)
        except BaseException:
            os.unlink(tmp)
            raise
        return destination

    def _temporary(self, path: Path, data: Union[bytes, Path]) -> str:
        """A temporary file next to ``path`` holding ``data`` (bytes, or the content of a local file)."""
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                if isinstance(data, Path):
                    with open(data, "rb") as source:
                        shutil.copyfileobj(source, handle, 1 << 20)
                else:
                    handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())  # a shared folder: the data must be there before the name is
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def _write(self, key: str, data: Union[bytes, Path]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temporary(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def open_storage(url: Optional[str] = None) -> LocalStorage:
    """The storage named by ``url`` (None: ``default_storage_url()``); NeuralensError for a bad URL or a
    folder that cannot be written."""
    return LocalStorage(url or default_storage_url())
