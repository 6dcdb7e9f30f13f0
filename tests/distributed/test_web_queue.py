"""The web app's jobs on the queue: the JobManager with a QueueRunner reports progress and previews from a
worker process, ends with the in-process path's image, and Cancel reaches the worker."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from image_helpers import small_jpeg
from PIL import Image

from neuralens.distributed.options import QueueOptions
from neuralens.style import StyleOptions, StyleTransfer

SAMPLES = Path(__file__).resolve().parents[2] / "neuralens" / "samples"
SHARED = SAMPLES.parents[1].parent / "shared" / "data"


def _wait(job, statuses, timeout: float = 120.0, min_iteration: int = 0) -> None:
    deadline = time.monotonic() + timeout
    while not (job.status in statuses and int(job.progress.get("iteration", 0) or 0) >= min_iteration):
        assert time.monotonic() < deadline, job.to_dict()
        time.sleep(0.05)


@pytest.fixture()
def manager(two_workers, redis_url, storage_url, tmp_path, request):
    """The web's JobManager on the queue; its threads (2 unless the test is marked ``threads(N)``) each
    follow one job on a worker."""
    from neuralens.distributed.web import QueueRunner
    from neuralens.web.jobs import JobManager

    marker = request.node.get_closest_marker("threads")
    runner = QueueRunner(QueueOptions(redis_url, storage_url), timeout=180)
    jobs = JobManager(
        workers=marker.args[0] if marker else 2, max_queue=4, preview_every=2, root=tmp_path / "jobs", runner=runner
    )
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


@pytest.mark.threads(3)  # a third thread, so the third job waits on the broker rather than in the page's queue
def test_a_web_job_cancelled_while_queued_ends_cancelled_without_an_image(manager, content_image, style_image):
    """Both workers busy: the third job is cancelled before any worker took it, so it ends cancelled (not
    failed) and has no result; the two running ones keep their best image."""
    from neuralens.web.jobs import CANCELLED, FINISHED

    options = StyleOptions(size=48, iterations=1000, coarse_iterations=0, scales=1, early_stop_patience=0).validate()
    running = [manager.submit(options, content_image, [style_image]) for _ in range(2)]
    for job in running:
        _wait(job, ("running",), min_iteration=2)
    queued = manager.submit(options, content_image, [style_image])
    time.sleep(1.0)  # it is on the queue now, behind the two
    redis = manager.runner.client.jobs.redis
    asked = len(redis.keys("*:cancel"))
    manager.cancel(queued)
    deadline = time.monotonic() + 30
    while len(redis.keys("*:cancel")) == asked:  # its Cancel has reached the broker before a worker frees up
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for job in running:
        manager.cancel(job)
    for job in [*running, queued]:
        _wait(job, FINISHED, timeout=90)
    assert queued.status == CANCELLED and queued.error is None, queued.to_dict()
    assert queued.result_size is None and not queued.result_path.is_file()
    assert all(job.status == CANCELLED and job.result_path.is_file() for job in running)


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


# --- video and classifier jobs of the web app on the queue ------------------------------------------------------
FINISHED_STATUSES = ("done", "failed", "cancelled")


@pytest.fixture()
def served(two_workers, redis_url, storage_url, tmp_path):
    """A TestClient of `neuralens serve --broker`: every job goes to this module's two worker processes."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from neuralens.web import create_app

    app = create_app(gallery=str(tmp_path / "g.sqlite3"), device="cpu", broker=redis_url, storage=storage_url)
    with TestClient(app) as client:
        yield client


def _poll(client, url: str, timeout: float = 240.0) -> list:
    """Every state of the job at ``url`` seen until it ends (a few looks a second)."""
    deadline, seen = time.monotonic() + timeout, []
    while not seen or seen[-1]["status"] not in FINISHED_STATUSES:
        assert time.monotonic() < deadline, seen[-1] if seen else url
        seen.append(client.get(url).json())
        time.sleep(0.05)
    return seen


