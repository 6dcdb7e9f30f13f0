"""The video part of the API: upload a short video, paint it with a built-in model, any painting (the
arbitrary-style engine) or optimisation, follow its progress, see its latest frame, download the result.

Thin over ``neuralens.video``: an upload is checked with ``video.probe`` (is it a video at all?) and
``video.plan`` (what the run will read and write) against the server's limits before it is queued, and the job
runs ``video.stylize``, whose callback gives the progress and the preview and whose ``should_stop`` is the
job's cancel button. The queue and its workers are the style jobs' (``jobs.JobManager``: bounded queue, cancel,
delete, job folders removed with the server), in a manager of its own (``VideoJobs``), so ``/api/jobs`` keeps
listing pictures only.

The form is generated from the specs of ``VideoOptions`` (its fields whose ``web`` is True) and of the engines'
strength and colour options, so the form, its OpenAPI schema, ``GET /api/videos/info`` (from which the page
builds its settings) and `neuralens video` take the same values with the same defaults and limits.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import torch
from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, Response
from PIL import Image
from pydantic import BaseModel, Field

from ..errors import Interrupted, NeuralensError
from ..fast import model as fast_model
from ..fast.apply import ApplyOptions
from ..imageio import load_image
from ..options import Spec, defaults, specs
from ..progress import Progress
from ..style.options import StyleOptions
from ..video import VideoOptions, probe
from ..video import plan as video_plan
from ..video import stylize as video_stylize
from ..video.api import WORK_SUFFIX
from .jobs import CANCELLED, DONE, FINISHED, Job, JobManager, status_fields
from .live import encode
from .models_api import builtin_file
from .security import error_responses
from .shapes import Deleted, JobStatusOut, OptionField
from .style_api import JOB_ID, samples, shrink
from .uploads import UploadError, read_image, read_limited

log = logging.getLogger(__name__)

ENGINES = {
    "model": "a built-in model: one pass a frame (fastest)",
    "fast": "any painting, through the arbitrary-style network: one pass a frame",
    "optimisation": "any painting, optimised frame by frame (Ruder et al. 2016): about a minute a frame on a CPU",
}
# Output containers the page offers (neuralens.video.io writes each; H.264 plays in every browser).
FORMATS = {"mp4": ("video/mp4", ".mp4"), "webm": ("video/webm", ".webm"), "gif": ("image/gif", ".gif")}
# The options of a model or painting that a video takes, besides VideoOptions: declared where they belong.
ENGINE_SPECS: Dict[str, Tuple[Spec, Any]] = {
    "strength": (specs(ApplyOptions)["strength"], defaults(ApplyOptions)["strength"]),
    "preserve_color": (specs(StyleOptions)["preserve_color"], defaults(StyleOptions)["preserve_color"]),
}
VIDEO_SPECS: Dict[str, Tuple[Spec, Any]] = {
    name: (spec, defaults(VideoOptions)[name]) for name, spec in specs(VideoOptions).items() if spec.web is True
}
NONE_WORD = "none"  # what a form sends for None in a choice (preserve_color=none), as on the command line
PREVIEW_SECONDS = 0.5  # a new preview (a JPEG of the latest frame) at most this often: the page polls twice a second
INPUT_NAME = "input"  # the upload in its job's folder: never a name the client chose


@dataclass
class VideoLimits:
    """What this server accepts in a video job, on top of the options' own limits (``app.state.video_limits``;
    replace it to change them). Uploads are limited by ``--max-upload-mb`` and the frames' long side by
    ``--max-size``, as for pictures."""

    max_seconds: float = 60.0  # of the input taken (start to end)
    max_frames: int = 1500  # painted by a model or the arbitrary-style network (about 2 minutes at 320x240)
    max_optimisation_frames: int = 50  # optimisation takes about a minute a frame on a CPU

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---- the form: generated from the specs -------------------------------------------------------------------------
def _choices(spec: Spec) -> Optional[List[Any]]:
    return None if spec.choices is None else [NONE_WORD if c is None else c for c in spec.choices]


def _annotation(spec: Spec):
    choices = _choices(spec)
    if choices is not None:
        return Literal[tuple(choices)]
    kind = {"int": int, "float": float, "bool": bool}.get(spec.kind, str)
    return Optional[kind] if spec.nullable else kind


def _form_field(spec: Spec, default: Any):
    limits = {
        key: value
        for key, value in (("ge", spec.minimum), ("le", spec.maximum), ("gt", spec.above))
        if value is not None and spec.kind in ("int", "float")
    }
    if spec.kind == "float":
        limits["allow_inf_nan"] = False
    # Empty means the default on a form: "none" can be said only where the default is None.
    text = spec.help + (f" (empty: {spec.none_help or 'none'})" if default is None and spec.choices is None else "")
    return Form(NONE_WORD if default is None and spec.choices is not None else default, description=text, **limits)


def form_specs() -> Dict[str, Tuple[Spec, Any]]:
    """Every option of the video form: {name: (Spec, default)}, VideoOptions' first."""
    return {**VIDEO_SPECS, **ENGINE_SPECS}


