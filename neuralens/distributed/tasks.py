"""The queue's tasks, as run inside a worker process: take the job's lease, run the library's own API on the
inputs from storage, publish progress through Redis, write the result atomically, report once.

The payload of a message (JSON, built by ``client.py``) is ``{"job", "batch", "content": key, ...}`` with
keys into the storage and the options as their ``to_dict()``; images never travel in it."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from ..errors import Interrupted, NeuralensError
from . import state
from .storage import Storage, open_storage

log = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.2  # how often a running job asks Redis whether it was cancelled
REDIS_RETRY_SECONDS = 5.0
STYLE_FILE_FIELDS = ("style_masks", "content_mask", "fine_style", "init")  # StyleOptions values that are files


def result_key(job_id: str, suffix: str = ".png") -> str:
    return f"results/{job_id}{suffix}"


def marker_key(job_id: str) -> str:
    """The job's completion marker: created once, exclusively, after the result is in place."""
    return f"results/{job_id}.json"


@dataclass
class WorkerContext:
    """What a worker process keeps between jobs: its connections, and the last style and model loaded (a
    batch with one style computes the style's targets once per process)."""

    storage: Storage
    jobs: state.JobStore
    device: str
    lease: float
    preview_every: int
    name: str
    cached: Dict[str, Tuple[str, Any]] = field(default_factory=dict)  # kind -> (cache key, object)

    def reuse(self, kind: str, key: str, build: Callable[[], Any]) -> Any:
        """The object cached for ``kind`` when it was built for ``key``, else a new one from ``build``."""
        held = self.cached.get(kind)
        if held is None or held[0] != key:
            self.cached.pop(kind, None)  # free the old one before building the next
            self.cached[kind] = (key, build())
        return self.cached[kind][1]


@dataclass
class Outcome:
    """What a runner made: the result's storage key (already written, atomically), its size, whether the run
    was stopped early, and the run's own report (its ``to_dict()``)."""

    result: str
    size: List[int]
    stopped: bool
    report: Dict[str, Any]


_CONTEXT: Dict[int, WorkerContext] = {}


def worker_context(app) -> WorkerContext:
    """This process's context (made on its first job: connections must not be shared across fork)."""
    pid = os.getpid()
    if pid not in _CONTEXT:
        conf = app.conf.neuralens
        _CONTEXT.clear()
        _CONTEXT[pid] = WorkerContext(
            storage=open_storage(conf.get("storage")),
            jobs=state.JobStore(state.connect(app.conf.broker_url)),
            device=conf.get("device", "auto"),
            lease=float(conf.get("lease", 30.0)),
            preview_every=int(conf.get("preview_every", 5)),
            name=f"{conf.get('name') or socket.gethostname()}:{pid}",
        )
    return _CONTEXT[pid]


