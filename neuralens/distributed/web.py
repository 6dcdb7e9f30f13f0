"""`neuralens serve --broker URL`: the web app's style jobs run on the queue's workers.

The web's JobManager (``web/jobs.py``) takes a *runner*, the function that turns a job into a result; this
module's ``QueueRunner`` is one. It sends the job to the queue and, until it ends, hands the manager a ``Step``
for every step the worker publishes (the preview taken from Redis) and forwards a Cancel to the worker. So the
manager keeps doing what it does for in-process jobs - its bounded queue, statuses, progress stream, time
left, result file - and the page works unchanged."""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from typing import Callable, Optional

from PIL import Image

from ..errors import NeuralensError
from ..style import Step
from . import state
from .client import QueueClient
from .options import QueueOptions

STEP_FIELDS = tuple(f.name for f in fields(Step) if f.name != "image")


@dataclass
class RemoteRun:
    """What a runner returns to the JobManager: the image and whether the run was stopped early."""

    image: Image.Image
    stopped: bool
    report: dict

    def to_dict(self) -> dict:
        """The worker's report of the run (size, stopped, timings, history)."""
        return dict(self.report)


class QueueRunner:
    """A JobManager runner on the job queue at ``queue.broker``. Connects at once (NeuralensError, one line,
    when the broker cannot be reached), so a server with a bad broker URL does not start."""

    def __init__(self, queue: QueueOptions, timeout: Optional[float] = None):
        self.client = QueueClient(queue)
        self.timeout = timeout

    def close(self) -> None:
        self.client.close()

    def __call__(self, job, callback: Callable[[Step], None], should_stop: Callable[[], bool]) -> RemoteRun:
        """Run the web ``job`` (its content and style images, its StyleOptions) on a worker; returns a
        RemoteRun. NeuralensError with the worker's message when the job failed there, or when it was
        cancelled before any worker took it (there is no image to keep then)."""
        batch = state.new_id()
        job_id = self.client.submit_stylize(job.content, job.styles, job.options, batch)
        seen = [0]
        cancelled = [False]

        def on_change(running) -> None:
            if not cancelled[0] and running and not running[0].finished_now and should_stop():
                cancelled[0] = True
                self.client.cancel(job_id)
            for remote in running:
                iteration = int(remote.progress.get("iteration") or 0)
                if iteration > seen[0] and "size" in remote.progress:
                    seen[0] = iteration
                    callback(self._step(job_id, remote.progress, job.content))

        # Every event looked at (one job: one read each), so the manager sees nearly every step and takes
        # its previews at its own cadence.
        (remote,) = list(self.client.wait(batch, [job_id], on_change, self.timeout, look_every=0))
        on_change([remote])  # the last step, which may have come with the end
        if remote.status == state.FAILED:
            raise NeuralensError(remote.error or "the job failed on its worker")
        if remote.result is None:
            raise NeuralensError("cancelled before a worker took it")
        return RemoteRun(self.client.result_image(remote), remote.stopped_early, self.client.report(remote))

    def _step(self, job_id: str, progress: dict, content: Image.Image) -> Step:
        values = {name: progress.get(name) for name in STEP_FIELDS}
        values["size"] = tuple(values["size"])

        def image() -> Image.Image:
            data = self.client.jobs.preview(job_id)
            if data is None:  # no preview published yet: the photo at the step's size stands in
                return content.resize(values["size"])
            with Image.open(io.BytesIO(data)) as preview:
                return preview.convert("RGB")

        return Step(**values, image=image)