def options_form():
    """A FastAPI dependency whose parameters are the form's options (generated from their specs); it returns
    {name: value as sent}."""

    def read(**values: Any) -> Dict[str, Any]:
        return values

    read.__signature__ = inspect.Signature(
        [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=_form_field(spec, default), annotation=_annotation(spec)
            )
            for name, (spec, default) in form_specs().items()
        ]
    )
    return read


def option_fields() -> List[dict]:
    """The form's options for the page (as ``GET /api/info`` lists the style options): name, kind, default,
    nullable, choices, limits, help."""
    out = []
    for name, (spec, default) in form_specs().items():
        out.append(
            {
                "name": name,
                "kind": spec.kind,
                "default": NONE_WORD if default is None and spec.choices is not None else default,
                "nullable": spec.nullable,
                "choices": _choices(spec),
                "minimum": spec.minimum,
                "maximum": spec.maximum,
                "above": spec.above,
                "help": spec.help,
                "none_help": spec.none_help or None,
            }
        )
    return out


def split_values(values: Dict[str, Any]) -> Tuple[VideoOptions, float, Optional[str]]:
    """(VideoOptions, strength, preserve_color) from the form's values, checked (OptionError naming the field)."""
    video = {name: values[name] for name in VIDEO_SPECS}
    preserve = values["preserve_color"]
    return (
        VideoOptions(**video, progress=False).validate(),
        float(values["strength"]),
        (None if preserve == NONE_WORD else preserve),
    )


# ---- jobs -------------------------------------------------------------------------------------------------------
@dataclass
class VideoJob(Job):
    """A video job: ``options`` are its VideoOptions, ``styles`` its paintings (none for a model)."""

    engine: Dict[str, Any] = field(default_factory=dict)  # {'engine', 'model' or 'styles', 'strength', ...}
    plan: Dict[str, Any] = field(default_factory=dict)  # VideoPlan.to_dict(), without server paths
    format: str = "mp4"
    label: str = "video"  # the upload as messages name it (the client's file name, trimmed)
    model_file: Optional[Path] = None  # the built-in model's file (never shown)
    preview_frame: int = 0
    result: Optional[Dict[str, Any]] = None  # what the run did (VideoResult.to_dict(), without server paths)

    @property
    def input_path(self) -> Path:
        return self.folder / INPUT_NAME

    @property
    def result_path(self) -> Path:
        return self.folder / f"result{FORMATS[self.format][1]}"

    def to_dict(self) -> dict:
        """The JSON the API returns for this job (images and the video have their own URLs)."""
        base = f"/api/videos/{self.id}"
        return {
            **status_fields(self),
            "error": self.error,
            "stopped_early": self.stopped_early,
            "progress": dict(self.progress),
            "options": self.options.to_dict(),
            "engine": dict(self.engine),
            "inputs": dict(self.labels),
            "video": dict(self.plan),
            "format": self.format,
            "result": dict(self.result) if self.result is not None else None,
            "preview_frame": self.preview_frame,
            "urls": {
                "self": base,
                "cancel": f"{base}/cancel",
                "preview": f"{base}/preview" if self.preview is not None else None,
                "result": f"{base}/result" if self.result_size is not None else None,
            },
        }


def _public(result: dict) -> dict:
    """A VideoResult's dict without the server's paths."""
    return {k: v for k, v in result.items() if k not in ("output", "work_folder", "input")}


