"""Style-transfer jobs for the web app: a bounded queue, worker thread(s), progress and previews.

Why it is built this way:
- One worker per device by default, so a laptop runs one optimisation at a time and stays usable; more
  requests wait in a queue of bounded length, and a full queue is refused (the API answers 429) instead
  of piling up work nobody will wait for.
- The worker reports through ``StyleTransfer.run``'s callback and stops through its ``should_stop``, so the
  web layer adds no optimisation code of its own.
- Each job owns a folder named by its server-generated id under the manager's root (a temporary folder);
  nothing a client sends ever becomes part of a path. Deleting a job, or stopping the server, removes it.
- A server killed without a chance to clean up (``kill -9``, a power cut) leaves its root behind. Each root
  therefore holds a lock file that its server keeps locked (``flock``) while it lives; a new manager deletes
  every ``neuralens-web-*`` root whose lock it can take, and never one whose owner still holds it (the
  roots and their locks are handled in ``workspace``).
- Readers (status polling, the SSE stream) watch ``Job.version``, bumped under a condition variable on
  every change, so they never miss the final state and never need to hold the lock for long.
"""

from __future__ import annotations

import collections
import io
import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Deque, Dict, List, Optional

import torch
from PIL import Image

from ..errors import Interrupted, NeuralensError
from ..imageio import save_image
from ..style import StyleOptions, StyleTransfer, plan_scales
from .workspace import make_root, remove_stale_roots

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


def status_fields(job) -> dict:
    """The fields every kind of job (style, video, classify training) reports first, as ``shapes.JobStatusOut``
    describes them: id, status, version and the created / started / finished times."""
    return {
        "id": job.id,
        "status": job.status,
        "version": job.version,
        "created": job.created,
        "started": job.started,
        "finished": job.finished,
    }


class QueueFull(NeuralensError):
    """More jobs are waiting than the server accepts."""


@dataclass
class Job:
    """One stylization request and everything the API reports about it."""

    id: str
    options: StyleOptions
    content: Image.Image
    styles: List[Image.Image]
    folder: Path
    labels: Dict[str, object] = field(default_factory=dict)  # names of the inputs, for the page only
    status: str = QUEUED
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    finished: Optional[float] = None
    progress: Dict[str, object] = field(default_factory=dict)
    error: Optional[str] = None
    preview: Optional[bytes] = None  # PNG of the latest intermediate image
    # (None once finished: the result is)
    preview_iteration: int = 0
    result_size: Optional[List[int]] = None
    stopped_early: bool = False
    version: int = 0
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def result_path(self) -> Path:
        return self.folder / "result.png"

    def to_dict(self) -> dict:
        """The JSON the API returns for this job (no image data: those have their own URLs)."""
        base = f"/api/jobs/{self.id}"
        return {
            **status_fields(self),
            "error": self.error,
            "stopped_early": self.stopped_early,
            "progress": dict(self.progress),
            "options": self.options.to_dict(),
            "inputs": dict(self.labels),
            "result_size": self.result_size,
            "preview_iteration": self.preview_iteration,
            "urls": {
                "self": base,
                "events": f"{base}/events",
                "cancel": f"{base}/cancel",
                "preview": f"{base}/preview" if self.preview is not None or self.result_size else None,
                "result": f"{base}/result" if self.result_size is not None else None,
            },
        }


