"""Submitting jobs to the queue and collecting them: what `neuralens stylize ... --broker URL` runs.

Inputs are copied to the shared storage under content-hash keys (a style shared by a whole batch is stored
once) and each job's message names them; the client then follows every job of its batch through Redis - one
progress bar for all - and saves each result as it arrives, exactly as the in-process path saves it."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from PIL import Image

from ..errors import Interrupted, NeuralensError
from ..imageio import ImageLike, save_result
from ..progress import Progress
from . import state
from .app import CLASSIFY_TASK, FACES_TASK, FAST_TASK, STYLIZE_TASK, VIDEO_TASK, make_app
from .options import QueueOptions, shown
from .storage import file_key, open_storage
from .tasks import STYLE_FILE_FIELDS, face_from_record, marker_key

WAKE_SECONDS = 0.25  # longest sleep between two looks at the batch (events wake the client sooner)
LOOK_SECONDS = 0.1  # at most this often, the unfinished jobs' progress is read (a batch may be thousands)
NO_WORKER_SECONDS = 15.0  # say so when no worker has taken any job by then
# Faces: photos per job. Detecting and encoding one photo takes ~0.1-1 s on a CPU core (HOG) and a job costs
# ~20-30 ms of queue overhead (message, state, result file; benchmarks/results/queue_throughput.md), so 16
# photos make jobs of seconds with the overhead at a few per cent, while a 10 000-photo library is still
# 625 jobs to spread over any number of workers, and a worker lost mid-job costs at most 16 photos again.
# A small library is cut finer, into up to FACES_SPREAD_JOBS jobs, so that it spreads over the workers too.
FACES_PHOTOS_PER_JOB = 16
FACES_SPREAD_JOBS = 32


@dataclass
class Finished:
    """One finished job as the client collected it: its state in Redis and its run's report."""

    job: state.RemoteJob
    report: dict

    @property
    def stopped(self) -> bool:
        return self.job.status == state.CANCELLED

    def to_dict(self) -> dict:
        """The run's report (size, stopped, timings, history) and the job's state, JSON-ready."""
        return {**self.report, "stopped": self.stopped, "job": self.job.to_dict()}


