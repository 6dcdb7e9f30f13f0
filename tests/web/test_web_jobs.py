"""Style jobs through the HTTP API, in process: submit, follow, download, cancel, the queue limit."""

from __future__ import annotations

import io
import time

from PIL import Image
from web_helpers import read_events, wait_status

TINY = {"size": "64", "iterations": "4"}
# Long enough to still be running when the test acts on it; cancelled well before the end.
LONG = {"size": "64", "iterations": "1000", "content_sample": "tubingen.jpg", "style_sample": "the_scream.jpg"}


def test_submit_follow_progress_and_download(client, tiny_files):
    response = client.post("/api/jobs", files=tiny_files, data=TINY)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("queued", "running") and len(job["id"]) == 32

    events = read_events(client, job["id"])
    assert events[-1][0] == "end"
    updates = [data for name, data in events if name == "job"]
    assert updates[-1]["status"] == "done"
    iterations = [u["progress"]["iteration"] for u in updates if u["progress"]]
    assert iterations == sorted(iterations) and iterations[-1] == 4
    final = updates[-1]
    assert final["progress"]["total_iterations"] == 4 and final["progress"]["eta"] == 0
    assert final["result_size"] == [64, 48] and final["urls"]["result"] == f"/api/jobs/{job['id']}/result"

    preview = client.get(final["urls"]["preview"])
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    result = client.get(final["urls"]["result"])
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert "attachment" in result.headers["content-disposition"]
    image = Image.open(io.BytesIO(result.content))
    assert image.format == "PNG" and image.size == (64, 48)

    # Kept in the list (the page's gallery) until deleted; then gone, files included.
    listed = client.get("/api/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    folder = client.app.state.manager.get(job["id"]).folder
    assert folder.is_dir()
    assert client.delete(f"/api/jobs/{job['id']}").json() == {"deleted": job["id"]}
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    assert client.get(final["urls"]["result"]).status_code == 404
    assert not folder.exists()


def test_samples_polling_and_previews(client):
    """Bundled samples as inputs, two blended styles, progress by polling, a preview along the way."""
    data = {**TINY, "content_sample": "chelsea.jpg", "preserve_color": "luminance", "style_blend": "0.7,0.3"}
    files = [("style_sample", (None, "starry_night.jpg")), ("style_sample", (None, "the_scream.jpg"))]
    job = client.post("/api/jobs", data=data, files=files).json()
    assert job["inputs"] == {"content": "chelsea.jpg", "styles": ["starry_night.jpg", "the_scream.jpg"]}
    assert job["options"]["preserve_color"] == "luminance" and job["options"]["style_blend"] == [0.7, 0.3]
    running = wait_status(client, job["id"], ("running", "done"), min_iteration=2)
    assert running["urls"]["preview"] and running["preview_iteration"] >= 1
    done = wait_status(client, job["id"])
    assert done["status"] == "done" and max(done["result_size"]) == 64


def test_cancel_a_running_job_keeps_the_image_so_far(client):
    job = client.post("/api/jobs", data=LONG).json()
    wait_status(client, job["id"], ("running",), min_iteration=2)
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    final = wait_status(client, job["id"], timeout=30)
    assert final["status"] == "cancelled" and final["stopped_early"] is True
    assert final["progress"]["iteration"] < 1000
    assert client.get(final["urls"]["result"]).status_code == 200  # the best image reached is kept
    # Cancelling again is harmless.
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


def test_queue_limit_answers_429_and_frees_on_cancel(make_client):
    client = make_client(max_queue=1)
    running = client.post("/api/jobs", data=LONG).json()
    wait_status(client, running["id"], ("running",))
    waiting = client.post("/api/jobs", data=LONG)
    assert waiting.status_code == 202 and waiting.json()["queue_position"] == 1
    assert "no preview yet" in client.get(waiting.json()["urls"]["self"] + "/preview").json()["error"]

    refused = client.post("/api/jobs", data=LONG)
    assert refused.status_code == 429
    assert "queue is full" in refused.json()["error"] and refused.headers["retry-after"]

    # A waiting job is dropped at once when cancelled, which frees its place.
    dropped = client.post(f"/api/jobs/{waiting.json()['id']}/cancel").json()
    assert dropped["status"] == "cancelled" and dropped["urls"]["result"] is None
    assert client.get(f"/api/jobs/{waiting.json()['id']}/result").status_code == 409
    again = client.post("/api/jobs", data=LONG)
    assert again.status_code == 202
    for job_id in (running["id"], again.json()["id"]):
        client.post(f"/api/jobs/{job_id}/cancel")
    for job_id in (running["id"], again.json()["id"]):
        assert wait_status(client, job_id, timeout=30)["status"] == "cancelled"


def test_deleting_a_running_job_stops_it(client):
    job = client.post("/api/jobs", data=LONG).json()
    wait_status(client, job["id"], ("running",), min_iteration=1)
    manager = client.app.state.manager
    record = manager.get(job["id"])
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 200
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404
    deadline = time.monotonic() + 30  # the worker notices after the current step, then removes the folder
    while not (record.finished and not record.folder.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert record.finished and not record.folder.exists()


def test_time_left_counts_the_larger_scales_still_to_come():
    from types import SimpleNamespace

    from neuralens.style import StyleOptions, plan_scales
    from neuralens.web.jobs import TimeLeft

    options = StyleOptions(size=512, iterations=10)
    plan = plan_scales(options)
    assert plan == [(256, 20), (362, 20), (512, 10)]
    total = sum(n for _, n in plan)
    estimate = TimeLeft(options)
    cost = 1e-5  # seconds per pixel, and a 5 s start-up paid by the first step
    elapsed, iteration, estimates, truth = 5.0, 0, [], []
    steps = [(scale, side) for scale, (side, n) in enumerate(plan) for _ in range(n)]
    for scale, side in steps:
        iteration += 1
        size = (side, round(side * 0.75))  # a 4:3 landscape photo
        elapsed += cost * size[0] * size[1]
        estimates.append(
            estimate.update(
                SimpleNamespace(iteration=iteration, total_iterations=total, scale=scale, size=size, elapsed=elapsed)
            )
        )
        truth.append(sum(cost * s * round(s * 0.75) for _, s in steps[iteration:]))
    assert estimates[0] is None  # no rate yet (and the start-up must not count)
    for guess, real in zip(estimates[1:], truth[1:]):
        assert abs(guess - real) <= 0.02 * real + 1e-6
    assert estimates[-1] == 0


def test_a_failing_job_reports_why_and_the_worker_goes_on(client):
    # A style weight so large that the loss overflows: the library refuses to go on.
    bad = client.post(
        "/api/jobs",
        data={
            **TINY,
            "iterations": "2",
            "style_weight": "1e38",
            "content_sample": "tubingen.jpg",
            "style_sample": "starry_night.jpg",
        },
    )
    assert bad.status_code == 202
    assert client.get(f"/api/jobs/{bad.json()['id']}/preview").status_code in (200, 404)
    failed = wait_status(client, bad.json()["id"])
    assert failed["status"] == "failed" and "infinite or NaN" in failed["error"]
    assert failed["urls"]["result"] is None
    assert "no result" in client.get(f"/api/jobs/{bad.json()['id']}/result").json()["error"]
    good = client.post(
        "/api/jobs",
        data={**TINY, "iterations": "2", "content_sample": "tubingen.jpg", "style_sample": "starry_night.jpg"},
    ).json()
    assert wait_status(client, good["id"])["status"] == "done"
