"""A worker SIGKILLed mid-job (with its pool, as when a machine is lost): another worker runs the job again
once the visibility timeout has passed, every job completes exactly once, and the images are those of the
in-process path."""

from __future__ import annotations

import collections
import time

import numpy as np

from neuralens.distributed import state
from neuralens.distributed.client import QueueClient
from neuralens.distributed.options import QueueOptions
from neuralens.style import StyleOptions, StyleTransfer


def test_sigkill_of_a_worker_mid_job_still_completes_every_job_once(
    workers, redis_url, storage_url, photos, threads_of_a_worker
):
    first, second = workers.start(2, "--visibility-timeout", "4", "--lease", "2")
    by_pid = {first.pid: first, second.pid: second}
    settings = StyleOptions(size=48, iterations=40, coarse_iterations=0, scales=1, early_stop_patience=0).validate()
    contents, style = photos[:3], photos[-1]
    with QueueClient(QueueOptions(redis_url, storage_url)) as client:
        batch = state.new_id()
        ids = [client.submit_stylize(content, [style], settings, batch) for content in contents]
        deadline = time.monotonic() + 120
        victim = None
        while victim is None:  # a job part-way through
            for job in client.jobs.get_many(ids):
                if job.status == state.RUNNING and job.progress.get("iteration", 0) >= 3:
                    victim = job
                    break
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.05)
        worker_pid = int(victim.worker.split("@")[0].rsplit("-", 1)[1])
        workers.kill(by_pid[worker_pid])
        try:
            ended = {job.id: job for job in client.wait(batch, ids, timeout=180)}
        except Exception as exc:
            states = [job.to_dict() for job in client.jobs.get_many(ids)]
            raise AssertionError(f"{exc}\n{states}\n{workers.logs()}") from None
        reported = collections.Counter(client.jobs.finished_since(batch, 0))
        images = {job_id: np.asarray(client.result_image(job)) for job_id, job in ended.items()}
    assert reported == {job_id: 1 for job_id in ids}  # each job reported finished exactly once
    assert {job.status for job in ended.values()} == {state.DONE}
    rerun = ended[victim.id]
    assert rerun.runs >= 2 and rerun.worker != victim.worker  # run again, elsewhere
    transfer = StyleTransfer(str(style), settings)
    for job_id, content in zip(ids, contents):
        expected = np.asarray(transfer.run(str(content)).image).astype(int)
        # The same picture, not to the bit: reruns on a loaded 2-core CI machine ended 1 level off in a few
        # pixels, once 38 levels off at one pixel (mean 3) after 40 L-BFGS steps, which amplify any rounding
        # difference. Bit-equality with the in-process path is tested without a kill (test_cli, test_queue).
        # In-process on the workers' thread count (threads_of_a_worker): on 2 threads against their 1 the mean
        # difference was 8.1 levels for The Scream on the 2-core AMX Xeon (2026-12-08), every run.
        difference = np.abs(images[job_id].astype(int) - expected)
        assert images[job_id].shape == expected.shape and difference.mean() < 8, (content.name, difference.mean())
    assert by_pid[worker_pid].poll() is not None
