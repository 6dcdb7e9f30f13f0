"""Shared storage for a queue's inputs and results, named by a URL: what travels in a message is a key
(``inputs/3f2c....jpg``), never the image.

Two forms, with the same methods (exists, fetch, put_file, put_bytes, create, read_bytes, copy_to):

- ``file:///shared/dir`` (``LocalStorage``): a folder every client and worker mounts, such as NFS. Every write
  is atomic (a temporary file in the same folder, then a rename), so a reader never sees half a file and a
  worker killed mid-write leaves at most a stray temporary file.
- ``s3://BUCKET[/PREFIX][?endpoint_url=http://HOST:9000&region=R]`` (``S3Storage``): an S3-compatible store
  (AWS S3, MinIO, ...) through boto3, the ``s3`` extra, imported only for such a URL. An object appears whole
  or not at all (S3's PUT), and the exclusive create is a conditional PUT (``If-None-Match: *``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union
from urllib.parse import unquote, urlsplit

from ..cache import cache_folder
from ..errors import NeuralensError
from ..imageio import check_writable_folder
from .options import KEY, check_storage_url, split_s3_url


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


S3_CONNECT_SECONDS = 10.0  # a wrong endpoint is reported after this (and boto3's retries), not after a minute
S3_CONFLICT_RETRIES = 5  # a 409 to a conditional PUT (two writes of one key at once on AWS): try again
S3_MISSING = ("404", "NoSuchKey", "NotFound")
S3_DENIED = ("403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled")


def _s3_code(exc: Exception) -> str:
    """The error code of a botocore ClientError ('' for other exceptions)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _s3_status(exc: Exception) -> Optional[int]:
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