def png_bytes(image: Image.Image) -> bytes:
    """Encode a PIL image as PNG in memory."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class TimeLeft:
    """Estimates the time left of a run from the steps so far.

    A step's cost grows with the pixels of its scale, so the measured rate is per pixel and the remaining
    work counts the larger scales still to come; the first step is left out of the rate, since it also pays
    one-off start-up costs (several seconds on a CPU) that would inflate every estimate."""

    def __init__(self, options: StyleOptions):
        self.plan = plan_scales(options)
        self.first_elapsed: Optional[float] = None
        self.work = 0.0  # pixels processed since the first step
        self.scale = -1
        self.scale_start = 0  # iteration at which the current scale began

    def update(self, step) -> Optional[float]:
        """Seconds left after ``step`` (None until there is a rate to go by)."""
        pixels = float(step.size[0] * step.size[1])
        if step.scale != self.scale:
            self.scale, self.scale_start = step.scale, step.iteration
        if self.first_elapsed is None:
            self.first_elapsed = step.elapsed
            return None
        self.work += pixels
        rate = (step.elapsed - self.first_elapsed) / self.work
        if sum(n for _, n in self.plan) != step.total_iterations or step.scale >= len(self.plan):
            return rate * pixels * (step.total_iterations - step.iteration)  # plan unknown: plain rate
        aspect = pixels / max(step.size) ** 2
        left_here = max(0, self.plan[step.scale][1] - (step.iteration - self.scale_start + 1))
        later = sum(n * side * side * aspect for side, n in self.plan[step.scale + 1 :])
        return rate * (left_here * pixels + later)


Runner = Callable[[Job, Callable[[object], None], Callable[[], bool]], object]


def run_style_transfer(job: Job, callback: Callable[[object], None], should_stop: Callable[[], bool]):
    """The default runner: the style API, exactly as the CLI uses it. Returns a StyleResult."""
    return StyleTransfer(job.styles, job.options).run(job.content, callback=callback, should_stop=should_stop)


class JobManager:
    """Accepts jobs, runs them ``workers`` at a time in background threads, keeps their results.

    ``max_queue`` is how many jobs may wait (not counting running ones); ``preview_every`` is how often (in
    loss evaluations) an intermediate image is taken; ``root`` is the folder for results (by default a fresh
    temporary folder, removed by ``shutdown``; the folders of dead servers are removed on the way)."""

    def __init__(
        self,
        workers: int = 1,
        max_queue: int = 4,
        preview_every: int = 5,
        root: Optional[Path] = None,
        runner: Runner = run_style_transfer,
    ):
        if workers < 1 or max_queue < 0 or preview_every < 1:
            raise NeuralensError("workers and preview-every must be >= 1 and the queue length >= 0")
        self.workers = workers
        self.max_queue = max_queue
        self.preview_every = preview_every
        self.runner = runner
        self._own_root = root is None
        self._root_lock = None
        if root is None:
            remove_stale_roots()
            self.root, self._root_lock = make_root()
        else:
            self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._jobs: Dict[str, Job] = {}
        self._waiting: Deque[Job] = collections.deque()
        self._changed = threading.Condition()
        self._threads: List[threading.Thread] = []
        self._closing = False
        # Called with the lock held on every change of a job (the web's metrics count statuses through it);
        # each must be quick and must not raise.
        self.observers: List[Callable[[object], None]] = []

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads (idempotent)."""
        with self._changed:
            if self._threads or self._closing:
                return
            for number in range(self.workers):
                thread = threading.Thread(target=self._work, name=f"neuralens-job-{number}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel everything, wait for the workers, delete the results folder (when it is ours)."""
        with self._changed:
            self._closing = True
            for job in self._jobs.values():
                job.cancel_requested.set()
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
            if self._root_lock is not None:
                self._root_lock.close()
                self._root_lock = None

    def healthy(self) -> bool:
        """True while jobs can be taken: not shutting down, and every worker thread started so far alive."""
        with self._changed:
            return not self._closing and all(thread.is_alive() for thread in self._threads)

    # --- requests -----------------------------------------------------------------------------------
    def submit(
        self, options: StyleOptions, content: Image.Image, styles: List[Image.Image], labels: Optional[dict] = None
    ) -> Job:
        """Queue a job. Raises QueueFull when ``max_queue`` jobs are already waiting."""
        self.start()
        with self._changed:
            if self._closing:
                raise NeuralensError("the server is shutting down")
            self.ensure_room()
            job_id = uuid.uuid4().hex
            folder = self.root / job_id
            folder.mkdir()
            job = Job(job_id, options, content, styles, folder, labels=dict(labels or {}))
            self._jobs[job_id] = job
            self._waiting.append(job)
            self._touch(job)
        return job

    def ensure_room(self) -> None:
        """Raise QueueFull when ``max_queue`` jobs are already waiting."""
        with self._changed:
            if len(self._waiting) >= self.max_queue:
                busy = sum(1 for j in self._jobs.values() if j.status == RUNNING)
                raise QueueFull(
                    f"the queue is full ({len(self._waiting)} job(s) waiting, {busy} running, "
                    f"limit {self.max_queue}); wait for one to finish or cancel one, then retry"
                )

    def get(self, job_id: str) -> Optional[Job]:
        """The job with this id, or None."""
        with self._changed:
            return self._jobs.get(job_id)

    def list(self) -> List[Job]:
        """Every job this server knows, newest first."""
        with self._changed:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def snapshot(self, job: Job) -> dict:
        """``job.to_dict()`` taken under the lock, so it is consistent."""
        with self._changed:
            return job.to_dict()

    def position(self, job: Job) -> Optional[int]:
        """1-based place of a waiting job in the queue (None when not waiting)."""
        with self._changed:
            for number, waiting in enumerate(self._waiting, start=1):
                if waiting is job:
                    return number
        return None

    def cancel(self, job: Job) -> Job:
        """Stop a running job (it keeps the best image so far as its result) or drop a waiting one."""
        with self._changed:
            if job.status == QUEUED:
                self._waiting.remove(job)
                job.status, job.finished = CANCELLED, time.time()
            job.cancel_requested.set()
            self._touch(job)
        return job

    def delete(self, job: Job) -> None:
        """Forget a job and delete its files (a running job is stopped first)."""
        self.cancel(job)
        with self._changed:
            self._jobs.pop(job.id, None)
            self._touch(job)
        if job.status != RUNNING:
            shutil.rmtree(job.folder, ignore_errors=True)
        # A running job's folder is removed by its worker once the optimiser has stopped.

    # --- the worker ---------------------------------------------------------------------------------
    def _touch(self, job: Job) -> None:
        """Record a change (call with the lock held)."""
        job.version += 1
        for observe in self.observers:
            observe(job)
        self._changed.notify_all()

    def _take(self) -> Optional[Job]:
        with self._changed:
            self._changed.wait_for(lambda: self._waiting or self._closing)
            if self._closing:
                return None
            job = self._waiting.popleft()
            job.status, job.started = RUNNING, time.time()
            self._touch(job)
            return job

    def _work(self) -> None:
        while True:
            job = self._take()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        every = self.preview_every
        time_left = TimeLeft(job.options)

        def callback(step) -> None:
            # Losses every step (cheap); an image only every few steps, since taking one costs a copy.
            total = max(step.total_iterations, step.iteration)
            eta = time_left.update(step)
            progress = {
                "iteration": step.iteration,
                "total_iterations": total,
                "scale": step.scale,
                "size": list(step.size),
                "content_loss": step.content_loss,
                "style_loss": step.style_loss,
                "loss": step.loss,
                "elapsed": round(step.elapsed, 3),
                "eta": None if eta is None else round(eta, 1),
            }
            preview = None
            if step.iteration == 1 or step.iteration % every == 0:
                preview = png_bytes(step.image())
            with self._changed:
                job.progress = progress
                if preview is not None:
                    job.preview, job.preview_iteration = preview, step.iteration
                self._touch(job)

        try:
            result = self.runner(job, callback, job.cancel_requested.is_set)
            image = result.image
            save_image(image, job.result_path)
            with self._changed:
                job.result_size = list(image.size)
                job.stopped_early = bool(getattr(result, "stopped", False))
                job.preview = None  # from now on the preview is the result file (not kept twice in memory)
                job.preview_iteration = int(job.progress.get("iteration", 0) or 0)
                # A stopped run still has a usable image (the best one reached): it stays downloadable.
                job.status = CANCELLED if job.stopped_early else DONE
        except Interrupted:  # on the job queue: cancelled before a worker took it, so no image to keep
            with self._changed:
                job.status = CANCELLED
        except NeuralensError as exc:
            self._fail(job, str(exc))
        except (MemoryError, torch.cuda.OutOfMemoryError):
            self._fail(job, "out of memory; try a smaller size")
        except Exception as exc:  # noqa: BLE001 -- one bad job must not kill the worker thread
            log.exception("job %s failed", job.id)
            self._fail(job, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            with self._changed:
                job.finished = time.time()
                job.content, job.styles = None, []  # the inputs are no longer needed in memory
                forgotten = job.id not in self._jobs
                self._touch(job)
            if forgotten:
                shutil.rmtree(job.folder, ignore_errors=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # give the next job (and other programs) the memory back

    def _fail(self, job: Job, message: str) -> None:
        with self._changed:
            job.status, job.error = FAILED, message