class Heartbeat:
    """Renews a job's lease every third of its length in a thread, until stopped (or the lease is lost)."""

    def __init__(self, jobs: state.JobStore, job_id: str, token: str, seconds: float):
        self.jobs, self.job_id, self.token, self.seconds = jobs, job_id, token, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(self.seconds)
        try:
            self.jobs.release(self.job_id, self.token)
        except Exception:  # noqa: BLE001 -- the lease expires by itself
            log.warning("could not release the lease of job %s", self.job_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.jobs.renew(self.job_id, self.token, self.seconds):
                    log.warning("job %s: lease lost", self.job_id)
                    return
            except Exception:  # noqa: BLE001 -- Redis gone for a moment: try again at the next beat
                log.warning("job %s: could not renew the lease", self.job_id)


def png_bytes(image) -> bytes:
    """A PIL image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _stop_checker(jobs: state.JobStore, job_id: str) -> Callable[[], bool]:
    """``should_stop`` for the style API: asks Redis at most every CANCEL_CHECK_SECONDS."""
    last = [0.0, False]

    def should_stop() -> bool:
        now = time.monotonic()
        if not last[1] and now - last[0] >= CANCEL_CHECK_SECONDS:
            last[0] = now
            last[1] = jobs.cancel_requested(job_id)
        return last[1]

    return should_stop


def _style_options(ctx: WorkerContext, payload: dict):
    """StyleOptions from the payload, with file options resolved to local paths and the worker's device."""
    from ..style import StyleOptions  # noqa: PLC0415

    values = dict(payload["options"])
    for name, ref in (payload.get("files") or {}).items():
        if name not in STYLE_FILE_FIELDS:
            raise NeuralensError(f"unknown file option {name!r} in a job")
        if isinstance(ref, list):
            values[name] = [None if key is None else str(ctx.storage.fetch(key)) for key in ref]
        else:
            values[name] = str(ctx.storage.fetch(ref))
    values.update(device=ctx.device, progress=False)
    return StyleOptions(**values).validate()


def _run_stylize(ctx: WorkerContext, payload: dict, job_id: str, batch: str) -> Outcome:
    """Optimisation (StyleTransfer.run) with progress and previews published; the image saved as PNG."""
    from ..style import StyleTransfer  # noqa: PLC0415

    settings = _style_options(ctx, payload)
    styles = [str(ctx.storage.fetch(key)) for key in payload["styles"]]
    content = ctx.storage.fetch(payload["content"])
    cache_key = json.dumps([payload["styles"], payload["options"], payload.get("files")], sort_keys=True)
    transfer = ctx.reuse("style", cache_key, lambda: StyleTransfer(styles, settings))

    def callback(step) -> None:
        progress = step.to_dict()
        progress["total_iterations"] = max(step.total_iterations, step.iteration)
        every = ctx.preview_every
        preview = png_bytes(step.image()) if step.iteration == 1 or step.iteration % every == 0 else None
        ctx.jobs.progress(job_id, batch, progress, preview)

    result = transfer.run(content, callback=callback, should_stop=_stop_checker(ctx.jobs, job_id))
    key = ctx.storage.put_bytes(png_bytes(result.image), result_key(job_id))
    return Outcome(key, list(result.image.size), result.stopped, result.to_dict())


def _run_fast(ctx: WorkerContext, payload: dict, job_id: str, batch: str) -> Outcome:
    """One pass through a trained model (ApplyOptions); the image saved as PNG."""
    import dataclasses  # noqa: PLC0415

    from ..fast.apply import ApplyOptions  # noqa: PLC0415

    values = dict(payload["options"])
    if payload.get("model_file"):
        values["model"] = str(ctx.storage.fetch(payload["model_file"]))
    values["device"] = ctx.device
    settings = ApplyOptions(**values).validate()
    key = json.dumps([values["model"], settings.device, settings.precision, settings.engine])
    model = ctx.reuse("model", key, settings.load)
    started = time.perf_counter()
    image = model.stylize(
        ctx.storage.fetch(payload["content"]), settings.strength, settings.preserve_color, settings.size
    )
    seconds = time.perf_counter() - started
    ctx.jobs.progress(job_id, batch, {"iteration": 1, "total_iterations": 1, "elapsed": round(seconds, 4)})
    report = {"size": list(image.size), "stopped": False, "timings": {"total": seconds}}
    report["options"] = {k: v for k, v in dataclasses.asdict(settings).items() if k != "model"}
    key = ctx.storage.put_bytes(png_bytes(image), result_key(job_id))
    return Outcome(key, list(image.size), False, report)


def _run_video(ctx: WorkerContext, payload: dict, job_id: str, batch: str) -> Outcome:
    """A whole video through ``video.stylize`` (its frames depend on each other: one job, one worker), with a
    progress message per frame and a preview every few frames; the output file copied into the storage."""
    import tempfile  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    from ..fast.apply import ApplyOptions  # noqa: PLC0415
    from ..style import StyleOptions  # noqa: PLC0415
    from ..video import api as video_api  # noqa: PLC0415
    from ..video.io import OUTPUT_SUFFIXES  # noqa: PLC0415
    from ..video.options import VideoOptions  # noqa: PLC0415

    suffix = payload["suffix"]
    if suffix not in OUTPUT_SUFFIXES:  # a file: the job's output is one key, not a folder of frames
        raise NeuralensError(f"unknown video output {suffix!r} in a job")
    model = payload.get("model")
    if payload.get("model_file"):
        model = str(ctx.storage.fetch(payload["model_file"]))
    video = VideoOptions(**payload["video"], progress=False)
    style = StyleOptions(**payload["style"], device=ctx.device, progress=False)
    apply = ApplyOptions(**payload["apply"], device=ctx.device)
    started = time.perf_counter()

    def callback(index: int, total: int, rgb) -> None:
        progress = {"iteration": index + 1, "total_iterations": total, "elapsed": time.perf_counter() - started}
        every = ctx.preview_every
        preview = png_bytes(Image.fromarray(rgb)) if index == 0 or (index + 1) % every == 0 else None
        ctx.jobs.progress(job_id, batch, progress, preview)

    with tempfile.TemporaryDirectory(prefix="neuralens-video-job-") as folder:
        output = Path(folder) / f"result{suffix}"
        result = video_api.stylize(
            ctx.storage.fetch(payload["input"]),
            output,
            styles=[str(ctx.storage.fetch(key)) for key in payload.get("styles") or []] or None,
            model=model,
            fast=bool(payload.get("fast")),
            options=video,
            style_options=style,
            apply=apply,
            callback=callback,
            should_stop=_stop_checker(ctx.jobs, job_id),
        )
        key = ctx.storage.put_file(output, result_key(job_id, suffix), replace=True)
    return Outcome(key, list(result.size), result.stopped, result.to_dict())


def inside(root: Path, name: str) -> Path:
    """``root / name`` for a relative path sent in a job (a class folder and a photo name), refused with
    NeuralensError when it would leave ``root`` (absolute, '..', backslashes, NUL)."""
    parts = name.split("/")
    if "\\" in name or "\0" in name or any(part in ("", ".", "..") for part in parts):
        raise NeuralensError(f"bad file name {name!r} in a job")
    return root.joinpath(*parts)


def _run_classify(ctx: WorkerContext, payload: dict, job_id: str, batch: str) -> Outcome:
    """``classify.train`` on the labelled photos of the job (laid out again in a temporary folder), with a
    progress message per epoch; the model and its report files copied into the storage."""
    import tempfile  # noqa: PLC0415

    from ..classify.options import ClassifyOptions  # noqa: PLC0415
    from ..classify.training import report_files, train  # noqa: PLC0415

    options = ClassifyOptions(**payload["options"], device=ctx.device).validate()
    total = options.epochs + options.fine_tune
    started = time.perf_counter()

    def publish(iteration: int, **extra: Any) -> None:
        progress = {"iteration": iteration, "total_iterations": total, "elapsed": time.perf_counter() - started}
        ctx.jobs.progress(job_id, batch, {**progress, **extra})

    def on_epoch(stage: str, epoch: int, row: dict) -> None:
        publish((options.epochs if stage == "fine-tune" else 0) + epoch, stage=stage, row=row)

    def on_features(done: int, photos: int) -> None:
        publish(0, stage="features", features=[done, photos])

    lines: List[str] = []  # the dataset summary and warnings, for the report (paths relative to the photos)

    with tempfile.TemporaryDirectory(prefix="neuralens-classify-job-") as folder:
        data, output = Path(folder) / "data", Path(folder) / "out" / "model.pt"

        def log(line: str) -> None:
            lines.append(line.replace(f"{data}{os.sep}", "").replace(str(data), "the photos"))

        for name, key in payload["files"]:
            target = inside(data, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ctx.storage.fetch(key), target)
        output.parent.mkdir()
        classifier = train(
            data,
            output,
            options,
            log=log,
            on_features=on_features,
            on_epoch=on_epoch,
            command=payload.get("command"),
            should_stop=_stop_checker(ctx.jobs, job_id),
        )
        files = {"model": ctx.storage.put_file(output, f"results/{job_id}/model.pt", replace=True)}
        for name, path in report_files(output).items():
            if path.is_file():
                files[name] = ctx.storage.put_file(path, f"results/{job_id}/{name}{path.suffix}", replace=True)
    report = classifier.report.to_dict()
    report["classes"] = list(classifier.classes)
    report["files"] = files  # keys in the storage (the worker's temporary paths are gone)
    report["log"] = lines
    return Outcome(files["model"], [], False, report)


FACES_SUFFIX = ".faces.json"  # results/<id>.faces.json: not results/<id>.json, the job's completion marker


def face_record(face) -> Dict[str, Any]:
    """A ``faces.api.Face`` as JSON values, with everything ``face_from_record`` needs to rebuild it: box,
    score, landmarks, embedding (floats: JSON keeps every digit of a float32 and a float64, so they come back
    bit for bit), sharpness, yaw and its number in the photo."""
    return {
        "box": [int(v) for v in face.box],
        "score": float(face.score),
        "landmarks": [[float(x), float(y)] for x, y in face.landmarks],
        "embedding": None if face.embedding is None else [float(v) for v in face.embedding],
        "sharpness": float(face.sharpness),
        "yaw": float(face.yaw),
        "index": int(face.index),
    }


def face_from_record(data: Dict[str, Any]):
    """The ``faces.api.Face`` that ``face_record`` wrote (embedding float32, landmarks float64, as
    ``faces.api.encode`` makes them)."""
    import numpy as np  # noqa: PLC0415

    from ..faces.api import Face  # noqa: PLC0415

    embedding = data.get("embedding")
    return Face(
        box=tuple(int(v) for v in data["box"]),
        score=float(data["score"]),
        landmarks=np.asarray(data["landmarks"], dtype=np.float64).reshape(-1, 2),
        embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32),
        sharpness=float(data["sharpness"]),
        yaw=float(data["yaw"]),
        index=int(data["index"]),
    )