class S3Storage:
    """Storage in an S3-compatible bucket: ``s3://BUCKET[/PREFIX]``, with ``?endpoint_url=http://HOST:PORT``
    for a store other than AWS (MinIO, Ceph, moto ...) and ``?region=NAME``. Keys are objects under PREFIX.

    Credentials never go in the URL (it is printed, and given to every worker): boto3 finds them as it always
    does (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials, an instance role). The
    role needs s3:ListBucket on the bucket (without it S3 answers 403 rather than 404 for a missing key, and
    that is reported as an error, not as absent) and s3:GetObject, s3:PutObject and s3:DeleteObject (the
    probe at open time only) under the prefix.

    Opening checks everything a queue needs before any work: the bucket is there and answers, a probe object
    can be written and deleted, and the store honours conditional writes (a second ``If-None-Match: *`` PUT
    of the probe must be refused). A store that ignores that header would let two workers both "create" a
    job's completion marker; it is refused at open time, in one line, rather than trusted. (AWS S3 has
    honoured it since August 2024, and so do recent MinIO releases and moto, which the tests use.)

    ``fetch`` downloads into the cache folder (``<cache>/s3/BUCKET/...``) and reuses that copy while the
    object's ETag and size are unchanged; a changed object is downloaded again, beside the old copy (which
    stays: a cache, safe to delete when no worker runs)."""

    def __init__(self, url: str):
        check_storage_url(url)
        self.url = url
        self.location = split_s3_url(url)
        self.bucket = self.location.bucket
        self._where = f"s3://{self.bucket}" + (
            f" at {self.location.endpoint_url}" if self.location.endpoint_url else ""
        )
        self._client = self._connect()
        self._check_writable()

    # -- the storage's methods, as LocalStorage's ------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def fetch(self, key: str) -> Path:
        """A local file with the content of ``key``: the cached copy when the object's ETag and size still
        match it, else a new download (a temporary file, then a rename: a reader never sees half a file).
        NeuralensError when it is not there (a client and a worker given different storage URLs end up here,
        so the message says so)."""
        for _attempt in range(3):  # the object replaced between the HEAD and the GET: look again
            head = self._head(key)
            if head is None:
                raise NeuralensError(f"{key} is not in the storage {self.url}: do the client and the workers share it?")
            etag, size = head["ETag"], head["ContentLength"]
            path = self._cached(key, etag)
            if path.is_file() and path.stat().st_size == size:
                return path
            path.parent.mkdir(parents=True, exist_ok=True)
            if self._download(key, path, etag):
                return path
        raise NeuralensError(f"{key} in the storage {self.url} keeps changing while it is downloaded")

    def put_file(self, source: Union[str, os.PathLike], key: str, replace: bool = False) -> str:
        """Upload a file to ``key``, streamed (boto3's ``upload_file``: one PUT, or a multipart upload for a
        large file, which S3 also makes visible only once complete). An existing key is kept unless
        ``replace`` (keys of inputs are content hashes: there, the same key is the same file). Returns the
        key."""
        if replace or not self.exists(key):
            try:
                with self._calling(f"cannot upload {key}"):
                    self._client.upload_file(os.fspath(source), self.bucket, self._name(key))
            except self._boto3.exceptions.S3UploadFailedError as exc:  # s3transfer's wrapper of a ClientError
                raise NeuralensError(_one_line(f"cannot upload {key} to {self._where}: {exc}")) from None
        return key

    def put_bytes(self, data: bytes, key: str) -> str:
        """Write ``data`` at ``key`` in one PUT, replacing what was there. Returns the key."""
        with self._calling(f"cannot write {key}"):
            self._client.put_object(Bucket=self.bucket, Key=self._name(key), Body=bytes(data))
        return key

    def create(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` only if nothing is there yet, exclusively: of two workers racing, exactly
        one gets True. A conditional PUT (``If-None-Match: *``): the store refuses it with 412 when the key
        exists, and AWS answers 409 to a write that overlaps another conditional write of the key, which is
        tried again. (Opening the storage checked that the store honours the header.) A PUT that boto3 sent
        again after its answer was lost can find its own first copy and give False: the caller then reads the
        marker, which holds its own data, as the tasks do."""
        name = self._name(key)
        for attempt in range(S3_CONFLICT_RETRIES + 1):
            try:
                self._client.put_object(Bucket=self.bucket, Key=name, Body=bytes(data), IfNoneMatch="*")
                return True
            except self._botocore.exceptions.ClientError as exc:
                if _s3_code(exc) == "PreconditionFailed" or _s3_status(exc) == 412:
                    return False
                if (_s3_code(exc) == "ConditionalRequestConflict" or _s3_status(exc) == 409) and (
                    attempt < S3_CONFLICT_RETRIES
                ):
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise self._failure(exc, f"cannot create {key}") from None
            except self._botocore.exceptions.BotoCoreError as exc:
                raise self._failure(exc, f"cannot create {key}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def read_bytes(self, key: str) -> Optional[bytes]:
        """The content of ``key``, or None when it is not there."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._name(key))
            with self._calling(f"cannot read {key}"):
                return response["Body"].read()
        except self._botocore.exceptions.ClientError as exc:
            if _s3_code(exc) in S3_MISSING:
                return None
            raise self._failure(exc, f"cannot read {key}") from None
        except self._botocore.exceptions.BotoCoreError as exc:
            raise self._failure(exc, f"cannot read {key}") from None

    def copy_to(self, key: str, destination: Union[str, os.PathLike]) -> Path:
        """Download ``key`` to a local file atomically (a temporary file beside it, then a rename), for
        results the client keeps; it does not go through the cache. Returns the destination."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            head = self._head(key)
            if head is None:
                raise NeuralensError(f"{key} is not in the storage {self.url}: do the client and the workers share it?")
            if self._download(key, destination, head["ETag"]):
                return destination
        raise NeuralensError(f"{key} in the storage {self.url} keeps changing while it is downloaded")

    # -- S3 --------------------------------------------------------------------------------------------------

    def _connect(self):
        """A boto3 client of its own session (a session is not shared across threads), path-style addressing
        for a custom endpoint (MinIO and the like have no per-bucket host names)."""
        try:
            import boto3.exceptions  # noqa: PLC0415 -- only for s3:// URLs: the default install has no boto3
            import botocore.config  # noqa: PLC0415
            import botocore.exceptions  # noqa: PLC0415
        except ImportError:
            raise NeuralensError("s3:// storage needs boto3: pip install neuralens[s3]") from None
        self._boto3, self._botocore = boto3, botocore
        config = botocore.config.Config(
            connect_timeout=S3_CONNECT_SECONDS,
            retries={"mode": "standard"},
            s3={"addressing_style": "path"} if self.location.endpoint_url else None,
        )
        with self._calling("cannot set up the S3 client"):
            return boto3.session.Session().client(
                "s3", endpoint_url=self.location.endpoint_url, region_name=self.location.region, config=config
            )

    def _check_writable(self) -> None:
        """The bucket answers, a probe can be written (exclusively, twice: the second must be refused) and
        deleted; NeuralensError in one line otherwise."""
        with self._calling("cannot open the bucket", bucket=True):
            self._client.head_bucket(Bucket=self.bucket)
        probe = self._name(f"neuralens-write-test/{uuid.uuid4().hex}")
        unsupported = NeuralensError(
            f"{self._where} does not honour conditional writes (If-None-Match: *), which neuralens needs for "
            "its exclusive completion markers: use AWS S3, MinIO or another store that has them"
        )
        with self._calling("cannot write to the bucket"):
            try:
                self._client.put_object(Bucket=self.bucket, Key=probe, Body=b"", IfNoneMatch="*")
            except self._botocore.exceptions.ClientError as exc:
                if _s3_code(exc) in ("NotImplemented", "InvalidArgument") or _s3_status(exc) == 501:
                    raise unsupported from None
                raise
            try:
                self._client.put_object(Bucket=self.bucket, Key=probe, Body=b"", IfNoneMatch="*")
            except self._botocore.exceptions.ClientError as exc:
                if _s3_code(exc) != "PreconditionFailed" and _s3_status(exc) != 412:
                    raise
            else:
                raise unsupported
            finally:
                self._client.delete_object(Bucket=self.bucket, Key=probe)

    def _name(self, key: str) -> str:
        """The object's name of ``key``: PREFIX/KEY."""
        check_key(key)
        return f"{self.location.prefix}/{key}" if self.location.prefix else key

    def _head(self, key: str) -> Optional[dict]:
        """The object's HEAD (ETag, ContentLength, ...), or None when it is not there."""
        try:
            return self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except self._botocore.exceptions.ClientError as exc:
            if _s3_code(exc) in S3_MISSING:
                return None
            raise self._failure(exc, f"cannot look up {key}") from None
        except self._botocore.exceptions.BotoCoreError as exc:
            raise self._failure(exc, f"cannot look up {key}") from None

    def _cached(self, key: str, etag: str) -> Path:
        """Where ``fetch`` keeps the version ``etag`` of ``key``: ``<cache>/s3/BUCKET/PREFIX/DIRS/~ETAG/NAME``
        (the file keeps its name, so its suffix still says what it is; '~' starts no key's part, so a
        version's folder is never a key's). The endpoint is part of the folder when it is not AWS's."""
        tag = re.sub(r"[^A-Za-z0-9-]", "", etag)
        if not tag or len(tag) > 64:
            tag = hashlib.sha256(etag.encode()).hexdigest()[:40]
        folder = cache_folder() / "s3"
        if self.location.endpoint_url:
            endpoint = urlsplit(self.location.endpoint_url)
            folder = folder / re.sub(r"[^A-Za-z0-9.-]", "_", f"{endpoint.hostname}_{endpoint.port or ''}")
        *dirs, name = self._name(key).split("/")
        return folder.joinpath(self.bucket, *dirs, f"~{tag}", name)

    def _download(self, key: str, path: Path, etag: str) -> bool:
        """Download the version ``etag`` of ``key`` to ``path`` (a temporary file beside it, then a rename).
        False when the object has changed since (a conditional GET, ``If-Match``: nothing is written)."""
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                try:
                    response = self._client.get_object(Bucket=self.bucket, Key=self._name(key), IfMatch=etag)
                    shutil.copyfileobj(response["Body"], handle, 1 << 20)
                except self._botocore.exceptions.ClientError as exc:
                    if _s3_code(exc) == "PreconditionFailed" or _s3_status(exc) == 412 or _s3_code(exc) in S3_MISSING:
                        return False  # replaced or deleted since the HEAD: the caller looks again
                    raise self._failure(exc, f"cannot download {key}") from None
                except self._botocore.exceptions.BotoCoreError as exc:
                    raise self._failure(exc, f"cannot download {key}") from None
            os.replace(tmp, path)
            return True
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @contextmanager
    def _calling(self, what: str, bucket: bool = False) -> Iterator[None]:
        """botocore's exceptions in the block as one-line NeuralensErrors beginning with ``what``."""
        errors = self._botocore.exceptions
        try:
            yield
        except (errors.ClientError, errors.BotoCoreError) as exc:
            raise self._failure(exc, what, bucket) from None

    def _failure(self, exc: Exception, what: str, bucket: bool = False) -> NeuralensError:
        """A one-line NeuralensError for a botocore exception: no bucket, access denied, no credentials, an
        endpoint that does not answer, or the store's own code and message."""
        errors = self._botocore.exceptions
        where = self._where
        if isinstance(exc, errors.NoCredentialsError):
            return NeuralensError(
                f"{what} {where}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE, or write ~/.aws/credentials)"
            )
        if isinstance(exc, (errors.EndpointConnectionError, errors.ConnectTimeoutError, errors.ConnectionError)):
            endpoint = self.location.endpoint_url or "AWS S3"
            return NeuralensError(_one_line(f"{what} {where}: cannot reach {endpoint} ({exc})"))
        if isinstance(exc, errors.ClientError):
            code, status = _s3_code(exc), _s3_status(exc)
            if code == "NoSuchBucket" or (bucket and code in S3_MISSING):
                return NeuralensError(f"{what}: there is no bucket {self.bucket}" + where[len(f"s3://{self.bucket}") :])
            if code in S3_DENIED:
                return NeuralensError(
                    f"{what} {where}: access denied ({code}; the credentials need s3:ListBucket on the bucket and "
                    "s3:GetObject, s3:PutObject, s3:DeleteObject under the prefix)"
                )
            message = exc.response.get("Error", {}).get("Message") or ""
            return NeuralensError(_one_line(f"{what} {where}: {code or status} {message}".rstrip()))
        return NeuralensError(_one_line(f"{what} {where}: {exc}"))


Storage = Union[LocalStorage, S3Storage]


def open_storage(url: Optional[str] = None) -> Storage:
    """The storage named by ``url`` (None: ``default_storage_url()``): ``S3Storage`` for ``s3://``, else
    ``LocalStorage``. NeuralensError for a bad URL, a folder or bucket that cannot be written, or (s3://)
    no boto3."""
    url = url or default_storage_url()
    if urlsplit(url).scheme == "s3":
        return S3Storage(url)
    return LocalStorage(url)
