"""What every client and worker knows about a queued job, kept in Redis (the broker's server): its status,
progress, latest preview, cancel request and the lease of the worker running it.

Why it is built this way:
- Keys, not messages, are the truth: a client that connects late, or a web server behind a load balancer,
  reads the same hash. Each change is also announced on the batch's pub/sub channel, so waiting clients
  wake at once instead of polling fast.
- Completion is reported exactly once: one Lua script sets the ``completed`` field only if it is unset
  and, in the same atomic step, the status, the result and the batch's list of finished jobs. A job run
  again (its worker vanished after finishing, before the broker heard) finds it set and reports nothing.
- A running job holds a lease (a key with a time to live, renewed by a heartbeat). A second delivery of the
  same job (Redis's visibility timeout has passed while it still runs) sees the lease and retries later
  instead of running it twice; a worker that is killed stops renewing, and the job is free again.
- Values are JSON text, so the hash reads back as the same dict whoever wrote it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..errors import NeuralensError

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
PREFIX = "neuralens:"
KEEP_SECONDS = 7 * 24 * 3600  # job state outlives any batch a client waits for, then Redis drops it
CONNECT_SECONDS = 5.0

STATS_KEY = f"{PREFIX}stats"  # every client's job counts and times (stats.py)

# The end of a job, recorded once: then counted in the queue's stats (stats.RECORD_LUA), in the same step.
_REPORT = """
if redis.call('HSETNX', KEYS[1], 'completed', '1') == 0 then return 0 end
local fields = cjson.decode(ARGV[1])
for name, value in pairs(fields) do redis.call('HSET', KEYS[1], name, value) end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[3], ARGV[2])
local status = cjson.decode(fields['status'])
local finished = cjson.decode(fields['finished'])
%s
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def finished_key(batch: str) -> str:
    return f"{PREFIX}batch:{batch}:finished"


def channel(batch: str) -> str:
    return f"{PREFIX}batch:{batch}:events"


def new_id() -> str:
    """A fresh job or batch id (never derived from anything a user sends)."""
    return uuid.uuid4().hex