def _run_faces(ctx: WorkerContext, payload: dict, job_id: str, batch: str) -> Outcome:
    """Detect and encode every face of the job's photos with ``faces.api.encode`` (the pipeline and upsample
    of an in-process ``faces.cluster.find_faces``), a progress message per photo; the faces of all of them
    written as one JSON file, ``{"photos": [{"key", "faces": [face_record, ...]} or {"key", "error"}]}`` in
    the job's order. A photo that cannot be read is reported in its entry (the client names it by the user's
    path) rather than failing the job's other photos."""
    from ..faces import api as faces_api  # noqa: PLC0415
    from ..faces.models import Pipeline  # noqa: PLC0415

    pipeline = Pipeline(**payload["pipeline"])
    upsample = int(payload["upsample"])
    keys = list(payload["photos"])
    should_stop = _stop_checker(ctx.jobs, job_id)
    started = time.perf_counter()
    photos: List[Dict[str, Any]] = []
    count = 0
    for done, key in enumerate(keys):
        if should_stop():
            raise Interrupted(f"cancelled after {done} of {len(keys)} photo(s)")
        path = ctx.storage.fetch(key)
        try:
            faces = faces_api.encode(path, pipeline=pipeline, upsample=upsample)
        except NeuralensError as exc:
            if not str(exc).startswith(f"{path}: "):  # not about this file (a bad setting): the whole job
                raise
            photos.append({"key": key, "error": str(exc)[len(f"{path}: ") :]})
        else:
            photos.append({"key": key, "faces": [face_record(face) for face in faces]})
            count += len(faces)
        progress = {"iteration": done + 1, "total_iterations": len(keys), "faces": count}
        ctx.jobs.progress(job_id, batch, {**progress, "elapsed": time.perf_counter() - started})
    seconds = time.perf_counter() - started
    data = {"photos": photos, "pipeline": dict(payload["pipeline"]), "upsample": upsample}
    key = ctx.storage.put_bytes(json.dumps(data).encode(), result_key(job_id, FACES_SUFFIX))
    report = {"photos": len(keys), "faces": count, "stopped": False, "timings": {"total": seconds}}
    return Outcome(key, [], False, report)