class VideoJobs(JobManager):
    """The job machinery of ``JobManager`` (bounded queue, worker threads, cancel, delete, folders) running
    ``neuralens.video.stylize`` instead of a style transfer. ``device`` is where the engines run; ``stylize``
    is what runs a job (``video.stylize``, or ``distributed.web.QueueVideoRunner`` on the job queue)."""

    def __init__(self, device: str = "auto", stylize: Optional[Any] = None, **settings: Any):
        super().__init__(**settings)
        self.device = device
        self.stylize = stylize or video_stylize

    def staging(self) -> Path:
        """A fresh server-named path for an upload being checked (moved into its job's folder when queued)."""
        folder = self.root / "uploads"
        folder.mkdir(exist_ok=True)
        return folder / uuid.uuid4().hex

    def submit_video(self, upload: Path, options: VideoOptions, styles: List[Image.Image], **fields: Any) -> VideoJob:
        """Queue a video job for the checked upload at ``upload`` (moved into the job's folder); ``fields`` are
        VideoJob's (engine, plan, format, label, labels, model_file). Raises QueueFull when the queue is full."""
        self.start()
        with self._changed:
            if self._closing:
                raise NeuralensError("the server is shutting down")
            self.ensure_room()
            job_id = uuid.uuid4().hex
            folder = self.root / job_id
            folder.mkdir()
            os.replace(upload, folder / INPUT_NAME)
            job = VideoJob(job_id, options, None, styles, folder, **fields)
            self._jobs[job_id] = job
            self._waiting.append(job)
            self._touch(job)
        return job

    def _run(self, job: VideoJob) -> None:
        meter = Progress(job.plan.get("frames"), "video", unit="frame", enabled=False)  # for the time left
        shown = -math.inf

        def callback(index: int, total: int, rgb) -> None:
            nonlocal shown
            meter.set_total(total)
            meter.update(index + 1 - meter.count)  # 1 in-process; a queued job's messages may skip frames
            now = time.perf_counter()
            preview = None
            if index == 0 or index + 1 >= total or now - shown >= PREVIEW_SECONDS:
                preview, shown = encode(Image.fromarray(rgb), "jpeg"), now
            left = meter.time_left()
            progress = {
                "frame": index + 1,
                "total_frames": total,
                "elapsed": round(meter.elapsed(), 3),
                "frames_per_second": round((index + 1) / max(meter.elapsed(), 1e-9), 2),
                "eta": None if left is None else round(left, 1),
            }
            with self._changed:
                job.progress = progress
                if preview is not None:
                    job.preview, job.preview_frame = preview, index + 1
                self._touch(job)

        def step_done(index: int, step) -> None:  # optimisation: a frame takes many loss evaluations
            with self._changed:
                job.progress = {**job.progress, "evaluation": step.iteration, "evaluations": step.total_iterations}
                self._touch(job)

        kind = job.engine["engine"]
        try:
            result = self.stylize(
                job.input_path,
                job.result_path,
                styles=job.styles or None,
                model=str(job.model_file) if kind == "model" else None,
                fast=kind == "fast",
                options=job.options,
                style_options=StyleOptions(device=self.device, preserve_color=job.engine.get("preserve_color")),
                apply=ApplyOptions(strength=job.engine.get("strength", 1.0)),
                callback=callback,
                should_stop=job.cancel_requested.is_set,
                on_step=step_done,
            )
            with self._changed:
                job.result = _public(result.to_dict())
                job.stopped_early = result.stopped
                job.result_size = list(result.size) if result.frames else None
                job.status = CANCELLED if result.stopped else DONE
        except Interrupted:  # on the job queue: cancelled before a worker took it, so no frame to keep
            with self._changed:
                job.status = CANCELLED
        except NeuralensError as exc:
            self._fail(job, str(exc).replace(str(job.input_path), job.label).replace(str(job.folder), "the job"))
        except (MemoryError, torch.cuda.OutOfMemoryError):
            self._fail(job, "out of memory; try a smaller size")
        except Exception as exc:  # noqa: BLE001 -- one bad job must not kill the worker thread
            log.exception("video job %s failed", job.id)
            self._fail(job, f"internal error: {type(exc).__name__}")
        finally:
            job.input_path.unlink(missing_ok=True)  # the upload and the painted frames are not needed any more
            shutil.rmtree(job.folder / f"{job.result_path.name}{WORK_SUFFIX}", ignore_errors=True)
            with self._changed:
                job.finished = time.time()
                job.styles = []
                forgotten = job.id not in self._jobs
                self._touch(job)
            if forgotten:
                shutil.rmtree(job.folder, ignore_errors=True)