def _frames(data: bytes) -> np.ndarray:
    import av

    with av.open(io.BytesIO(data)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_a_web_video_runs_on_a_worker_with_progress_and_the_in_process_frames(served, tmp_path):
    from neuralens import video
    from neuralens.video.synthetic import pan_clip, write_clip

    with Image.open(SAMPLES / "tubingen.jpg") as photo:
        frames, _ = pan_clip(photo.convert("RGB").resize((128, 96)), (64, 48), 8, (3, 1))
    clip = tmp_path / "clip.mp4"
    write_clip(clip, frames, fps=12)
    posted = served.post(
        "/api/videos", files={"video": ("clip.mp4", clip.read_bytes(), "video/mp4")}, data={"model": "starry-night"}
    )
    assert posted.status_code == 202, posted.text
    seen = _poll(served, f"/api/videos/{posted.json()['id']}")
    final = seen[-1]
    assert final["status"] == "done", final["error"]
    counts = [s["progress"]["frame"] for s in seen if s["progress"]]
    assert counts == sorted(counts) and counts[-1] == 8 and final["progress"]["total_frames"] == 8
    assert final["result"]["frames"] == 8 and final["result"]["size"] == [64, 48]
    preview = served.get(final["urls"]["preview"])
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"  # a worker's frame
    queued = _frames(served.get(final["urls"]["result"]).content)
    video.stylize(clip, tmp_path / "local.mp4", model="starry-night", options=video.VideoOptions(progress=False))
    local = _frames((tmp_path / "local.mp4").read_bytes())
    assert queued.shape == local.shape == (8, 48, 64, 3)
    # The worker runs one thread, this process two: values may differ by a level here and there.
    assert np.abs(queued.astype(int) - local.astype(int)).mean() < 1.0


def _add_classes(client) -> None:
    """Two classes of five small photos each, through the API (as test_web_classify.py does)."""
    sets = {
        "photo": [SHARED / "content" / n for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")],
        "painting": [SHARED / "style" / n for n in ("picasso_selfport1907.jpg", "seated-nude.jpg", "shipwreck.jpg")],
    }
    sets["photo"].append(SAMPLES / "tubingen.jpg")
    sets["painting"] += [SAMPLES / "the_scream.jpg", SHARED / "style" / "woman-with-hat-matisse.jpg"]
    if not all(p.is_file() for paths in sets.values() for p in paths):
        pytest.skip("the shared test photos are missing")
    for name, paths in sets.items():
        created = client.post("/api/classify/classes", data={"name": name}).json()
        files = [("photo", (f"p{i}.jpg", small_jpeg(p), "image/jpeg")) for i, p in enumerate(paths)]
        assert client.post(f"/api/classify/classes/{created['id']}/photos", files=files).status_code == 200


def test_a_web_training_runs_on_a_worker_and_its_model_predicts_here(served):
    _add_classes(served)
    started = served.post("/api/classify/train", data={"epochs": "20", "seed": "1"})
    assert started.status_code == 202, started.text
    final = _poll(served, f"/api/classify/jobs/{started.json()['id']}")[-1]
    assert final["status"] == "done", final["error"]
    assert len(final["epochs"]) == 20 and [row["epoch"] for row in final["epochs"]] == sorted(
        row["epoch"] for row in final["epochs"]
    )
    assert any(line.startswith("2 classes") for line in final["log"])  # the worker's dataset summary
    assert final["result"]["train_accuracy"] == 1.0 and final["result"]["classes"] == ["painting", "photo"]
    assert all(m["source"] is None and len(m["photo"]) == 32 for m in final["result"]["validation"]["mistakes"])
    starry = small_jpeg(SAMPLES / "starry_night.jpg", 160)
    answer = served.post("/api/classify/predict", files={"photo": ("starry.jpg", starry, "image/jpeg")})
    assert answer.status_code == 200 and answer.json()["label"] == "painting", answer.text
    assert served.get("/api/classify/model").status_code == 200


def test_cancel_of_a_queued_web_training_stops_it(served):
    """Cancel on the page reaches the worker (or the job before a worker takes it): the training ends
    cancelled, not failed, and no model is kept."""
    _add_classes(served)
    job = served.post("/api/classify/train", data={"epochs": "3000", "patience": "3000"}).json()
    assert served.post(f"/api/classify/jobs/{job['id']}/cancel").status_code in (200, 202)
    final = _poll(served, f"/api/classify/jobs/{job['id']}")[-1]
    assert final["status"] == "cancelled", final
    assert served.get("/api/classify").json()["model"] is None