class QueueClient:
    """Submits jobs to the queue at ``queue.broker`` with inputs in ``queue.storage``; follows and cancels
    them. NeuralensError at once for a bad URL, an unreachable broker or a storage that cannot be written."""

    def __init__(self, queue: QueueOptions):
        queue.validate()
        if queue.broker is None:
            raise NeuralensError("no broker given (redis://HOST:6379/0)")
        self.options = queue
        self.redis = state.connect(queue.broker)
        self.jobs = state.JobStore(self.redis)
        self.storage = open_storage(queue.storage)
        self.app = make_app(queue.broker)

    def close(self) -> None:
        """Close the connections to Redis (state and the queue's)."""
        self.redis.close()
        self.app.close()

    def __enter__(self) -> QueueClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- inputs ------------------------------------------------------------------------------------
    def upload(self, source: Union[ImageLike, str, os.PathLike]) -> str:
        """Copy a file (or a PIL image, as PNG) to the storage under its content hash. Returns the key."""
        if isinstance(source, Image.Image):
            buffer = io.BytesIO()
            source.save(buffer, format="PNG")
            data = buffer.getvalue()
            key = f"inputs/{hashlib.sha256(data).hexdigest()[:40]}.png"
            return key if self.storage.exists(key) else self.storage.put_bytes(data, key)
        path = Path(source)
        if not path.is_file():
            raise NeuralensError(f"{path}: no such file")
        return self.storage.put_file(path, file_key(path))

    # --- submitting --------------------------------------------------------------------------------
    def submit_stylize(self, content: ImageLike, styles: Sequence[ImageLike], options, batch: str) -> str:
        """Queue one optimisation (StyleOptions ``options``, already validated) of ``content`` in the style
        of ``styles``. File options (masks, fine style, an init image) are uploaded too; ``weights`` names a
        file on the workers. Returns the job id."""
        values = options.to_dict()
        files: Dict[str, object] = {}
        for name in STYLE_FILE_FIELDS:
            value = getattr(options, name)
            if value is None or (name == "init" and isinstance(value, str) and value in ("content", "noise", "style")):
                continue
            if name == "style_masks":
                files[name] = [None if mask is None else self.upload(mask) for mask in value]
            else:
                files[name] = self.upload(value)
            values[name] = None if name != "init" else "content"  # the worker puts its local path there
        payload = {
            "content": self.upload(content),
            "styles": [self.upload(style) for style in styles],
            "options": values,
            "files": files,
        }
        return self._send(STYLIZE_TASK, "stylize", payload, batch)

    def _model(self, model: str) -> Tuple[str, Optional[str]]:
        """(name, storage key of the file or None) for a model: a built-in one goes by name, a file is
        uploaded. NeuralensError naming the built-in models for neither."""
        from ..fast.model import BUILTIN, resolve  # noqa: PLC0415

        path = resolve(model)
        if path.parent.resolve() == BUILTIN.resolve():
            return model, None
        return path.name, self.upload(path)

    def submit_fast(self, content: ImageLike, options, batch: str) -> str:
        """Queue one pass of ``content`` through a trained model (ApplyOptions ``options``). Returns the job
        id."""
        payload = {"content": self.upload(content), "options": dataclasses.asdict(options)}
        payload["options"]["model"], payload["model_file"] = self._model(options.model)
        return self._send(FAST_TASK, "fast", payload, batch)

    def submit_video(
        self,
        source: Union[str, os.PathLike],
        suffix: str,
        video,
        style,
        apply,
        styles: Sequence[ImageLike] = (),
        model: Optional[str] = None,
        fast: bool = False,
        batch: str = "",
    ) -> str:
        """Queue a whole video file ``source`` (one job: its frames depend on each other) to be written as
        ``suffix`` (.mp4, .gif, ...), with ``video.stylize``'s engine choice (``styles``, ``model``, ``fast``)
        and options (VideoOptions ``video``, StyleOptions ``style``, ApplyOptions ``apply``). Returns the job
        id."""
        if video.resume or video.keep_frames:
            raise NeuralensError(
                "--resume and --keep-frames are not available with --broker (the frames are on a worker)"
            )
        values = {k: v for k, v in dataclasses.asdict(video).items() if k != "progress"}
        payload = {
            "input": self.upload(source),
            "suffix": suffix,
            "styles": [self.upload(s) for s in styles],
            "model": None,
            "model_file": None,
            "fast": bool(fast),
            "video": values,
            "style": {k: v for k, v in style.to_dict().items() if k not in ("device",)},
            "apply": {k: v for k, v in dataclasses.asdict(apply).items() if k not in ("device", "model")},
        }
        if model is not None:
            payload["model"], payload["model_file"] = self._model(model)
        return self._send(VIDEO_TASK, "video", payload, batch)

    def submit_classify(
        self, folder: Union[str, os.PathLike], options, batch: str, command: Optional[str] = None
    ) -> str:
        """Queue ``classify.train`` on a labelled ``folder`` (ClassifyOptions ``options``): every image in it
        is uploaded with its path relative to the folder (class folders, train/ and val/). Returns the job id."""
        from ..imageio import IMAGE_SUFFIXES  # noqa: PLC0415

        folder = Path(folder)
        if not folder.is_dir():
            raise NeuralensError(f"{folder}: not a folder (one sub-folder of photos per class)")
        photos = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not photos:
            raise NeuralensError(f"{folder}: no images in it")
        files = [[photo.relative_to(folder).as_posix(), self.upload(photo)] for photo in photos]
        payload = {"files": files, "options": dataclasses.asdict(options), "command": command}
        payload["options"].pop("device", None)  # the worker's
        return self._send(CLASSIFY_TASK, "classify", payload, batch)

    def submit_faces(self, photos: Sequence[Union[str, os.PathLike]], pipeline, upsample: int, batch: str) -> str:
        """Queue the detection and encoding of every face of ``photos`` (one job for all of them) with the
        faces ``Pipeline`` ``pipeline`` and ``upsample``, as ``faces.cluster.find_faces`` does them. Returns
        the job id; the result is a JSON file of the faces (``tasks._run_faces``)."""
        payload = {
            "photos": [self.upload(photo) for photo in photos],
            "pipeline": dataclasses.asdict(pipeline),
            "upsample": int(upsample),
        }
        return self._send(FACES_TASK, "faces", payload, batch)

    def _send(self, task: str, kind: str, payload: dict, batch: str) -> str:
        job_id = state.new_id()
        payload.update(job=job_id, batch=batch)
        self.jobs.create(job_id, batch, kind)
        from kombu.exceptions import OperationalError  # noqa: PLC0415

        try:
            self.app.send_task(task, args=[payload])
        except OperationalError as exc:  # the broker went away after the first check
            raise NeuralensError(f"could not queue the job on {shown(self.options.broker)} ({exc})") from None
        return job_id

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop wherever it runs (a running one keeps its best image so far as its result)."""
        self.jobs.cancel(job_id)

    # --- following ---------------------------------------------------------------------------------
    def wait(
        self,
        batch: str,
        job_ids: Sequence[str],
        on_change: Optional[Callable[[List[state.RemoteJob]], None]] = None,
        timeout: Optional[float] = None,
        look_every: float = LOOK_SECONDS,
    ) -> Iterator[state.RemoteJob]:
        """Yield each job of ``job_ids`` (of ``batch``) once, as it finishes (done, failed or cancelled);
        ``on_change(jobs)`` gets the unfinished jobs' states when something happened, at most every
        ``look_every`` seconds. NeuralensError after ``timeout`` seconds (None: no limit)."""
        wanted = set(job_ids)
        seen = 0
        looked = -float("inf")
        deadline = None if timeout is None else time.monotonic() + timeout
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(state.channel(batch))
        try:
            while wanted:
                finished = self.jobs.finished_since(batch, seen)
                seen += len(finished)
                for job_id in finished:
                    if job_id in wanted:
                        wanted.discard(job_id)
                        yield self.jobs.get(job_id)
                if not wanted:
                    return
                if on_change is not None and time.monotonic() - looked >= look_every:
                    looked = time.monotonic()
                    on_change([job for job in self.jobs.get_many(sorted(wanted)) if job is not None])
                if deadline is not None and time.monotonic() > deadline:
                    raise NeuralensError(f"{len(wanted)} job(s) not finished after {timeout:g} s")
                pubsub.get_message(timeout=WAKE_SECONDS)
                while pubsub.get_message(timeout=0) is not None:  # one look covers every event so far
                    pass
        finally:
            pubsub.close()

    def result_image(self, job: state.RemoteJob) -> Image.Image:
        """The result image of a finished job (NeuralensError when it has none)."""
        if not job.result:
            raise NeuralensError(f"job {job.id} has no result ({job.status}{': ' + job.error if job.error else ''})")
        with Image.open(self.storage.fetch(job.result)) as image:
            return image.convert("RGB")

    def report(self, job: state.RemoteJob) -> dict:
        """The run's own report (``to_dict()`` of its result) as the worker stored it ({} when none)."""
        data = self.storage.read_bytes(marker_key(job.id))
        return json.loads(data)["report"] if data else {}


