"""What ``/metrics`` reports, in Prometheus' text format, through the ``prometheus-client`` library.

Why it is built this way:
- One registry per app, not the library's global one: a process may build several apps (the tests do), and
  each must count its own jobs.
- Jobs are counted where every kind passes, the ``JobManager`` (style jobs, and the video and classify
  managers built on it): an observer sees each change of a job, so a status is counted when it is first
  seen, and the run time when a job ends. The observer is called with its manager's lock held; it keeps
  per manager the last status seen of each job (nothing else), forgotten with the job, so it is quick and
  its memory ends with the jobs.
- What is a level rather than a count (jobs waiting and running, the broker's queue, live workers) is read
  when Prometheus scrapes, by a collector: it cannot drift from the truth, and costs nothing between scrapes.
- In broker mode the queue's own totals (``neuralens_queue_*``: every job any client sent, counted by the
  workers' reports in Redis, ``distributed/stats.py``) are read the same way, beside this server's own counts.
- HTTP requests are counted by route template (``/api/jobs/{job_id}``), never by the path sent, so a client
  cannot create series at will; paths no route matches count as ``other``.
"""

from __future__ import annotations

import time
import weakref
from typing import Callable, Dict, Iterable, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .. import __version__
from ..distributed.stats import DURATION_BUCKETS, WAIT_BUCKETS  # the same buckets for the queue's totals
from .jobs import FINISHED, QUEUED, RUNNING, JobManager

