"""Health and metrics: /healthz and /readyz (in-process and on the job queue), /metrics in Prometheus' text
format counting the jobs of every manager, the token on /metrics only, and `neuralens worker --health`."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time

import pytest
from web_helpers import ROOT, fuzz, schema_operations, wait_status

from neuralens.web.jobs import DONE

TOKEN = "a-long-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TINY = {"size": "48", "iterations": "4"}

# The job queue's fixtures (a redis-server of the tests' own, worker processes), shared with
# tests/distributed without making the test folders packages.
_spec = importlib.util.spec_from_file_location("queue_fixtures", ROOT / "tests" / "distributed" / "conftest.py")
_queue = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_queue)
redis_url, storage_url, workers = _queue.redis_url, _queue.storage_url, _queue.workers


def metrics(client, headers=None) -> dict:
    """{(name, labels as a sorted tuple): value} of every sample of /metrics, read by prometheus_client's
    own parser (so the page is valid text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_health_in_process(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "checks": {"jobs": True}}
    client.app.state.manager.shutdown()  # a server whose job threads have stopped takes no more work
    assert client.get("/healthz").status_code == 200  # still alive: restarting it is not the probe's call
    stopped = client.get("/readyz")
    assert stopped.status_code == 503 and stopped.json() == {"status": "not ready", "checks": {"jobs": False}}


def test_metrics_count_a_finished_job(client, tiny_files):
    before = metrics(client)
    assert value(before, "neuralens_jobs_total", kind="style", status="done") == 0
    assert value(before, "neuralens_jobs_waiting", kind="video", queue="server") == 0
    assert ("neuralens_jobs_running", (("kind", "classify"),)) in before  # every manager is reported
    job = client.post("/api/jobs", files=tiny_files, data=TINY).json()
    assert wait_status(client, job["id"])["status"] == DONE
    after = metrics(client)
    assert value(after, "neuralens_jobs_submitted_total", kind="style") == 1
    assert value(after, "neuralens_jobs_total", kind="style", status="done") == 1
    assert value(after, "neuralens_job_duration_seconds_count", kind="style") == 1
    assert value(after, "neuralens_job_duration_seconds_sum", kind="style") > 0
    assert value(after, "neuralens_job_wait_seconds_count", kind="style") == 1
    assert value(after, "neuralens_jobs_running", kind="style") == 0
    # Routes by template, not by the path sent: a job id never becomes a label.
    assert value(after, "neuralens_http_requests_total", method="GET", route="/api/jobs/{job_id}", status="200") >= 1
    assert value(after, "neuralens_http_requests_total", method="POST", route="/api/jobs", status="202") == 1
    client.get(f"/nothing-here/{job['id']}")
    assert value(metrics(client), "neuralens_http_requests_total", method="GET", route="other", status="404") == 1
    client.delete(f"/api/jobs/{job['id']}")  # a finished job touched again is not counted again
    again = metrics(client)
    assert value(again, "neuralens_jobs_submitted_total", kind="style") == 1
    assert value(again, "neuralens_jobs_total", kind="style", status="done") == 1
    assert "neuralens_broker_up" not in {name for name, _ in again}  # no broker: no broker metrics


def test_a_cancelled_waiting_job_counts_without_a_run(make_client, tiny_files):
    client = make_client(max_queue=2)
    long = client.post(
        "/api/jobs",
        data={"size": "64", "iterations": "1000", "content_sample": "tubingen.jpg", "style_sample": "the_scream.jpg"},
    ).json()
    waiting = client.post("/api/jobs", files=tiny_files, data=TINY).json()
    assert value(metrics(client), "neuralens_jobs_waiting", kind="style", queue="server") >= 1
    client.post(f"/api/jobs/{waiting['id']}/cancel")
    client.post(f"/api/jobs/{long['id']}/cancel")
    wait_status(client, long["id"])
    samples = metrics(client)
    assert value(samples, "neuralens_jobs_total", kind="style", status="cancelled") == 2
    assert value(samples, "neuralens_job_duration_seconds_count", kind="style") <= 1  # the waiting one never ran


def test_metrics_need_the_token_when_there_is_one_and_probes_do_not(make_client):
    client = make_client(token=TOKEN)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert (
        value(metrics(client, AUTH), "neuralens_http_requests_total", method="GET", route="/metrics", status="401") == 2
    )
    # Probes cannot always send a token, and their answers say nothing but yes or no.
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "checks": {"jobs": True}}
    schema = client.get("/openapi.json", headers=AUTH).json()
    assert schema["paths"]["/metrics"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "401" in schema["paths"]["/metrics"]["get"]["responses"]
    assert "security" not in schema["paths"]["/readyz"]["get"]


@pytest.mark.parametrize("token", [None, TOKEN])
def test_health_routes_match_the_schema_under_schemathesis(make_client, token):
    pytest.importorskip("schemathesis", reason="schemathesis is not installed (requirements-dev.txt)")
    client = make_client(token=token)
    _, checks, operations = schema_operations(client.app, "/")
    operations = {label: op for label, op in operations.items() if op.path in ("/healthz", "/readyz", "/metrics")}
    assert len(operations) == 3, sorted(operations)
    headers = AUTH if token else None
    response = operations["GET /metrics"].Case(headers=headers).call_and_validate(checks=checks)
    assert response.status_code == 200
    fuzz(operations, checks, max_examples=3)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_broker_that_does_not_answer_is_down_at_once():
    pytest.importorskip("redis", reason="redis-py is not installed (pip install -e .[queue])")
    from neuralens.distributed.health import BrokerProbe
    from neuralens.web.health_api import readiness

    probe = BrokerProbe(f"redis://127.0.0.1:{_free_port()}/0")
    started = time.monotonic()
    status = probe.status()
    assert not status.up and status.workers == []
    assert time.monotonic() - started < 5  # short timeouts: a probe never hangs on a lost broker
    assert readiness([], probe.status) == {"jobs": True, "broker": False, "workers": False}
    probe.close()


def _worker_health(broker: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuralens", "worker", "--broker", broker, "--health"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (answer := check()):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return answer


def test_readiness_and_metrics_on_the_queue(
    make_client, redis_url, storage_url, workers, tiny_files, content_image, style_image
):
    client = make_client(broker=redis_url, storage=storage_url)
    # The broker answers, but nobody would run the jobs yet.
    ready = client.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"] == {"jobs": True, "broker": True, "workers": False}
    samples = metrics(client)
    assert value(samples, "neuralens_broker_up") == 1 and value(samples, "neuralens_workers") == 0
    idle = _worker_health(redis_url)
    assert idle.returncode == 1 and json.loads(idle.stdout)["workers"] == []

    (process,) = workers.start(1)
    _until(lambda: client.get("/readyz").status_code == 200)  # the probe's answer is kept for a second
    assert client.get("/readyz").json()["checks"] == {"jobs": True, "broker": True, "workers": True}
    health = _worker_health(redis_url)
    assert health.returncode == 0, health.stdout + health.stderr
    report = json.loads(health.stdout)
    assert report["healthy"] and report["here"] == 1
    assert report["workers"][0]["pid"] == process.pid and report["workers"][0]["concurrency"] == 1

    job = client.post("/api/jobs", files=tiny_files, data=TINY).json()  # through the worker
    assert wait_status(client, job["id"], timeout=120)["status"] == DONE
    samples = metrics(client)
    assert value(samples, "neuralens_workers") == 1
    assert value(samples, "neuralens_jobs_total", kind="style", status="done") == 1
    assert value(samples, "neuralens_job_duration_seconds_count", kind="style") == 1
    assert value(samples, "neuralens_jobs_waiting", kind="all", queue="broker") == 0
    assert ("neuralens_broker_unacked", ()) in samples
    # The queue's own totals: the worker's report counted it, with its run and wait times.
    assert value(samples, "neuralens_queue_jobs_total", kind="stylize", status="done") == 1
    assert value(samples, "neuralens_queue_job_duration_seconds_count", kind="stylize") == 1
    assert value(samples, "neuralens_queue_job_duration_seconds_bucket", kind="stylize", le="+Inf") == 1
    assert value(samples, "neuralens_queue_job_wait_seconds_count", kind="stylize") == 1
    # A job another client sent (not this server) is in the queue's totals, not in this server's counts.
    from neuralens.distributed import state
    from neuralens.distributed.client import QueueClient
    from neuralens.distributed.options import QueueOptions
    from neuralens.style import StyleOptions

    with QueueClient(QueueOptions(redis_url, storage_url)) as other:
        batch = state.new_id()
        options = StyleOptions(**{k: int(v) for k, v in TINY.items()}).validate()
        job_id = other.submit_stylize(content_image, [style_image], options, batch)
        (finished,) = list(other.wait(batch, [job_id], timeout=120))
        assert finished.status == state.DONE
    _until(lambda: value(metrics(client), "neuralens_queue_jobs_total", kind="stylize", status="done") == 2)
    samples = metrics(client)
    assert value(samples, "neuralens_queue_job_duration_seconds_count", kind="stylize") == 2
    assert value(samples, "neuralens_jobs_total", kind="style", status="done") == 1  # this server's own

    workers.stop()  # a worker stopped on purpose removes its key at once
    _until(lambda: client.get("/readyz").status_code == 503)
    assert _worker_health(redis_url).returncode == 1


def test_worker_health_needs_a_broker(cli_error):
    assert "--broker" in cli_error("worker", "--health")


def test_worker_health_with_an_unreachable_broker(cli_error):
    pytest.importorskip("redis", reason="redis-py is not installed (pip install -e .[queue])")
    assert "cannot reach the broker" in cli_error(
        "worker", "--broker", f"redis://127.0.0.1:{_free_port()}/0", "--health"
    )