def collect(
    client: QueueClient,
    batch: str,
    jobs: Dict[str, Tuple[Path, Path]],
    estimate: int,
    what: str,
    unit: str,
    quiet: bool = False,
    timeout: Optional[float] = None,
    save: Optional[Callable[[state.RemoteJob, Path], None]] = None,
) -> List[Tuple[Path, Path, Finished]]:
    """Follow ``jobs`` ({job id: (input, output)}) with one progress bar (``estimate`` units per job until a
    worker knows better), save each result to its output as it arrives (``save(job, output)``; default: the
    image, saved as the command line saves images). Returns (input, output, Finished) in the order of
    ``jobs``. Ctrl-C cancels every unfinished job of the batch (Interrupted); failed jobs are reported
    together, after the others are saved (NeuralensError)."""
    done_units: Dict[str, int] = {}
    totals = {job_id: estimate for job_id in jobs}
    finished: Dict[str, Finished] = {}
    errors: List[str] = []
    started = time.monotonic()
    warned = [False]
    progress = Progress(estimate * len(jobs), what, unit, enabled=not quiet)

    def on_change(running: List[state.RemoteJob]) -> None:
        for job in running:
            if job.progress:
                totals[job.id] = int(job.progress.get("total_iterations") or totals[job.id])
                done_units[job.id] = int(job.progress.get("iteration") or 0)
        _show(progress, totals, done_units)
        if not warned[0] and not quiet and time.monotonic() - started > NO_WORKER_SECONDS:
            if all(job.status == state.QUEUED for job in running) and not finished:
                warned[0] = True
                print(
                    f"no worker has taken a job after {NO_WORKER_SECONDS:g} s: is `neuralens worker --broker "
                    f"{shown(client.options.broker)}` running (with the same --storage)?",
                    file=sys.stderr,
                )

    try:
        with progress:
            for job in client.wait(batch, list(jobs), on_change, timeout):
                source, output = jobs[job.id]
                done_units[job.id] = totals[job.id] = max(totals[job.id], done_units.get(job.id, 0), 1)
                if job.result:
                    if save is None:
                        save_result(client.result_image(job), output)
                    else:
                        save(job, output)
                    finished[job.id] = Finished(job, client.report(job))
                else:
                    errors.append(f"{source}: {job.error or job.status}")
                _show(progress, totals, done_units)
    except KeyboardInterrupt:
        left = [job_id for job_id in jobs if job_id not in finished]
        for job_id in left:
            client.cancel(job_id)
        raise Interrupted(f"interrupted; cancelled {len(left)} unfinished job(s) of the queue") from None
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise NeuralensError(f"{len(errors)} of {len(jobs)} job(s) failed: {errors[0]}{more}")
    return [(source, output, finished[job_id]) for job_id, (source, output) in jobs.items()]


