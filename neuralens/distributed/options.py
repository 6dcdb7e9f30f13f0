"""The settings of the job queue, declared once: the client's (`stylize --broker URL --storage URL`) and the
worker's (`neuralens worker`). Checking a URL here needs neither Celery nor Redis."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple, Optional
from urllib.parse import parse_qsl, urlsplit

from .. import devices
from ..errors import NeuralensError
from ..options import OptionError, check, option

BROKER_SCHEMES = ("redis", "rediss")
STORAGE_SCHEMES = ("file", "s3")
PLANNED_STORAGE_SCHEMES: tuple = ()  # documented, not built in this version (none at present)
# Storage keys (and an S3 URL's prefix) are made by neuralens (content hashes, job ids), never by users: letters,
# digits, '.', '_', '-' and '/'.
KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
# S3's bucket names, loosened as Ceph's and MinIO's legacy names are (capitals, '_', up to 255): the store
# itself refuses what it does not take, at open time.
S3_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")
S3_REGION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
S3_PARAMETERS = ("endpoint_url", "region")
CUDA_INDEX = re.compile(r"^cuda:(\d+)$")


def check_broker_url(url: Optional[str]) -> None:
    """Refuse anything but redis://[:password@]host[:port][/db] (or rediss:// for TLS); None passes."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in BROKER_SCHEMES or not parts.hostname:
        raise NeuralensError(f"must be a Redis URL such as redis://127.0.0.1:6379/0, got {url!r}")
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number or out of range
    except ValueError:
        raise NeuralensError(f"has a bad port: {url!r}") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise NeuralensError(f"must end with a database number (/0), got {url!r}")


def shown(url: str) -> str:
    """``url`` as printed in messages and logs: a password replaced by ***.

    >>> shown("redis://:secret@queue.lan:6379/0")
    'redis://:***@queue.lan:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


class S3Location(NamedTuple):
    """What an ``s3://BUCKET[/PREFIX][?endpoint_url=...&region=...]`` URL names."""

    bucket: str
    prefix: str  # "" or "a/b" (no '/' at either end); object keys are PREFIX/KEY
    endpoint_url: Optional[str]  # None: AWS S3 itself
    region: Optional[str]  # None: boto3's own choice (AWS_DEFAULT_REGION, ~/.aws/config)


def split_s3_url(url: str) -> S3Location:
    """The parts of an S3 storage URL; NeuralensError (a message that reads after ``--storage``) for a bad
    one. Credentials never go in the URL (it is printed in logs and shared with every worker): boto3 takes
    them from its usual places.

    >>> split_s3_url("s3://renders/neuralens?endpoint_url=http://127.0.0.1:9000")
    S3Location(bucket='renders', prefix='neuralens', endpoint_url='http://127.0.0.1:9000', region=None)
    """
    parts = urlsplit(url)
    if "@" in parts.netloc or "@" in parts.query:
        hidden = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[-1], query="").geturl()
        raise NeuralensError(
            f"must not hold credentials ({hidden}): boto3 reads them from AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials"
        )
    if not S3_BUCKET.match(parts.netloc):
        raise NeuralensError(f"must name a bucket, s3://BUCKET[/PREFIX] (3 or more letters or digits), got {url!r}")
    prefix = parts.path.strip("/")
    if prefix and (not KEY.match(prefix) or ".." in prefix.split("/")):
        raise NeuralensError(f"has a bad prefix {prefix!r} (letters, digits, '.', '_', '-' and '/'): {url!r}")
    if parts.fragment:
        raise NeuralensError(f"must not have a #fragment: {url!r}")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise NeuralensError(f"has a bad query string: {url!r}") from None
    names = [name for name, _ in pairs]
    for name in names:
        if name not in S3_PARAMETERS or names.count(name) > 1:
            what = "a second" if name in S3_PARAMETERS else "an unknown parameter"
            raise NeuralensError(f"has {what} {name!r} (s3:// takes endpoint_url and region): {url!r}")
    query = dict(pairs)
    endpoint, region = query.get("endpoint_url"), query.get("region")
    if endpoint is not None:
        point = urlsplit(endpoint)
        try:
            point.port  # noqa: B018 -- raises ValueError for a port that is not a number or out of range
        except ValueError:
            point = point._replace(scheme="")
        if point.scheme not in ("http", "https") or not point.hostname:
            raise NeuralensError(f"has a bad endpoint_url (http[s]://HOST[:PORT]): {url!r}")
        if point.path.strip("/") or point.query or point.fragment:
            raise NeuralensError(f"has an endpoint_url with a path (give only http[s]://HOST[:PORT]): {url!r}")
        endpoint = f"{point.scheme}://{point.netloc}"
    if region is not None and not S3_REGION.match(region):
        raise NeuralensError(f"has a bad region {region!r}: {url!r}")
    return S3Location(parts.netloc, prefix, endpoint, region)