@dataclass
class RemoteJob:
    """A queued job as Redis has it (read by ``JobStore.get``)."""

    id: str
    batch: str
    kind: str
    status: str
    version: int = 0
    runs: int = 0
    worker: Optional[str] = None
    created: Optional[float] = None
    started: Optional[float] = None
    finished: Optional[float] = None
    progress: Dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None
    result: Optional[str] = None  # storage key of the result image
    result_size: Optional[List[int]] = None
    stopped_early: bool = False
    preview_iteration: int = 0

    @property
    def finished_now(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict:
        """The job as JSON-ready values (the run's own report is in storage: ``QueueClient.report``)."""
        return {
            "id": self.id,
            "batch": self.batch,
            "kind": self.kind,
            "status": self.status,
            "version": self.version,
            "runs": self.runs,
            "worker": self.worker,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "progress": dict(self.progress),
            "error": self.error,
            "result": self.result,
            "result_size": self.result_size,
            "stopped_early": self.stopped_early,
            "preview_iteration": self.preview_iteration,
        }


def connect(url: str):
    """A redis-py client for ``url``, checked with a PING; NeuralensError with one line when the server
    cannot be reached (wrong host or port, no server, wrong password)."""
    import redis  # noqa: PLC0415 -- only with --broker: the default install has no Redis

    from .options import shown  # noqa: PLC0415

    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_SECONDS, socket_timeout=30, health_check_interval=30
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NeuralensError(f"cannot reach the broker {shown(url)} ({reason})") from None
    return client


class JobStore:
    """Job state in Redis through the client ``redis`` (from ``connect``)."""

    def __init__(self, redis):
        self.redis = redis
        from . import stats  # noqa: PLC0415 -- it reads this module's names

        self._report = redis.register_script(_REPORT % stats.RECORD_LUA)
        self._buckets = json.dumps(stats.buckets_argument())
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    # --- the client's side ---------------------------------------------------------------------------
    def create(self, job_id: str, batch: str, kind: str) -> None:
        """Record a new job as queued (before its message is sent, so a fast worker always finds it)."""
        key = job_key(job_id)
        fields = {"id": job_id, "batch": batch, "kind": kind, "status": QUEUED, "created": time.time()}
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={k: json.dumps(v) for k, v in fields.items()})
        pipe.hset(key, "version", 1)
        pipe.expire(key, KEEP_SECONDS)
        pipe.execute()

    def get(self, job_id: str) -> Optional[RemoteJob]:
        """The job, or None when Redis does not know it (never created, or expired)."""
        return self._parse(self.redis.hgetall(job_key(job_id)))

    def get_many(self, job_ids: List[str]) -> List[Optional[RemoteJob]]:
        """``get`` for many jobs in one round trip."""
        pipe = self.redis.pipeline()
        for job_id in job_ids:
            pipe.hgetall(job_key(job_id))
        return [self._parse(data) for data in pipe.execute()]

    def finished_since(self, batch: str, start: int) -> List[str]:
        """Ids of the batch's jobs reported finished, from position ``start`` of the list on (each job
        appears once: see the report script)."""
        return [item.decode() for item in self.redis.lrange(finished_key(batch), start, -1)]

    def cancel(self, job_id: str) -> None:
        """Ask the job to stop, wherever it runs (it checks between loss evaluations), or not to start."""
        self.redis.set(f"{job_key(job_id)}:cancel", 1, ex=KEEP_SECONDS)
        job = self.get(job_id)
        if job is not None:
            self.redis.publish(channel(job.batch), job_id)

    def preview(self, job_id: str) -> Optional[bytes]:
        """The latest intermediate image (PNG), or None."""
        return self.redis.get(f"{job_key(job_id)}:preview")

    # --- the worker's side ---------------------------------------------------------------------------
    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.redis.exists(f"{job_key(job_id)}:cancel"))

    def claim(self, job_id: str, token: str, seconds: float) -> bool:
        """Take the job's lease for ``seconds`` (False when another worker holds it)."""
        return bool(self.redis.set(f"{job_key(job_id)}:lease", token, nx=True, px=int(seconds * 1000)))

    def renew(self, job_id: str, token: str, seconds: float) -> bool:
        """Extend our lease (False when it is no longer ours)."""
        return bool(self._renew(keys=[f"{job_key(job_id)}:lease"], args=[token, int(seconds * 1000)]))

    def release(self, job_id: str, token: str) -> None:
        self._release(keys=[f"{job_key(job_id)}:lease"], args=[token])

    def start(self, job_id: str, batch: str, worker: str) -> None:
        """Mark the job running on ``worker`` and count the run (a job run again has runs > 1)."""
        key = job_key(job_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"status": json.dumps(RUNNING), "worker": json.dumps(worker)})
        pipe.hset(key, "started", json.dumps(time.time()))
        pipe.hincrby(key, "runs", 1)
        pipe.hincrby(key, "version", 1)
        pipe.publish(channel(batch), job_id)
        pipe.execute()

    def progress(self, job_id: str, batch: str, progress: dict, preview: Optional[bytes] = None) -> None:
        """Publish the latest step (and, now and then, the image so far)."""
        key = job_key(job_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, "progress", json.dumps(progress))
        if preview is not None:
            pipe.set(f"{key}:preview", preview, ex=KEEP_SECONDS)
            pipe.hset(key, "preview_iteration", json.dumps(progress.get("iteration", 0)))
        pipe.hincrby(key, "version", 1)
        pipe.publish(channel(batch), job_id)
        pipe.execute()

    def report(self, job_id: str, batch: str, status: str, **fields: Any) -> bool:
        """Record the end of a job (``status`` and fields such as result, result_size, error) unless it was
        recorded already. Returns True for the one call that recorded it."""
        values = {"status": status, "finished": time.time(), **fields}
        encoded = json.dumps({k: json.dumps(v) for k, v in values.items()})
        done = self._report(
            keys=[job_key(job_id), finished_key(batch), STATS_KEY],
            args=[encoded, job_id, channel(batch), KEEP_SECONDS, self._buckets],
        )
        if done:
            self.redis.delete(f"{job_key(job_id)}:preview")  # the result is the picture from now on
        return bool(done)

    # -------------------------------------------------------------------------------------------------
    @staticmethod
    def _parse(data: Dict[bytes, bytes]) -> Optional[RemoteJob]:
        if not data:
            return None
        values = {}
        for raw_name, raw in data.items():
            name = raw_name.decode()
            if name == "completed":
                continue
            values[name] = json.loads(raw)
        known = set(RemoteJob.__dataclass_fields__)
        return RemoteJob(**{k: v for k, v in values.items() if k in known})
