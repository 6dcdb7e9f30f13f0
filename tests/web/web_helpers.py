"""Helpers shared by the web tests (a module of its own: 'conftest' is an ambiguous name to import)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, List

from PIL import Image

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "web"
FINISHED = ("done", "failed", "cancelled")


def png(image: Image.Image) -> bytes:
    """A PIL image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def wait_status(
    client: TestClient, job_id: str, statuses=FINISHED, timeout: float = 60.0, min_iteration: int = 0
) -> dict:
    """Poll a job until its status is one of ``statuses`` (and it reached ``min_iteration``)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses and (
            job["progress"].get("iteration", 0) >= min_iteration or job["status"] in FINISHED
        ):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")
        time.sleep(0.05)


def read_events(client: TestClient, job_id: str) -> List[tuple]:
    """All (event, data) pairs of a job's SSE stream, until the server ends it."""
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    return events


def start_server(tmp_path: Path, *extra: str, env: dict = None) -> tuple:
    """Run `neuralens serve --port 0` and return (process, base URL) once it prints its address."""
    command = [
        sys.executable,
        "-m",
        "neuralens",
        "serve",
        "--port",
        "0",
        "--device",
        "cpu",
        "--gallery",
        str(tmp_path / "gallery.sqlite3"),
        "--preview-every",
        "2",
        *extra,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 90
    seen: List[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        match = re.search(r"serving at (http://\S+/)", line)
        if match:
            return process, match.group(1)
    process.kill()
    raise AssertionError("the server did not start:\n" + "".join(seen))


# ---- schemathesis: the schema against the API ------------------------------------------------------------
SCHEMA_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)


def schema_operations(app, prefix: str = "/api/"):
    """(schemathesis, checks, {label: operation}) for the app's routes under ``prefix``, in-process (ASGI)."""
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks as openapi_checks

    checks = [not_a_server_error] + [getattr(openapi_checks, name) for name in SCHEMA_CHECKS[1:]]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = {
        op.label: op for op in (result.ok() for result in schema.get_all_operations()) if op.path.startswith(prefix)
    }
    return schemathesis, checks, operations


def fuzz(operations, checks, max_examples: int, call=None) -> None:
    """Generated requests, valid then invalid, ``max_examples`` of each per operation (seeded), each checked.
    ``call(label, positive, case)`` may send a case itself (default: ``case.call_and_validate``)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    def test_for(label, operation, mode):
        positive = mode == schemathesis.GenerationMode.POSITIVE

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            if call is None:
                case.call_and_validate(checks=checks)
            else:
                call(label, positive, case)

        return run, positive

    for label, operation in operations.items():
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            run, positive = test_for(label, operation, mode)
            try:
                run()
            except Unsatisfiable:
                assert not positive  # no input to get wrong (GET /api/info, a plain path string)