def check_storage_url(url: Optional[str]) -> None:
    """Refuse anything but file:///absolute/folder or s3://BUCKET[/PREFIX][?endpoint_url=...&region=...]
    (None passes: the default folder)."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme in PLANNED_STORAGE_SCHEMES:
        raise NeuralensError(f"{parts.scheme}:// storage is not available yet; use a shared folder, file:///path")
    if parts.scheme == "s3":
        split_s3_url(url)
        return
    if parts.scheme not in STORAGE_SCHEMES or parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise NeuralensError(f"must be a folder URL such as file:///shared/neuralens, got {url!r}")


def check_worker_device(value: str) -> None:
    """auto, cpu, cuda, mps, or cuda:N (one GPU of several)."""
    if value not in devices.DEVICES and not CUDA_INDEX.match(value):
        raise NeuralensError(f"must be one of {', '.join(devices.DEVICES)} or cuda:N, got {value!r}")


@dataclass
class QueueOptions:
    """Where the queue and the shared files are; the client and every worker give the same two URLs."""

    broker: Optional[str] = option(
        None,
        "run the jobs on `neuralens worker` processes through this Redis job queue (redis://HOST:6379/0)",
        metavar="URL",
        check=check_broker_url,
        none_help="none: run here, in this process",
    )
    storage: Optional[str] = option(
        None,
        "where inputs and results are shared with the workers: a folder URL (file:///shared/dir) that the "
        "client and every worker see, or an S3 bucket (s3://BUCKET/PREFIX, ?endpoint_url=http://HOST:9000 for "
        "MinIO and the like)",
        metavar="URL",
        check=check_storage_url,
        none_help="the cache folder's queue/ (this machine only)",
    )

    def validate(self) -> QueueOptions:
        """Check every value; raise OptionError naming the first bad field. Returns self."""
        check(self)
        if self.broker is None and self.storage is not None:
            raise OptionError("storage", "is for a job queue: give a broker too (--broker)")
        return self


@dataclass
class WorkerOptions:
    """How one `neuralens worker` runs jobs."""

    device: str = option(
        "auto", "where jobs run: auto, cpu, cuda, mps or cuda:N", check=check_worker_device, metavar="DEVICE"
    )
    concurrency: int = option(1, "jobs run at once (one process each); one per GPU is usual", above=0, metavar="N")
    visibility_timeout: float = option(
        300.0,
        "seconds after which a job taken by a worker that vanished (killed, machine lost) goes to another worker; "
        "a job running longer is safe: its lease keeps it from running twice",
        above=0,
        metavar="S",
    )
    lease: float = option(
        30.0,
        "seconds a running job stays claimed without a heartbeat from its worker (sent every third of it)",
        above=0,
        metavar="S",
    )
    preview_every: int = option(5, "publish an intermediate image every N loss evaluations", above=0, metavar="N")

    def validate(self) -> WorkerOptions:
        """Check every value; raise OptionError naming the first bad field. Returns self."""
        return check(self)