RUNNERS = {
    "stylize": _run_stylize,
    "fast": _run_fast,
    "video": _run_video,
    "classify": _run_classify,
    "faces": _run_faces,
}


def run_job(task, kind: str, payload: dict) -> str:
    """Run one job of ``kind`` ('stylize', 'fast', 'video', 'classify' or 'faces') in this worker, or report what another run already
    finished. Returns the status reported (for logs). Raises the task's Retry while another worker holds the
    job's lease or Redis cannot be reached."""
    from celery.exceptions import Retry  # noqa: PLC0415

    ctx = worker_context(task.app)
    job_id, batch = payload["job"], payload["batch"]
    try:
        marker = ctx.storage.read_bytes(marker_key(job_id))
        if marker is not None:  # finished before (its worker died before the broker heard): report, once
            ctx.jobs.report(job_id, batch, **json.loads(marker)["state"])
            return "already done"
        token = f"{ctx.name}:{state.new_id()}"
        if not ctx.jobs.claim(job_id, token, ctx.lease):
            raise task.retry(countdown=ctx.lease, max_retries=None)
        with Heartbeat(ctx.jobs, job_id, token, ctx.lease):
            return _run_claimed(ctx, kind, payload, job_id, batch)
    except _redis_errors() as exc:
        log.warning("job %s: Redis unavailable (%s); retrying", job_id, exc)
        raise task.retry(countdown=REDIS_RETRY_SECONDS, max_retries=None) from None
    except Retry:
        raise
    except Exception as exc:  # noqa: BLE001 -- e.g. the shared storage failing around the run
        # Acknowledged without a report, the job would stay "queued" and its client would wait for ever.
        log.exception("job %s failed outside its run", job_id)
        ctx.jobs.report(job_id, batch, state.FAILED, error=_internal_error(exc))
        return state.FAILED


