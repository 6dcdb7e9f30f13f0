"""The job queue through its Python API: cancel reaches running and queued jobs on other processes, previews
reach any client, completion is reported once, leases are exclusive, storage writes are atomic."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from neuralens.distributed.options import QueueOptions
from neuralens.distributed.storage import LocalStorage, check_key, file_key
from neuralens.errors import NeuralensError
from neuralens.style import StyleOptions


def test_cancel_reaches_running_and_queued_jobs(two_workers, redis_url, storage_url, photos):
    from neuralens.distributed import state
    from neuralens.distributed.client import QueueClient

    long = StyleOptions(size=48, iterations=1000, coarse_iterations=0, scales=1, early_stop_patience=0).validate()
    with QueueClient(QueueOptions(redis_url, storage_url)) as client:
        batch = state.new_id()
        ids = [client.submit_stylize(content, [photos[-1]], long, batch) for content in photos[:3]]
        deadline = time.monotonic() + 120
        while True:  # both workers busy, the third job waiting in the queue
            jobs = client.jobs.get_many(ids)
            running = [j for j in jobs if j.status == state.RUNNING and j.progress.get("iteration", 0) >= 2]
            if len(running) == 2:
                break
            assert time.monotonic() < deadline, [j.to_dict() for j in jobs]
            time.sleep(0.1)
        assert client.jobs.preview(running[0].id).startswith(b"\x89PNG")  # previews reach any client
        for job_id in ids:
            client.cancel(job_id)
        ended = {job.id: job for job in client.wait(batch, ids, timeout=120)}
    assert {job.status for job in ended.values()} == {state.CANCELLED}
    for job in running:  # stopped between two evaluations, keeping the image so far
        assert ended[job.id].stopped_early and max(ended[job.id].result_size) == 48
        assert ended[job.id].progress["iteration"] < 1000
    (waiting,) = [job for job in ended.values() if job.id not in {r.id for r in running}]
    assert waiting.runs == 0 and waiting.result is None  # never started


def test_completion_is_reported_once(redis_url):
    from neuralens.distributed import state

    jobs = state.JobStore(state.connect(redis_url))
    batch, job_id = state.new_id(), state.new_id()
    jobs.create(job_id, batch, "stylize")
    assert jobs.report(job_id, batch, state.DONE, result="results/x.png")
    assert not jobs.report(job_id, batch, state.FAILED, error="a second run")
    assert jobs.finished_since(batch, 0) == [job_id]
    job = jobs.get(job_id)
    assert (job.status, job.result, job.error) == (state.DONE, "results/x.png", None)


def test_lease_is_exclusive_and_renewed_only_by_its_holder(redis_url):
    from neuralens.distributed import state

    jobs = state.JobStore(state.connect(redis_url))
    job_id = state.new_id()
    assert jobs.claim(job_id, "a", 5) and not jobs.claim(job_id, "b", 5)
    assert jobs.renew(job_id, "a", 5) and not jobs.renew(job_id, "b", 5)
    jobs.release(job_id, "b")  # not b's: stays
    assert not jobs.claim(job_id, "b", 5)
    jobs.release(job_id, "a")
    assert jobs.claim(job_id, "b", 5)


def test_storage_writes_atomically_and_marks_once(tmp_path, photos):
    storage = LocalStorage((tmp_path / "s").as_uri())
    key = storage.put_file(photos[0], file_key(photos[0]))
    assert key.startswith("inputs/") and key.endswith(".jpg")
    assert storage.fetch(key).read_bytes() == photos[0].read_bytes()
    assert storage.create("results/j.json", b"first") and not storage.create("results/j.json", b"second")
    assert storage.read_bytes("results/j.json") == b"first"
    assert not [p for p in (tmp_path / "s").rglob("*.tmp")]  # no temporary files left behind
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(NeuralensError):
            check_key(bad)
    with pytest.raises(NeuralensError, match="share"):
        storage.fetch("inputs/missing.jpg")


def test_a_storage_error_outside_the_run_ends_the_job_failed_not_lost(
    two_workers, redis_url, storage_url, photos, monkeypatch
):
    """An error of the shared storage before the job runs (here its completion marker's name is taken by a
    folder, so reading it fails) must end the job as failed: acknowledged without a report, it would stay
    queued for ever and its client would wait for ever."""
    from urllib.parse import urlsplit

    from neuralens.distributed import state
    from neuralens.distributed.client import QueueClient

    batch, job_id = state.new_id(), state.new_id()
    (Path(urlsplit(storage_url).path) / "results" / f"{job_id}.json").mkdir(parents=True)
    options = StyleOptions(size=32, iterations=2, coarse_iterations=0, scales=1).validate()
    with QueueClient(QueueOptions(redis_url, storage_url)) as client:
        monkeypatch.setattr(state, "new_id", lambda: job_id)
        assert client.submit_stylize(photos[0], [photos[-1]], options, batch) == job_id
        (job,) = list(client.wait(batch, [job_id], timeout=90))
        assert client.jobs.finished_since(batch, 0) == [job_id]  # reported once
    assert job.status == state.FAILED and "internal error" in job.error, job.to_dict()
