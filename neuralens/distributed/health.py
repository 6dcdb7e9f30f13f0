"""Who is alive on the job queue, and how long it is: workers' health keys, the broker's queue length (and,
read in the same probe, every client's job counts and times: ``stats.py``).

Why it is built this way:
- Workers run without Celery's gossip and heartbeats (``worker.py``), and ``inspect ping`` is a broadcast
  that waits its whole timeout for answers; so each worker keeps a small key of its own instead,
  ``neuralens:worker:<name>`` (what it runs on, since when), renewed every ``BEAT_SECONDS`` with a time to
  live of ``WORKER_TTL``. A worker that is killed stops renewing and Redis drops the key by its own clock, so
  machines whose clocks disagree still agree on who is alive.
- The names are also kept in one set, so that readers (the web's ``/readyz`` and ``/metrics``) find the
  workers in one round trip instead of scanning every key (the job hashes are kept for a week); a name
  whose key has expired is dropped from the set by the next reader.
- The queue's length is what Celery's Redis transport keeps: one list per priority step of the queue
  (kombu's layout: ``neuralens``, ``neuralens\\x06\\x163``, ...), plus the ``unacked`` hash of messages taken
  by a worker and not yet acknowledged (the jobs running, with late acknowledgement).
- Readers use their own connection with short timeouts and keep an answer for ``CACHE_SECONDS``: a probe
  that hangs for 30 s on a lost Redis, or a Redis asked once per unauthenticated request, would make the
  health check the problem.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..errors import NeuralensError
from .app import QUEUE
from .state import PREFIX
from .stats import QueueStats, read_stats

log = logging.getLogger(__name__)

WORKERS_KEY = f"{PREFIX}workers"
BEAT_SECONDS = 5.0
WORKER_TTL = 15.0  # three beats: one late beat (a busy machine) does not count a worker as lost
PROBE_TIMEOUT = 2.0  # seconds a reader waits for Redis before calling it down
CACHE_SECONDS = 1.0
# kombu's Redis transport: one list per priority step, named queue + separator + step (none for step 0).
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEPARATOR = "\x06\x16"
UNACKED_KEY = "unacked"


def worker_key(name: str) -> str:
    return f"{PREFIX}worker:{name}"


def queue_keys(queue: str = QUEUE) -> List[str]:
    """The Redis lists holding ``queue``'s waiting messages, one per priority step."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


class WorkerBeat:
    """Keeps ``worker_key(name)`` alive (with ``info``) in a thread until ``stop``, which removes it."""

    def __init__(self, redis, name: str, info: Dict[str, Any]):
        self.redis, self.name = redis, name
        self.info = {"name": name, "host": socket.gethostname(), "started": time.time(), **info}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="neuralens-health", daemon=True)

    def start(self) -> WorkerBeat:
        self.beat()  # at once: a worker is counted from its ready line on
        self._thread.start()
        return self

    def beat(self) -> None:
        """Renew the key and the name's place in the set (one round trip)."""
        pipe = self.redis.pipeline()
        pipe.set(worker_key(self.name), json.dumps({**self.info, "beat": time.time()}), px=int(WORKER_TTL * 1000))
        pipe.sadd(WORKERS_KEY, self.name)
        pipe.execute()

    def stop(self) -> None:
        """Stop beating and say so at once (a worker stopped on purpose is not waited for)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(BEAT_SECONDS)
        try:
            self.redis.delete(worker_key(self.name))
            self.redis.srem(WORKERS_KEY, self.name)
        except Exception:  # noqa: BLE001 -- the key expires by itself
            log.warning("could not remove the health key of %s", self.name)

    def _beat(self) -> None:
        while not self._stop.wait(BEAT_SECONDS):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 -- Redis may come back; the next beat tries again
                log.warning("could not renew the health key of %s", self.name)


def live_workers(redis) -> List[Dict[str, Any]]:
    """Every worker whose health key is alive: its info (name, host, pid, device, concurrency, started,
    beat), sorted by name. Names whose key has expired are dropped from the set on the way."""
    names = sorted(name.decode() for name in redis.smembers(WORKERS_KEY))
    if not names:
        return []
    values = redis.mget([worker_key(name) for name in names])
    gone = [name for name, value in zip(names, values) if value is None]
    if gone:
        redis.srem(WORKERS_KEY, *gone)
    return [json.loads(value) for value in values if value is not None]


def queue_length(redis, queue: str = QUEUE) -> Dict[str, int]:
    """``waiting``: messages no worker has taken yet; ``unacked``: taken and not yet acknowledged (the jobs
    running, and those a vanished worker took, until the visibility timeout hands them on)."""
    pipe = redis.pipeline()
    for key in queue_keys(queue):
        pipe.llen(key)
    pipe.hlen(UNACKED_KEY)
    *lists, unacked = pipe.execute()
    return {"waiting": int(sum(lists)), "unacked": int(unacked)}


@dataclass
class BrokerStatus:
    """What a probe found: whether the broker answered, the live workers, the queue's length."""

    up: bool
    workers: List[Dict[str, Any]] = field(default_factory=list)
    waiting: int = 0
    unacked: int = 0
    checked: float = field(default_factory=time.monotonic)
    stats: Optional[QueueStats] = None  # every client's finished jobs and their times (stats.py)


class BrokerProbe:
    """Reads the broker's health for the web server: one connection of its own (short timeouts, opened on
    first use), answers kept for ``CACHE_SECONDS``. Never raises: a broker that does not answer is down."""

    def __init__(self, url: str, cache_seconds: float = CACHE_SECONDS):
        self.url, self.cache_seconds = url, cache_seconds
        self._redis = None
        self._last: Optional[BrokerStatus] = None
        self._lock = threading.Lock()

    def status(self) -> BrokerStatus:
        with self._lock:  # one probe at a time: concurrent requests share its answer
            if self._last is not None and time.monotonic() - self._last.checked < self.cache_seconds:
                return self._last
            self._last = self._probe()
            return self._last

    def close(self) -> None:
        with self._lock:
            if self._redis is not None:
                self._redis.close()
                self._redis = None

    def _probe(self) -> BrokerStatus:
        import redis  # noqa: PLC0415 -- only with --broker

        try:
            if self._redis is None:
                self._redis = redis.Redis.from_url(
                    self.url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT
                )
            self._redis.ping()
            lengths = queue_length(self._redis)
            workers, stats = live_workers(self._redis), read_stats(self._redis)
            return BrokerStatus(True, workers, lengths["waiting"], lengths["unacked"], stats=stats)
        except redis.RedisError as exc:
            log.warning("broker health check failed: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return BrokerStatus(False)


def check_workers(url: str, host: Optional[str] = None) -> Dict[str, Any]:
    """``neuralens worker --health``: the live workers on the broker at ``url`` and whether one of them runs
    on ``host`` (this machine by default). NeuralensError (one line) when the broker cannot be reached."""
    from .state import connect  # noqa: PLC0415

    host = host or socket.gethostname()
    client = connect(url)
    try:
        workers = live_workers(client)
    finally:
        client.close()
    here = [worker for worker in workers if worker.get("host") == host]
    return {"healthy": bool(here), "host": host, "here": len(here), "workers": workers}


def require_broker(url: Optional[str]) -> str:
    """``url``, or NeuralensError when there is none (a health check needs the queue)."""
    if url is None:
        raise NeuralensError("--health needs the job queue: --broker redis://HOST:6379/0")
    return url
