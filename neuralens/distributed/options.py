"""The settings of the job queue, declared once: the client's (`stylize --broker URL --storage URL`) and the
worker's (`neuralens worker`). Checking a URL here needs neither Celery nor Redis."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from .. import devices
from ..errors import NeuralensError
from ..options import OptionError, check, option

BROKER_SCHEMES = ("redis", "rediss")
STORAGE_SCHEMES = ("file",)
# Documented, not built in this version: an S3-compatible store (see docs/scale-out.md).
PLANNED_STORAGE_SCHEMES = ("s3",)
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


def check_storage_url(url: Optional[str]) -> None:
    """Refuse anything but file:///absolute/folder (None passes: the default folder)."""
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme in PLANNED_STORAGE_SCHEMES:
        raise NeuralensError(f"{parts.scheme}:// storage is not available yet; use a shared folder, file:///path")
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
        "client and every worker see",
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
