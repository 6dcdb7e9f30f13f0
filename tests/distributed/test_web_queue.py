"""The web app's jobs on the queue: the JobManager with a QueueRunner reports progress and previews from a
worker process, ends with the in-process path's image, and Cancel reaches the worker."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from neuralens.distributed.options import QueueOptions
from neuralens.style import StyleOptions, StyleTransfer


def _wait(job, statuses, timeout: float = 120.0, min_iteration: int = 0) -> None:
    deadline = time.monotonic() + timeout
    while not (job.status in statuses and int(job.progress.get("iteration", 0) or 0) >= min_iteration):
        assert time.monotonic() < deadline, job.to_dict()
        time.sleep(0.05)


@pytest.fixture()
def manager(two_workers, redis_url, storage_url, tmp_path):
    from neuralens.distributed.web import QueueRunner
    from neuralens.web.jobs import JobManager

    runner = QueueRunner(QueueOptions(redis_url, storage_url), timeout=180)
    jobs = JobManager(workers=2, max_queue=4, preview_every=2, root=tmp_path / "jobs", runner=runner)
    jobs.start()
    yield jobs
    jobs.shutdown()
    runner.close()


def test_a_web_job_runs_on_a_worker_with_progress_and_previews(manager, content_image, style_image):
    from neuralens.web.jobs import DONE, FINISHED

    options = StyleOptions(size=48, iterations=30, coarse_iterations=0, scales=1, early_stop_patience=0).validate()
    job = manager.submit(options, content_image, [style_image])
    _wait(job, ("running",), min_iteration=4)
    assert job.progress["total_iterations"] == 30 and job.progress["eta"] is not None
    deadline, preview = time.monotonic() + 60, None
    while preview is None and job.status == "running":
        assert time.monotonic() < deadline
        preview = job.preview
        time.sleep(0.01)
    assert preview is not None and preview.startswith(b"\x89PNG")  # a worker's image, seen here
    _wait(job, FINISHED)
    assert job.status == DONE, job.error
    expected = np.asarray(StyleTransfer(style_image, options).run(content_image).image)
    with Image.open(job.result_path) as result:
        assert np.array_equal(np.asarray(result.convert("RGB")), expected)


def test_cancel_on_the_page_stops_the_worker(manager, content_image, style_image):
    from neuralens.web.jobs import CANCELLED, FINISHED

    options = StyleOptions(size=48, iterations=1000, coarse_iterations=0, scales=1, early_stop_patience=0).validate()
    job = manager.submit(options, content_image, [style_image])
    _wait(job, ("running",), min_iteration=3)
    manager.cancel(job)
    _wait(job, FINISHED, timeout=60)
    assert job.status == CANCELLED and job.stopped_early and job.result_path.is_file()
    assert job.progress["iteration"] < 1000


def test_serve_with_a_broker_streams_progress_and_returns_the_result(
    two_workers, redis_url, storage_url, content_image, style_image, tmp_path
):
    """`neuralens serve --broker`: the HTTP API unchanged, the work done by a worker process."""
    import io
    import json
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from neuralens.web import create_app

    def png(image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    app = create_app(
        gallery=str(tmp_path / "g.sqlite3"), device="cpu", preview_every=2, broker=redis_url, storage=storage_url
    )
    files = [
        ("content", ("c.png", png(content_image), "image/png")),
        ("style", ("s.png", png(style_image), "image/png")),
    ]
    with TestClient(app) as client:
        job = client.post("/api/jobs", files=files, data={"size": "48", "iterations": "8"}).json()
        updates, event = [], None
        with client.stream("GET", f"/api/jobs/{job['id']}/events", timeout=120) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[len("event: ") :]
                elif line.startswith("data: ") and event == "job":
                    updates.append(json.loads(line[len("data: ") :]))
        assert updates[-1]["status"] == "done", updates[-1]
        iterations = [u["progress"]["iteration"] for u in updates if u["progress"]]
        assert iterations == sorted(iterations) and iterations[-1] == 8
        result = client.get(updates[-1]["urls"]["result"])
        assert result.status_code == 200 and Image.open(io.BytesIO(result.content)).size == (48, 36)


def test_serve_refuses_a_bad_broker_in_one_line(cli_error):
    assert "--broker must be a Redis URL" in cli_error("serve", "--broker", "http://x")
    pytest.importorskip("redis")
    assert "cannot reach the broker" in cli_error("serve", "--broker", "redis://127.0.0.1:1/0", "--port", "0")