def _show(progress: Progress, totals: Dict[str, int], done: Dict[str, int]) -> None:
    total = sum(totals.values())
    if total != progress.total:
        progress.set_total(total)
    count = sum(min(done.get(job_id, 0), totals[job_id]) for job_id in totals)
    if count > progress.count:
        progress.update(count - progress.count)


def stylize_batch(
    queue: QueueOptions,
    styles: Sequence[ImageLike],
    settings,
    pairs: Sequence[Tuple[Path, Path]],
    quiet: bool = False,
    timeout: Optional[float] = None,
) -> List[Tuple[Path, Path, Finished]]:
    """Each (content, output) of ``pairs`` stylized by optimisation (StyleOptions ``settings``) on the
    queue's workers, saved to its output. Returns (content, output, Finished) per pair."""
    from ..style import plan_scales  # noqa: PLC0415

    batch = state.new_id()
    with QueueClient(queue) as client:
        jobs = {client.submit_stylize(content, styles, settings, batch): (content, out) for content, out in pairs}
        estimate = sum(n for _, n in plan_scales(settings)) or 1
        return collect(client, batch, jobs, estimate, "stylize", "step", quiet, timeout)


def fast_stylize_batch(
    queue: QueueOptions,
    settings,
    pairs: Sequence[Tuple[Path, Path]],
    quiet: bool = False,
    timeout: Optional[float] = None,
) -> List[Tuple[Path, Path, Finished]]:
    """Each (photo, output) of ``pairs`` through a trained model (ApplyOptions ``settings``) on the queue's
    workers, saved to its output. Returns (photo, output, Finished) per pair."""
    batch = state.new_id()
    with QueueClient(queue) as client:
        jobs = {client.submit_fast(photo, settings, batch): (photo, out) for photo, out in pairs}
        return collect(client, batch, jobs, 1, "stylize", "image", quiet, timeout)


def video_batch(
    queue: QueueOptions,
    source: Union[str, os.PathLike],
    output: Union[str, os.PathLike],
    video,
    style,
    apply,
    styles: Sequence[ImageLike] = (),
    model: Optional[str] = None,
    fast: bool = False,
    quiet: bool = False,
    timeout: Optional[float] = None,
) -> Finished:
    """``video.stylize`` of one video file on a worker (the arguments as for ``QueueClient.submit_video``),
    the result copied to ``output`` (a video or GIF file) with a progress bar over its frames. Returns the
    Finished job (its report is the worker's VideoResult.to_dict())."""
    from ..video.io import check_output, output_kind  # noqa: PLC0415

    output = check_output(output)
    source = Path(source)
    if source.is_dir() or output_kind(output) == "frames":
        raise NeuralensError("folders of frames are not available with --broker: give a video file in and out")
    batch = state.new_id()
    with QueueClient(queue) as client:
        job_id = client.submit_video(source, output.suffix.lower(), video, style, apply, styles, model, fast, batch)

        def save(job: state.RemoteJob, path: Path) -> None:
            client.storage.copy_to(job.result, path)

        (result,) = collect(client, batch, {job_id: (source, output)}, 1, "video", "frame", quiet, timeout, save)
        return result[2]


