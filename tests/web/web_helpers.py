"""Helpers shared by the web tests (a module of its own: 'conftest' is an ambiguous name to import)."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import List

from PIL import Image

DATA = Path(__file__).resolve().parent.parent / "data" / "web"
FINISHED = ("done", "failed", "cancelled")


def png(image: Image.Image) -> bytes:
    """A PIL image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def wait_status(client: TestClient, job_id: str, statuses=FINISHED, timeout: float = 60.0,
                min_iteration: int = 0) -> dict:
    """Poll a job until its status is one of ``statuses`` (and it reached ``min_iteration``)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses and (job["progress"].get("iteration", 0) >= min_iteration
                                          or job["status"] in FINISHED):
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
                name = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: "):])))
    return events
