"""`neuralens serve --broker URL`: the web app's style, video and classifier-training jobs run on the queue's
workers.

The web's JobManager (``web/jobs.py``) takes a *runner*, the function that turns a job into a result; this
module's ``QueueRunner`` is one. It sends the job to the queue and, until it ends, hands the manager a ``Step``
for every step the worker publishes (the preview taken from Redis) and forwards a Cancel to the worker. So the
manager keeps doing what it does for in-process jobs - its bounded queue, statuses, progress stream, time
left, result file - and the page works unchanged.

``QueueVideoRunner`` and ``QueueTrainer`` do the same for the video and classifier managers: each takes the
arguments of the library function those managers call in-process (``video.stylize``, ``classify.train``) and
gives the same callbacks and result, so the managers only choose which of the two to call."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Union

from PIL import Image

from ..errors import Interrupted, NeuralensError
from ..imageio import ImageLike
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
        RemoteRun. NeuralensError with the worker's message when the job failed there; ``Interrupted`` when it
        was cancelled before any worker took it (there is no image to keep then)."""
        batch = state.new_id()
        job_id = self.client.submit_stylize(job.content, job.styles, job.options, batch)
        seen = [0]

        def on_change(remote: state.RemoteJob) -> None:
            iteration = int(remote.progress.get("iteration") or 0)
            if iteration > seen[0] and "size" in remote.progress:
                seen[0] = iteration
                callback(self._step(job_id, remote.progress, job.content))

        remote = follow(self.client, batch, job_id, on_change, should_stop, self.timeout)
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


def follow(
    client: QueueClient,
    batch: str,
    job_id: str,
    on_change: Callable[[state.RemoteJob], None],
    should_stop: Callable[[], bool],
    timeout: Optional[float] = None,
) -> state.RemoteJob:
    """Wait for the one job ``job_id`` of ``batch``: ``on_change(job)`` for every state of it seen while it
    runs and once for its last one; a Cancel is sent to its worker the first time ``should_stop()`` says so.
    Returns the finished job; NeuralensError with the worker's message when it failed, and ``Interrupted`` (a
    NeuralensError) when it was cancelled before any worker took it (then there is no result)."""
    cancelled = [False]

    def changed(running: List[state.RemoteJob]) -> None:
        if not cancelled[0] and running and not running[0].finished_now and should_stop():
            cancelled[0] = True
            client.cancel(job_id)
        for remote in running:
            on_change(remote)

    # Every event looked at (one job: one read each), so the caller sees nearly every step.
    (remote,) = list(client.wait(batch, [job_id], changed, timeout, look_every=0))
    on_change(remote)  # the last step, which may have come with the end
    if remote.status == state.FAILED:
        raise NeuralensError(remote.error or "the job failed on its worker")
    if remote.result is None:
        raise Interrupted("cancelled before a worker took it")
    return remote


@dataclass
class RemoteVideo:
    """What ``QueueVideoRunner`` returns: the fields of ``video.VideoResult`` the web reads, and the worker's
    whole report (its VideoResult.to_dict(), with the worker's paths) as ``to_dict()``."""

    frames: int
    size: List[int]
    stopped: bool
    report: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.report)