def classify_train_batch(
    queue: QueueOptions,
    folder: Union[str, os.PathLike],
    output: Union[str, os.PathLike],
    options,
    command: Optional[str] = None,
    quiet: bool = False,
    timeout: Optional[float] = None,
) -> Finished:
    """``classify.train`` of a labelled ``folder`` on a worker (ClassifyOptions ``options``), the model copied
    to ``output`` (.pt) and its report files beside it, as in-process training writes them; one progress bar
    over the epochs. Returns the Finished job (its report is the worker's TrainReport.to_dict())."""
    from ..classify.training import check_model_output, report_files  # noqa: PLC0415

    output = check_model_output(output)
    batch = state.new_id()
    with QueueClient(queue) as client:
        job_id = client.submit_classify(folder, options, batch, command)

        def save(job: state.RemoteJob, path: Path) -> None:
            client.storage.copy_to(job.result, path)
            beside = report_files(path)
            for name, key in (client.report(job).get("files") or {}).items():
                if name in beside:
                    client.storage.copy_to(key, beside[name])

        estimate = options.epochs + options.fine_tune
        (result,) = collect(
            client, batch, {job_id: (Path(folder), output)}, estimate, "train", "epoch", quiet, timeout, save
        )
        return result[2]


def faces_per_job(photos: int) -> int:
    """How many photos a faces job takes, for a library of ``photos`` (see FACES_PHOTOS_PER_JOB)."""
    return max(1, min(FACES_PHOTOS_PER_JOB, -(-photos // FACES_SPREAD_JOBS)))


def find_faces_on_queue(
    queue: QueueOptions,
    photos: Sequence[Union[str, os.PathLike]],
    pipeline=None,
    upsample: int = 1,
    progress: bool = True,
    timeout: Optional[float] = None,
    per_job: Optional[int] = None,
) -> tuple:
    """``faces.cluster.find_faces`` on the queue's workers: the photos uploaded, encoded in jobs of
    ``per_job`` photos (default ``faces_per_job``) with the faces ``Pipeline`` ``pipeline`` and ``upsample``,
    followed with one progress bar over the photos. Returns what ``find_faces`` returns: (a list of
    ``FoundFace`` with the photos as given, in their order, the photos where no face was found); pass it as
    ``cluster(..., find=functools.partial(find_faces_on_queue, queue))``. An unreadable photo is a
    NeuralensError naming it, as in-process."""
    from ..faces.cluster import FoundFace  # noqa: PLC0415
    from ..faces.models import Pipeline  # noqa: PLC0415

    pipeline = pipeline or Pipeline()
    if upsample not in range(0, 4):  # as faces.api.detect says it, before anything is uploaded
        raise NeuralensError(f"upsample must be 0, 1, 2 or 3, got {upsample}")
    names = [str(photo) for photo in photos]
    size = per_job or faces_per_job(len(names))
    chunks = [list(range(start, min(start + size, len(names)))) for start in range(0, len(names), size)]
    results: Dict[str, dict] = {}
    batch = state.new_id()
    with QueueClient(queue) as client:
        jobs: Dict[str, Tuple[str, List[int]]] = {}
        for chunk in chunks:
            job_id = client.submit_faces([photos[i] for i in chunk], pipeline, upsample, batch)
            more = f" (and {len(chunk) - 1} more photo(s) of its job)" if len(chunk) > 1 else ""
            jobs[job_id] = (names[chunk[0]] + more, chunk)

        def save(job: state.RemoteJob, _chunk) -> None:
            results[job.id] = json.loads(client.storage.fetch(job.result).read_bytes())

        collect(client, batch, jobs, size, "finding faces", "photo", not progress, timeout, save)
    found: list = []
    empty: List[str] = []
    for job_id, (_label, chunk) in jobs.items():
        entries = results[job_id]["photos"]
        if len(entries) != len(chunk):
            raise NeuralensError(f"job {job_id} returned {len(entries)} photo(s) for {len(chunk)}")
        for index, entry in zip(chunk, entries):
            if "error" in entry:
                raise NeuralensError(f"{names[index]}: {entry['error']}")
            faces = [face_from_record(record) for record in entry["faces"]]
            if not faces:
                empty.append(names[index])
            found += [FoundFace(names[index], face) for face in faces]
    return found, empty
