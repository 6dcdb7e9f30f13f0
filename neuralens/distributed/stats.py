"""Counts and times of every job the queue ran, whoever sent it (the web, `stylize --broker`, a script), for
the web's ``/metrics``.

Why it is built this way:
- The numbers are kept in Redis, in one hash (``STATS_KEY``), by the same Lua script that records a job's end
  (``state.JobStore.report``): a job is reported once, so it is counted once, and a worker killed after the
  count but before the acknowledgement cannot count it twice. No process keeps them in memory, so any number
  of web servers read the same totals, and a restarted one loses nothing.
- The histograms are Prometheus' cumulative buckets, counted at report time (one HINCRBY per bucket a value
  falls in): reading them is one HGETALL, whatever the number of jobs.
- Run time is the worker's start to the end (a job run again after its worker died counts from its last
  start); wait is from the job's creation to that start, so it includes any run lost with a dead worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from .state import STATS_KEY

# Jobs take from a second (a tiny style job) to hours (a long video, a fine-tuned classifier).
DURATION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600)
WAIT_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
SEPARATOR = "|"

# Part of the report script (state.py), run once it has recorded the end: KEYS[1] is the job's hash, KEYS[3]
# STATS_KEY, ARGV[5] the buckets as JSON (``buckets_argument``); ``status`` and ``finished`` are the values
# just written.
RECORD_LUA = """
local function decoded(value) if value then return cjson.decode(value) end return nil end
local kind = decoded(redis.call('HGET', KEYS[1], 'kind')) or 'unknown'
local buckets = cjson.decode(ARGV[5])
local function observe(name, seconds)
  if seconds == nil or seconds < 0 then return end
  local prefix = name .. '|' .. kind .. '|'
  redis.call('HINCRBY', KEYS[3], prefix .. 'count', 1)
  redis.call('HINCRBYFLOAT', KEYS[3], prefix .. 'sum', seconds)
  for _, bound in ipairs(buckets[name]) do
    if seconds <= tonumber(bound) then redis.call('HINCRBY', KEYS[3], prefix .. 'le|' .. bound, 1) end
  end
end
redis.call('HINCRBY', KEYS[3], 'jobs|' .. kind .. '|' .. status, 1)
local started = decoded(redis.call('HGET', KEYS[1], 'started'))
local created = decoded(redis.call('HGET', KEYS[1], 'created'))
if started and finished then observe('run', finished - started) end
if started and created then observe('wait', started - created) end
"""


def bucket_text(bound: float) -> str:
    """A bucket bound as the stats hash names it (and as Prometheus' ``le`` label shows it)."""
    return f"{float(bound):g}"


def buckets_argument() -> Dict[str, List[str]]:
    """The buckets as the report script takes them: {'run': [...], 'wait': [...]} of bound texts."""
    return {"run": [bucket_text(b) for b in DURATION_BUCKETS], "wait": [bucket_text(b) for b in WAIT_BUCKETS]}


@dataclass
class Histogram:
    """One kind's histogram: cumulative counts per bound (bound text -> count), their sum and count."""

    buckets: Dict[str, int] = field(default_factory=dict)
    sum: float = 0.0
    count: int = 0

    def cumulative(self, bounds) -> List[Tuple[str, int]]:
        """[(le, count)] for ``bounds`` and +Inf, as Prometheus wants them."""
        return [(bucket_text(b), self.buckets.get(bucket_text(b), 0)) for b in bounds] + [("+Inf", self.count)]


@dataclass
class QueueStats:
    """What the stats hash holds: finished jobs by (kind, status), run and wait histograms by kind."""

    jobs: Dict[Tuple[str, str], int] = field(default_factory=dict)
    run: Dict[str, Histogram] = field(default_factory=dict)
    wait: Dict[str, Histogram] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "jobs": [{"kind": k, "status": s, "count": n} for (k, s), n in sorted(self.jobs.items())],
            "run": {kind: vars(h) for kind, h in sorted(self.run.items())},
            "wait": {kind: vars(h) for kind, h in sorted(self.wait.items())},
        }


def read_stats(redis) -> QueueStats:
    """The queue's totals from Redis (one round trip)."""
    stats = QueueStats()
    for raw_name, raw_value in redis.hgetall(STATS_KEY).items():
        parts = raw_name.decode().split(SEPARATOR)
        value = raw_value.decode()
        if parts[0] == "jobs" and len(parts) == 3:
            stats.jobs[(parts[1], parts[2])] = int(value)
        elif parts[0] in ("run", "wait") and len(parts) >= 3:
            histogram = getattr(stats, parts[0]).setdefault(parts[1], Histogram())
            if parts[2] == "count":
                histogram.count = int(value)
            elif parts[2] == "sum":
                histogram.sum = float(value)
            elif parts[2] == "le" and len(parts) == 4:
                histogram.buckets[parts[3]] = int(value)
    return stats