def manager(config, root: Path, stylize: Optional[Any] = None) -> VideoJobs:
    """The video jobs of a server with ``config`` (a WebConfig: workers, queue length, device), their folders in
    ``videos/`` under ``root`` (the style jobs' results folder: a server has one folder, removed with it);
    ``stylize`` runs them (None: ``video.stylize`` in this process)."""
    return VideoJobs(
        device=config.device,
        stylize=stylize,
        workers=config.workers,
        max_queue=config.max_queue,
        root=root / "videos",
    )


# ---- the API's shapes -------------------------------------------------------------------------------------------
class VideoUrls(BaseModel):
    self_: str = Field(..., alias="self")
    cancel: str
    preview: Optional[str] = Field(..., description="the latest painted frame, JPEG (null before the first)")
    result: Optional[str] = Field(..., description="the video (null until there is one)")


class VideoJobOut(JobStatusOut):
    """A video job as the API reports it."""

    error: Optional[str]
    stopped_early: bool = Field(..., description="cancelled while running: the video holds the frames painted")
    progress: Dict[str, Any] = Field(
        ...,
        description="frame (done), total_frames, frames_per_second, elapsed and eta (seconds left); with "
        "optimisation also evaluation and evaluations (of the frame being painted); empty before the first frame",
    )
    options: Dict[str, Any] = Field(..., description="the job's VideoOptions")
    engine: Dict[str, Any] = Field(..., description="the engine and its settings")
    inputs: Dict[str, Any] = Field(..., description="names of the inputs (a sample's name or 'upload')")
    video: Dict[str, Any] = Field(..., description="what the run reads and writes: input, size, fps, frames...")
    format: Literal["mp4", "webm", "gif"]
    result: Optional[Dict[str, Any]] = Field(..., description="what the run did: frames, seconds, audio...")
    preview_frame: int = Field(..., description="the frame the preview shows (1-based; 0: none yet)")
    urls: VideoUrls
    queue_position: Optional[int] = Field(..., description="1-based place in the queue (null when not waiting)")


class VideoJobList(BaseModel):
    jobs: List[VideoJobOut]


class EngineOut(BaseModel):
    name: Literal["model", "fast", "optimisation"]
    help: str
    available: bool = Field(..., description="false when this server lacks it (the arbitrary-style engine)")


class VideoInfoOut(BaseModel):
    """What video jobs can use on this server."""

    engines: List[EngineOut]
    models: List[str] = Field(..., description="the built-in models (GET /api/models describes them)")
    formats: List[str]
    options: List[OptionField]
    limits: Dict[str, float] = Field(
        ..., description="max_upload_bytes, max_size (long side), max_seconds, max_frames, max_optimisation_frames"
    )


MEDIA = {"content": {media: {"schema": {"type": "string", "format": "binary"}} for media, _ in FORMATS.values()}}
JPEG = {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}