class QueueVideoRunner:
    """``video.stylize`` on a worker, for the web's video jobs: the same arguments, callbacks and result
    fields. The worker publishes a progress message per frame and a preview every few frames
    (``worker --preview-every``): ``callback(index, total, rgb)`` gets the latest frame index with the latest
    preview, so when frames come faster than the web looks, a call may skip frames. ``on_step`` (an
    optimisation's evaluations within a frame) is not sent by workers and is never called."""

    def __init__(self, client: QueueClient, timeout: Optional[float] = None):
        self.client = client
        self.timeout = timeout

    def __call__(
        self,
        source: Union[str, os.PathLike],
        output: Union[str, os.PathLike],
        styles: Optional[Sequence[ImageLike]] = None,
        model: Optional[str] = None,
        fast: bool = False,
        options=None,
        style_options=None,
        apply=None,
        callback: Optional[Callable[[int, int, Any], None]] = None,
        should_stop: Optional[Callable[[], bool]] = None,
        on_step: Optional[Callable] = None,
    ) -> RemoteVideo:
        import numpy as np  # noqa: PLC0415

        output = Path(output)
        batch = state.new_id()
        job_id = self.client.submit_video(
            source, output.suffix.lower(), options, style_options, apply, styles or (), model, fast, batch
        )
        seen = {"iteration": 0, "preview": 0}
        latest: List[Any] = [None]

        def on_change(remote: state.RemoteJob) -> None:
            iteration = int(remote.progress.get("iteration") or 0)
            if remote.preview_iteration > seen["preview"]:
                data = self.client.jobs.preview(job_id)
                if data is not None:
                    seen["preview"] = remote.preview_iteration
                    with Image.open(io.BytesIO(data)) as preview:
                        latest[0] = np.asarray(preview.convert("RGB"))
            if iteration > seen["iteration"] and latest[0] is not None and callback is not None:
                seen["iteration"] = iteration
                total = int(remote.progress.get("total_iterations") or iteration)
                callback(iteration - 1, total, latest[0])

        remote = follow(self.client, batch, job_id, on_change, should_stop or (lambda: False), self.timeout)
        self.client.storage.copy_to(remote.result, output)
        report = self.client.report(remote)
        return RemoteVideo(int(report.get("frames", 0)), list(report.get("size") or []), remote.stopped_early, report)


class QueueTrainer:
    """``classify.train`` on a worker, for the web's trainings: the same arguments and callbacks. The model
    and its report files are copied beside ``output`` as in-process training writes them; returns the model
    (``Classifier.load``) with ``report`` set to the worker's report (a ``WorkerReport``). The dataset summary
    and warnings reach ``log`` at the end. Every epoch reaches ``on_epoch`` once: as it is published, or for
    those that went by between two looks (epochs of the head take milliseconds), from the report at the end."""

    def __init__(self, client: QueueClient, timeout: Optional[float] = None):
        self.client = client
        self.timeout = timeout

    def __call__(
        self,
        folder: Union[str, os.PathLike],
        output: Union[str, os.PathLike],
        options,
        log: Optional[Callable[[str], None]] = None,
        on_features: Optional[Callable[[int, int], None]] = None,
        on_epoch: Optional[Callable[[str, int, dict], None]] = None,
        should_stop: Optional[Callable[[], bool]] = None,
    ):
        from ..classify.model import Classifier  # noqa: PLC0415
        from ..classify.training import report_files  # noqa: PLC0415

        batch = state.new_id()
        job_id = self.client.submit_classify(folder, options, batch)
        sent: Set[tuple] = set()  # (stage, epoch) of the epochs passed on

        def epoch(stage: str, row: dict) -> None:
            if on_epoch is not None and (stage, row.get("epoch")) not in sent:
                sent.add((stage, row.get("epoch")))
                on_epoch(stage, int(row.get("epoch") or 0), row)

        def on_change(remote: state.RemoteJob) -> None:
            progress = remote.progress
            if progress.get("stage") == "features" and on_features is not None and progress.get("features"):
                on_features(*progress["features"])
            elif progress.get("row"):
                epoch(progress["stage"], progress["row"])

        # A training cancelled on its worker saves nothing (as in-process), so it ends without a result too.
        remote = follow(self.client, batch, job_id, on_change, should_stop or (lambda: False), self.timeout)
        if remote.status == state.CANCELLED:
            raise Interrupted("training cancelled")
        report = self.client.report(remote)
        for row in report.get("history", {}).get("epochs", []):
            epoch("head", row)
        for row in report.get("fine_tune", {}).get("epochs", []):
            epoch("fine-tune", row)
        for line in report.get("log") or []:
            if log is not None:
                log(line)
        output = Path(output)
        self.client.storage.copy_to(remote.result, output)
        beside = report_files(output)
        for name, key in (report.get("files") or {}).items():
            if name in beside:
                self.client.storage.copy_to(key, beside[name])
        classifier = Classifier.load(output, options.device)
        classifier.report = WorkerReport(report)
        return classifier


@dataclass
class WorkerReport:
    """A training report as a worker stored it: ``to_dict()`` gives it back, as ``TrainReport.to_dict()``
    does in-process."""

    values: Dict[str, Any]

    def to_dict(self) -> dict:
        return dict(self.values)
