"""The style-transfer part of the API: submit a job, follow it (polling or SSE), fetch images, cancel, delete.

The job's options are not written out here: the form fields of ``POST /api/jobs`` are generated from the
``StyleOptions`` fields whose Spec says ``web=True`` (type, default, limits, choices and help), so the form,
its OpenAPI schema, ``/api/info`` (from which the page builds its settings) and the CLI never disagree
(that generation lives in ``style_form``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path as FilePath
from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from ..errors import NeuralensError
from ..imageio import SAMPLES, is_image_name, load_image, resize_long_side
from ..style import StyleOptions, check_shape, parse_layers, plan_scales
from ..style.plan import smallest_side
from .jobs import FINISHED, Job, JobManager
from .security import error_responses
from .shapes import Deleted, JobStatusOut
from .style_form import options_form, options_from_form
from .uploads import read_image

# The role of each bundled sample (credits in samples/CREDITS.md): photos to repaint ("content") and
# paintings to take a style from ("style"). The page shows each in its own picker; the API accepts any
# sample in either role. A sample missing here is offered in both pickers (and a test asks for its entry).
SAMPLE_KINDS = {
    "tubingen.jpg": ("content", "Neckarfront in Tübingen (photo)"),
    "chelsea.jpg": ("content", "Chelsea the cat (photo)"),
    "starry_night.jpg": ("style", "Van Gogh, The Starry Night"),
    "the_scream.jpg": ("style", "Munch, The Scream"),
}
JOB_ID = Path(pattern=r"^[0-9a-f]{32}$", description="a job id as returned by POST /api/jobs")
# How often the event stream looks for news, and how long it stays quiet before a keep-alive comment.
POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0
# The whole run (every scale) may take at most this many times the server's --max-iterations evaluations.
TOTAL_EVALUATIONS_FACTOR = 4


def samples() -> Dict[str, FilePath]:
    """The bundled sample images by file name (the only names a request may use to pick one)."""
    return {p.name: p for p in sorted(SAMPLES.iterdir()) if p.is_file() and is_image_name(p.name)}


def sample_list() -> List[dict]:
    """The samples as /api/info lists them: name, thumbnail URL, kind (content, style or None) and title."""
    out = []
    for name in samples():
        kind, title = SAMPLE_KINDS.get(name, (None, name))
        out.append({"name": name, "url": f"/samples/{name}", "kind": kind, "title": title})
    return out


def shrink(image, long_side: int):
    """``image`` scaled down to ``long_side`` if it is larger (never up)."""
    return resize_long_side(image, long_side) if max(image.size) > long_side else image


class JobUrls(BaseModel):
    self_: str = Field(..., alias="self")
    events: str
    cancel: str
    preview: Optional[str] = Field(..., description="the latest image (null before the first step)")
    result: Optional[str] = Field(..., description="the final image (null until there is one)")


class JobOut(JobStatusOut):
    """A job as the API reports it."""

    error: Optional[str]
    stopped_early: bool
    progress: Dict[str, Any] = Field(
        ...,
        description="iteration, total_iterations, scale, size, losses, "
        "elapsed and eta (seconds left); empty before the first step",
    )
    options: Dict[str, Any] = Field(..., description="the job's StyleOptions")
    inputs: Dict[str, Any] = Field(..., description="names of the inputs (a sample's name or 'upload')")
    result_size: Optional[List[int]]
    preview_iteration: int
    urls: JobUrls
    queue_position: Optional[int] = Field(..., description="1-based place in the queue (null when not waiting)")


class JobList(BaseModel):
    jobs: List[JobOut]


PNG = {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}
# Each server-sent event (OpenAPI 3.1 reads a text/event-stream schema as that of one event): `job` with
# the job's JSON, then one `end` with {}.
EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["job", "end"]},
        "id": {"type": "string", "description": "the job's version (job events)"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [{"$ref": "#/components/schemas/JobOut"}, {"type": "object", "maxProperties": 0}]
            },
        },
    },
}


def register(api: APIRouter, manager: JobManager, config) -> None:
    """Add the /jobs routes to ``api``."""

    def find(job_id: str) -> Job:
        job = manager.get(job_id)
        if job is None:
            raise HTTPException(
                404, f"no job {job_id} (finished jobs are forgotten when the server stops or when they are deleted)"
            )
        return job

    def describe(job: Job) -> dict:
        data = manager.snapshot(job)
        data["queue_position"] = manager.position(job)
        return data

    def pick_sample(name: str, what: str):
        known = samples()
        if name not in known:
            raise HTTPException(404, f"{what}: no bundled sample called {name[:40]!r} (available: {', '.join(known)})")
        return load_image(known[name])

    def check_limits(options: StyleOptions) -> None:
        """The server's own limits, on top of the options' checks."""
        if options.size > config.max_size:
            raise NeuralensError(f"size {options.size} is over this server's limit of {config.max_size} px")
        style_side = round(options.size * options.style_scale)
        if style_side > config.max_size:
            raise NeuralensError(
                f"style_scale {options.style_scale:g} makes the style images {style_side} px, over "
                f"this server's limit of {config.max_size} px"
            )
        for name in ("iterations", "coarse_iterations"):
            value = getattr(options, name)
            if value is not None and value > config.max_iterations:
                raise NeuralensError(f"{name} {value} is over this server's limit of {config.max_iterations}")
        total = sum(n for _, n in plan_scales(options))
        if total > TOTAL_EVALUATIONS_FACTOR * config.max_iterations:
            raise NeuralensError(
                f"the run would take {total} loss evaluations over all its scales, over this "
                f"server's limit of {TOTAL_EVALUATIONS_FACTOR * config.max_iterations}; lower "
                "iterations, coarse_iterations or scales"
            )

    names = ", ".join(samples())

    @api.post(
        "/jobs",
        status_code=202,
        summary="Submit a stylization job",
        response_model=JobOut,
        description="Multipart form: a content image (`content` upload or `content_sample` name) and "
        "one or more style images (`style` uploads and/or `style_sample` names, blended in "
        "that order with `style_blend`), plus options (those of `neuralens stylize`, with "
        "the same defaults). Answers 202 with the job; 429 when the queue is full.",
        responses=error_responses(
            400,
            404,
            413,
            415,
            422,
            429,
            e400="malformed request: no content or style image, too many images, a badly typed field "
            "or a value outside the limits given in this schema",
            e404="no bundled sample by that name",
            e422="a value the library or this server's limits refuse, such as an image too thin for "
            "the network at this size",
            e429="the queue is full: retry later (see Retry-After)",
        ),
    )
    def submit(
        content: Optional[UploadFile] = File(None, description="the photo to repaint"),
        style: List[UploadFile] = File([], description="style image(s)"),
        content_sample: Optional[str] = Form(
            None, description=f"a bundled sample as content ({names})", examples=["tubingen.jpg"]
        ),
        style_sample: List[str] = Form(
            [], description=f"bundled sample(s) as style ({names})", examples=[["starry_night.jpg"]]
        ),
        values: Dict[str, Any] = Depends(options_form()),
    ) -> dict:
        manager.ensure_room()  # before decoding any upload: a full queue refuses at once
        if (content is None) == (not content_sample):
            raise HTTPException(400, "give exactly one content image: a 'content' upload or a 'content_sample' name")
        if not style and not style_sample:
            raise HTTPException(400, "give at least one style image: 'style' upload(s) or 'style_sample' name(s)")
        if len(style) + len(style_sample) + 1 > config.max_files:
            raise HTTPException(400, f"too many images: at most {config.max_files - 1} style images per job")
        options = options_from_form(values, config.device)
        check_limits(options)
        n_styles = len(style) + len(style_sample)
        if options.style_blend is not None and len(options.style_blend) != n_styles:
            raise NeuralensError(f"style_blend has {len(options.style_blend)} weights for {n_styles} style images")
        limits = (config.max_upload_bytes, config.max_pixels)
        content_image = (
            read_image(content, "content", *limits) if content is not None else pick_sample(content_sample, "content")
        )
        style_images = [read_image(f, f"style {i}", *limits) for i, f in enumerate(style, start=1)]
        style_images += [pick_sample(name, "style") for name in style_sample]
        style_names = [f"style {i}" for i in range(1, len(style) + 1)] + [f"style {name}" for name in style_sample]
        # Refuse now what the run would refuse later (too thin for the network once scaled), as it will scale:
        # the content to `size`, the styles to `size` x `style_scale`.
        min_side = smallest_side([*parse_layers(options.content_layers), *parse_layers(options.style_layers)])
        style_side = max(1, round(options.size * options.style_scale))
        check_shape(content_image.width, content_image.height, options.size, "content image", min_side)
        for what, image in zip(style_names, style_images):
            check_shape(image.width, image.height, style_side, what, min_side)
        # Waiting jobs hold their inputs in memory: keep no more pixels than the run will use.
        content_image = shrink(content_image, options.size)
        style_images = [shrink(image, style_side) for image in style_images]
        labels = {"content": content_sample or "upload", "styles": ["upload"] * len(style) + list(style_sample)}
        return describe(manager.submit(options, content_image, style_images, labels))

    @api.get("/jobs", summary="All jobs of this server, newest first", response_model=JobList)
    def list_jobs() -> dict:
        return {"jobs": [describe(job) for job in manager.list()]}

    not_found = error_responses(404, e404="no job with this id")

    @api.get("/jobs/{job_id}", summary="A job's status and progress", response_model=JobOut, responses=not_found)
    def status(job_id: str = JOB_ID) -> dict:
        return describe(find(job_id))

    @api.get(
        "/jobs/{job_id}/events",
        summary="Progress as server-sent events",
        description="`event: job` with the job's JSON whenever it changes, then `event: end` once it has finished.",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {"schema": EVENT}}, "description": "the event stream"},
            **not_found,
        },
    )
    async def events(request: Request, job_id: str = JOB_ID) -> StreamingResponse:
        job = find(job_id)

        async def stream():
            seen, quiet = -1, 0.0
            while True:
                if job.version != seen:
                    data = describe(job)
                    seen, quiet = data["version"], 0.0
                    yield f"event: job\nid: {seen}\ndata: {json.dumps(data)}\n\n"
                    if data["status"] in FINISHED:
                        yield "event: end\ndata: {}\n\n"
                        return
                elif quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(POLL_SECONDS)
                quiet += POLL_SECONDS

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    @api.get(
        "/jobs/{job_id}/preview",
        summary="The latest intermediate image (PNG)",
        response_class=Response,
        responses={
            200: {**PNG, "description": "the image"},
            **error_responses(404, e404="no job with this id, or no preview yet"),
        },
    )
    def preview(job_id: str = JOB_ID) -> Response:
        """The latest intermediate image; once the job has finished, its result."""
        job = find(job_id)
        data = job.preview
        if data is None and job.result_size is not None:
            return FileResponse(job.result_path, media_type="image/png", headers={"Cache-Control": "no-store"})
        if data is None:
            raise HTTPException(404, "no preview yet: the job has not made its first step")
        return Response(
            data,
            media_type="image/png",
            headers={"Cache-Control": "no-store", "X-Iteration": str(job.preview_iteration)},
        )

    @api.get(
        "/jobs/{job_id}/result",
        summary="Download the final image (PNG)",
        response_class=FileResponse,
        responses={
            200: {**PNG, "description": "the image"},
            **not_found,
            **error_responses(409, e409="the job has no result (yet)"),
        },
    )
    def result(job_id: str = JOB_ID) -> FileResponse:
        job = find(job_id)
        if job.result_size is None:
            raise HTTPException(
                409, f"the job is {job.status}: no result to download" + (f" ({job.error})" if job.error else "")
            )
        return FileResponse(job.result_path, media_type="image/png", filename=f"neuralens-{job.id[:8]}.png")

    @api.post(
        "/jobs/{job_id}/cancel",
        summary="Cancel a job",
        description="A waiting job is dropped; a running one stops after its current step and keeps "
        "the best image so far as its result.",
        response_model=JobOut,
        responses=not_found,
    )
    def cancel(job_id: str = JOB_ID) -> dict:
        job = find(job_id)
        if job.status not in FINISHED:
            manager.cancel(job)
        return describe(job)

    @api.delete("/jobs/{job_id}", summary="Delete a job and its images", response_model=Deleted, responses=not_found)
    def delete(job_id: str = JOB_ID) -> dict:
        manager.delete(find(job_id))
        return {"deleted": job_id}