# The 0.0.4 text format: what every Prometheus version reads (newer ones negotiate OpenMetrics, which they do
# not need here).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The metrics of one web app: ``watch`` each job manager under its kind; ``broker`` (a callable giving
    ``distributed.health.BrokerStatus``) adds the queue's metrics in broker mode; ``render`` is the page."""

    def __init__(self, broker: Optional[Callable[[], object]] = None):
        self.registry = CollectorRegistry(auto_describe=True)
        self.broker = broker
        self.managers: Dict[str, JobManager] = {}
        self._seen: Dict[str, Dict[int, list]] = {}  # kind -> id(job) -> [weak ref, last status seen]
        self.submitted = Counter(
            "neuralens_jobs_submitted", "Jobs accepted by this server, by kind", ["kind"], registry=self.registry
        )
        self.finished = Counter(
            "neuralens_jobs",
            "Jobs of this server that ended, by kind and final status (done, failed, cancelled)",
            ["kind", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "neuralens_job_duration_seconds",
            "Run time of the jobs that ran (start to end), by kind",
            ["kind"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.wait = Histogram(
            "neuralens_job_wait_seconds",
            "Time jobs waited in this server's queue before running, by kind",
            ["kind"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "neuralens_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(_Levels(self))

    def watch(self, manager: JobManager, kind: str) -> None:
        """Count the jobs of ``manager`` as ``kind`` (style, video, classify)."""
        self.managers[kind] = manager
        self._seen[kind] = {}
        manager.observers.append(lambda job: self._observe(kind, job))

    def render(self) -> bytes:
        """The metrics in the text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def _observe(self, kind: str, job) -> None:
        seen = self._seen[kind]
        key = id(job)
        entry = seen.get(key)
        status = job.status
        if entry is not None and entry[1] == status:
            return  # progress, a preview, a cancel request: nothing to count
        if entry is None:
            # Keyed by the object, not the job id, and forgotten when the job is (the weak reference's
            # callback): the job classes are dataclasses, which cannot be keys of a weak dictionary.
            entry = [weakref.ref(job, lambda _ref: seen.pop(key, None)), status]
            seen[key] = entry
            self.submitted.labels(kind).inc()
        elif entry[1] in FINISHED:
            return  # the statuses after the end (none today) are not counted twice
        entry[1] = status
        if status == RUNNING and job.started is not None:
            self.wait.labels(kind).observe(max(0.0, job.started - job.created))
        if status in FINISHED:
            self.finished.labels(kind, status).inc()
            if job.started is not None:
                # A cancel racing the end may touch the job before its end time is set: now is close enough.
                self.duration.labels(kind).observe(max(0.0, (job.finished or time.time()) - job.started))


class _Levels:
    """The levels read at each scrape: jobs waiting and running per kind, and the broker's queue."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self) -> Iterable:
        return []  # nothing to check at registration: the names are this module's own

    def collect(self) -> Iterable[GaugeMetricFamily]:
        info = GaugeMetricFamily("neuralens_info", "This server's version (always 1)", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        waiting = GaugeMetricFamily(
            "neuralens_jobs_waiting",
            "Jobs waiting to run: in this server's queue (queue=server) by kind, or on the broker for any "
            "worker (queue=broker, kind=all)",
            labels=["kind", "queue"],
        )
        running = GaugeMetricFamily("neuralens_jobs_running", "Jobs of this server running now", labels=["kind"])
        for kind, manager in self.metrics.managers.items():
            statuses = [job.status for job in manager.list()]
            waiting.add_metric([kind, "server"], statuses.count(QUEUED))
            running.add_metric([kind], statuses.count(RUNNING))
        status = self.metrics.broker() if self.metrics.broker is not None else None
        if status is not None and status.up:
            waiting.add_metric(["all", "broker"], status.waiting)
        yield waiting
        yield running
        if status is None:
            return
        up = GaugeMetricFamily("neuralens_broker_up", "1 when the broker answered this scrape, else 0")
        up.add_metric([], 1 if status.up else 0)
        yield up
        if status.up:
            workers = GaugeMetricFamily("neuralens_workers", "Workers alive on the queue (their health keys)")
            workers.add_metric([], len(status.workers))
            yield workers
            taken = GaugeMetricFamily(
                "neuralens_broker_unacked", "Jobs taken by a worker and not yet finished (any client's)"
            )
            taken.add_metric([], status.unacked)
            yield taken
            if status.stats is not None:
                yield from _queue_totals(status.stats)


def _queue_totals(stats) -> Iterable:
    """The queue's own counts and times (``distributed.stats.QueueStats``): every job any client sent, as the
    workers reported them, so every web server in front of one queue shows the same numbers."""
    jobs = CounterMetricFamily(
        "neuralens_queue_jobs",
        "Jobs of the queue that ended, whoever sent them, by kind and final status",
        labels=["kind", "status"],
    )
    for (kind, status), count in sorted(stats.jobs.items()):
        jobs.add_metric([kind, status], count)
    yield jobs
    for name, what, histograms, bounds in (
        ("neuralens_queue_job_duration_seconds", "Run time on a worker", stats.run, DURATION_BUCKETS),
        ("neuralens_queue_job_wait_seconds", "Time from sending to a worker's start", stats.wait, WAIT_BUCKETS),
    ):
        family = HistogramMetricFamily(name, f"{what} of the queue's jobs, whoever sent them, by kind", labels=["kind"])
        for kind, histogram in sorted(histograms.items()):
            family.add_metric([kind], histogram.cumulative(bounds), histogram.sum)
        yield family


class RequestMetrics:
    """ASGI middleware counting HTTP requests in ``counter`` (``Metrics.requests``) when their answer starts.
    Pure ASGI, not Starlette's BaseHTTPMiddleware, so streamed answers (the SSE progress) pass untouched."""

    def __init__(self, app, counter: Counter):
        self.app, self.counter = app, counter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = []

        async def counting_send(message) -> None:
            if message["type"] == "http.response.start" and not answered:
                answered.append(message["status"])
                self._count(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            if not answered:
                self._count(scope, 500)  # the error handler outside answers 500
            raise

    def _count(self, scope, status: int) -> None:
        # The router puts the matched route in the (shared) scope: its template, not the path sent.
        route = getattr(scope.get("route"), "path", None) or "other"
        self.counter.labels(scope.get("method", "GET"), route, str(status)).inc()