# ---- the routes -------------------------------------------------------------------------------------------------
def register(api: APIRouter, jobs: VideoJobs, config) -> None:
    """Add the /videos routes to ``api``; ``app.state.video_limits`` (a VideoLimits) holds the limits."""
    names = ", ".join(samples())

    def limits_of(request: Request) -> VideoLimits:
        return getattr(request.app.state, "video_limits", None) or VideoLimits()

    def find(job_id: str) -> VideoJob:
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(
                404, f"no video job {job_id} (jobs are forgotten when the server stops or when they are deleted)"
            )
        return job

    def describe(job: VideoJob) -> dict:
        data = jobs.snapshot(job)
        data["queue_position"] = jobs.position(job)
        return data

    @api.get(
        "/videos/info",
        summary="What video jobs can use here: engines, models, options, limits",
        response_model=VideoInfoOut,
    )
    def info(request: Request) -> dict:
        limits = limits_of(request)
        return {
            "engines": [
                {"name": name, "help": text, "available": name != "fast" or request.app.state.live.engine.installed()}
                for name, text in ENGINES.items()
            ],
            "models": fast_model.builtin_names(),
            "formats": list(FORMATS),
            "options": option_fields(),
            "limits": {"max_upload_bytes": config.max_upload_bytes, "max_size": config.max_size, **limits.to_dict()},
        }

    @api.post(
        "/videos",
        status_code=202,
        summary="Submit a video to paint",
        response_model=VideoJobOut,
        description="Multipart form: the `video` upload (any container and codec the bundled FFmpeg reads: mp4, "
        "mov, webm, mkv, avi, gif), the `engine` (`model`: a built-in model named by `model`; `fast`: any "
        "painting through the arbitrary-style network; `optimisation`: any painting, optimised frame by "
        "frame), the painting(s) for `fast` and `optimisation` (`style` uploads and/or `style_sample` names), "
        "the output `format` and the options of `neuralens video` (same defaults). The clip is checked before "
        "it is queued: 415 for something that is not a video, 422 for a clip over the server's limits (see "
        "GET /api/videos/info). Answers 202 with the job; 429 when the queue is full.",
        responses=error_responses(
            400,
            404,
            413,
            415,
            422,
            429,
            e400="malformed request: no video, a model and paintings, a badly typed field or a value outside the "
            "limits given in this schema",
            e404="no built-in model or bundled sample by that name",
            e413="the upload is over this server's --max-upload-mb",
            e415="the upload is not a video (or a painting is not an image)",
            e422="a clip or value the library or this server's limits refuse (too long, too many frames, frames "
            "too large, start after the end), or no arbitrary-style engine here",
            e429="the queue is full: retry later (see Retry-After)",
        ),
    )
    def submit(
        request: Request,
        video: UploadFile = File(..., description="the video to paint"),
        engine: Literal["model", "fast", "optimisation"] = Form("model", description="how each frame is painted"),
        model: Optional[str] = Form(None, description="engine=model: a built-in model (GET /api/models)"),
        style: List[UploadFile] = File([], description="engine=fast or optimisation: painting(s)"),
        style_sample: List[str] = Form(
            [],
            description=f"engine=fast or optimisation: bundled painting(s) ({names})",
            examples=[["starry_night.jpg"]],
        ),
        format: Literal["mp4", "webm", "gif"] = Form("mp4", description="the output's container"),
        values: Dict[str, Any] = Depends(options_form()),
    ) -> dict:
        jobs.ensure_room()  # before reading the upload: a full queue refuses at once
        limits = limits_of(request)
        paintings = len(style) + len(style_sample)
        if engine == "model":
            if not model:
                raise HTTPException(400, "engine=model needs 'model': a built-in model's name (GET /api/models)")
            if paintings:
                raise HTTPException(400, "engine=model takes no paintings; use engine=fast or optimisation for them")
            model_file = builtin_file(model)  # 404 for a name that is not one
        else:
            if model:
                raise HTTPException(400, f"engine={engine} takes paintings ('style' or 'style_sample'), not 'model'")
            if not paintings:
                raise HTTPException(
                    400, f"engine={engine} needs a painting: 'style' upload(s) or 'style_sample' name(s)"
                )
            if paintings + 1 > config.max_files:
                raise HTTPException(400, f"too many paintings: at most {config.max_files - 1} per job")
            if engine == "fast" and not request.app.state.live.engine.installed():
                raise NeuralensError("this server has no arbitrary-style engine: use engine=model or optimisation")
            model_file = None
        for name in style_sample:
            if name not in samples():
                raise HTTPException(404, f"style: no bundled sample called {name[:40]!r} (available: {names})")
        options, strength, preserve = split_values(values)
        label = f"video ({video.filename[:60]})" if video.filename else "video"
        styles = [
            read_image(f, f"style {i}", config.max_upload_bytes, config.max_pixels) for i, f in enumerate(style, 1)
        ]
        styles += [load_image(samples()[name]) for name in style_sample]
        styles = [shrink(image, config.max_size) for image in styles]  # a waiting job keeps them in memory
        staged = jobs.staging()
        try:
            staged.write_bytes(read_limited(video.file, label, config.max_upload_bytes))
            try:
                info = probe(staged)
            except NeuralensError as exc:
                raise UploadError(str(exc).replace(str(staged), label), 415) from None
            try:
                run = video_plan(staged, options, info=info)
            except NeuralensError as exc:
                raise NeuralensError(str(exc).replace(str(staged), label)) from None
            check_limits(run, engine, limits, config, label)
            public = run.to_dict()
            public["input"] = {k: v for k, v in public["input"].items() if k != "path"}
            job = jobs.submit_video(
                staged,
                options,
                styles,
                engine={
                    "engine": engine,
                    "model": model,
                    "styles": [f"style {i}" for i in range(1, len(style) + 1)] + list(style_sample),
                    "strength": strength,
                    "preserve_color": preserve,
                },
                plan=public,
                format=format,
                label=label,
                labels={"video": "upload", "styles": ["upload"] * len(style) + list(style_sample)},
                model_file=model_file,
            )
        finally:
            staged.unlink(missing_ok=True)
        return describe(job)

    @api.get("/videos", summary="All video jobs of this server, newest first", response_model=VideoJobList)
    def list_jobs() -> dict:
        return {"jobs": [describe(job) for job in jobs.list()]}

    not_found = error_responses(404, e404="no video job with this id")

    @api.get(
        "/videos/{job_id}", summary="A video job's status and progress", response_model=VideoJobOut, responses=not_found
    )
    def status(job_id: str = JOB_ID) -> dict:
        return describe(find(job_id))

    @api.get(
        "/videos/{job_id}/preview",
        summary="The latest painted frame (JPEG)",
        response_class=Response,
        responses={
            200: {**JPEG, "description": "the frame"},
            **error_responses(404, e404="no video job with this id, or no frame painted yet"),
        },
    )
    def preview(job_id: str = JOB_ID) -> Response:
        job = find(job_id)
        data = job.preview
        if data is None:
            raise HTTPException(404, "no preview yet: the job has not painted its first frame")
        return Response(
            data, media_type="image/jpeg", headers={"Cache-Control": "no-store", "X-Frame": str(job.preview_frame)}
        )

    @api.get(
        "/videos/{job_id}/result",
        summary="Download the painted video",
        response_class=FileResponse,
        responses={
            200: {**MEDIA, "description": "the video, with the input's audio"},
            **not_found,
            **error_responses(409, e409="the job has no video (yet)"),
        },
    )
    def result(job_id: str = JOB_ID) -> FileResponse:
        job = find(job_id)
        if job.result_size is None or job.status not in FINISHED:
            raise HTTPException(
                409, f"the job is {job.status}: no video to download" + (f" ({job.error})" if job.error else "")
            )
        media, suffix = FORMATS[job.format]
        return FileResponse(job.result_path, media_type=media, filename=f"neuralens-{job.id[:8]}{suffix}")

    @api.post(
        "/videos/{job_id}/cancel",
        summary="Cancel a video job",
        description="A waiting job is dropped; a running one stops after the frame it is painting and keeps the "
        "frames painted so far as a playable video.",
        response_model=VideoJobOut,
        responses=not_found,
    )
    def cancel(job_id: str = JOB_ID) -> dict:
        job = find(job_id)
        if job.status not in FINISHED:
            jobs.cancel(job)
        return describe(job)

    @api.delete(
        "/videos/{job_id}", summary="Delete a video job and its files", response_model=Deleted, responses=not_found
    )
    def delete(job_id: str = JOB_ID) -> dict:
        jobs.delete(find(job_id))
        return {"deleted": job_id}


def check_limits(run, engine: str, limits: VideoLimits, config, label: str) -> None:
    """The server's limits on the clip a job would paint (``run``: its VideoPlan); NeuralensError saying which."""
    if max(run.size) > config.max_size:
        raise NeuralensError(
            f"{label}: frames of {run.size[0]}x{run.size[1]} are over this server's limit of {config.max_size} px; "
            "set size"
        )
    if run.seconds > limits.max_seconds:
        raise NeuralensError(
            f"{label}: {run.seconds:.1f} s taken, over this server's limit of {limits.max_seconds:g} s; pick a part "
            "with start and end"
        )
    most = limits.max_optimisation_frames if engine == "optimisation" else limits.max_frames
    if run.frames > most:
        raise NeuralensError(
            f"{label}: {run.frames} frames, over this server's limit of {most} for engine={engine}; pick a part "
            "with start and end, or a lower fps"
        )