def _run_claimed(ctx: WorkerContext, kind: str, payload: dict, job_id: str, batch: str) -> str:
    import torch  # noqa: PLC0415

    if ctx.storage.exists(marker_key(job_id)):  # finished while we waited for the lease
        ctx.jobs.report(job_id, batch, **json.loads(ctx.storage.read_bytes(marker_key(job_id)))["state"])
        return "already done"
    if ctx.jobs.cancel_requested(job_id):  # cancelled while it waited: nothing to run
        ctx.jobs.report(job_id, batch, state.CANCELLED)
        return state.CANCELLED
    ctx.jobs.start(job_id, batch, ctx.name)
    try:
        outcome = RUNNERS[kind](ctx, payload, job_id, batch)
    except Interrupted as exc:  # a cancel that leaves nothing to keep (classify train saves nothing then)
        ctx.jobs.report(job_id, batch, state.CANCELLED, error=str(exc))
        return state.CANCELLED
    except NeuralensError as exc:
        ctx.jobs.report(job_id, batch, state.FAILED, error=str(exc))
        return state.FAILED
    except (MemoryError, torch.cuda.OutOfMemoryError):
        ctx.jobs.report(job_id, batch, state.FAILED, error="out of memory; try a smaller size")
        return state.FAILED
    except _redis_errors():
        raise
    except Exception as exc:  # noqa: BLE001 -- one bad job must not take the worker down
        log.exception("job %s failed", job_id)
        ctx.jobs.report(job_id, batch, state.FAILED, error=_internal_error(exc))
        return state.FAILED
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    status = state.CANCELLED if outcome.stopped else state.DONE
    # The result first (the runner wrote it), then the marker that says it is complete, then the report: a
    # run killed between any two of these steps leaves a state that the next run finishes without doing the
    # work twice.
    fields = {"status": status, "result": outcome.result, "result_size": outcome.size, "stopped_early": outcome.stopped}
    marker = json.dumps({"state": fields, "report": outcome.report}, default=str).encode()
    if not ctx.storage.create(marker_key(job_id), marker):  # another run got there first (a lost lease)
        fields = json.loads(ctx.storage.read_bytes(marker_key(job_id)))["state"]
    ctx.jobs.report(job_id, batch, **fields)
    return fields["status"]


def _internal_error(exc: BaseException) -> str:
    """What a job's report says of an error that is not the user's (a bug, the shared storage failing)."""
    return f"internal error: {type(exc).__name__}: {exc}"


def _redis_errors() -> tuple:
    import redis  # noqa: PLC0415

    return (redis.ConnectionError, redis.TimeoutError)


def register(app) -> None:
    """Register the tasks on a Celery app (``app.make_app`` does)."""
    from .app import CLASSIFY_TASK, FACES_TASK, FAST_TASK, STYLIZE_TASK, VIDEO_TASK  # noqa: PLC0415

    @app.task(name=STYLIZE_TASK, bind=True)
    def stylize(self, payload: dict) -> str:
        return run_job(self, "stylize", payload)

    @app.task(name=FAST_TASK, bind=True)
    def fast_stylize(self, payload: dict) -> str:
        return run_job(self, "fast", payload)

    @app.task(name=VIDEO_TASK, bind=True)
    def video(self, payload: dict) -> str:
        return run_job(self, "video", payload)

    @app.task(name=CLASSIFY_TASK, bind=True)
    def classify_train(self, payload: dict) -> str:
        return run_job(self, "classify", payload)

    @app.task(name=FACES_TASK, bind=True)
    def faces(self, payload: dict) -> str:
        return run_job(self, "faces", payload)
