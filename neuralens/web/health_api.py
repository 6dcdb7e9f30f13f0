"""``/healthz``, ``/readyz`` and ``/metrics``: what a load balancer, an orchestrator and Prometheus ask.

- ``/healthz`` (liveness) answers 200 as long as the process serves HTTP: it looks at nothing else, so a
  slow broker never gets a healthy server restarted.
- ``/readyz`` (readiness) answers 200 when jobs can be run: the job managers' threads are alive and, with
  ``--broker``, the broker answers and at least one worker's health key is alive; 503 otherwise, so a load
  balancer sends no one to a server whose jobs would only wait.
- Both are public (no token): their bodies are fixed words and yes/no checks, with no version, URL, name,
  count or timing, so they tell a stranger nothing but "up" — and probes (a Docker health check, a
  Kubernetes probe, a load balancer) often cannot send a token. They are GETs that change nothing, and a
  broker probe's answer is kept for a second (``distributed.health``), so asking them in a loop cannot
  load the broker.
- ``/metrics`` is not public when the server has a token: job counts, queue lengths and routes say how the
  server is used. It takes the same ``Authorization: Bearer`` header as the API (Prometheus:
  ``authorization: {credentials: ...}`` in the scrape config).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Literal, Optional

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from .jobs import JobManager
from .metrics import CONTENT_TYPE, Metrics
from .security import api_guard, error_responses


class Liveness(BaseModel):
    status: Literal["ok"] = Field(..., description="always ok: the process answers")


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: Dict[str, bool] = Field(
        ...,
        description="jobs: the job managers run; with --broker also broker (it answers) and workers (at "
        "least one alive)",
    )


def readiness(managers: List[JobManager], broker: Optional[Callable[[], object]]) -> Dict[str, bool]:
    """The checks of ``/readyz``: each True when that part can do its share."""
    checks = {"jobs": all(manager.healthy() for manager in managers)}
    if broker is not None:
        status = broker()
        checks["broker"] = bool(status.up)
        checks["workers"] = bool(status.up and status.workers)
    return checks


def register(
    app: FastAPI,
    metrics: Metrics,
    token: Optional[str],
    broker: Optional[Callable[[], object]] = None,
) -> None:
    """Add the three routes to ``app``; ``broker`` gives the queue's ``BrokerStatus`` in broker mode."""

    @app.get("/healthz", summary="Liveness: the server process answers", response_model=Liveness, tags=["health"])
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: jobs can run (job threads alive; with --broker, the broker and a worker)",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "not ready: a check failed (which one: checks)"}},
        tags=["health"],
    )
    def readyz():
        checks = readiness(list(metrics.managers.values()), broker)
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        summary="Metrics in Prometheus' text format (jobs, queue length, workers, HTTP requests)",
        dependencies=[Depends(api_guard(token))],
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "the metrics"},
            **(error_responses(401) if token else {}),
        },
        tags=["health"],
    )
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)
