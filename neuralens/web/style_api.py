"""The style-transfer part of the API: submit a job, follow it (polling or SSE), fetch images, cancel, delete."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path as FilePath
from typing import Dict, List, Literal, Optional

from fastapi import APIRouter, File, Form, HTTPException, Path, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse

from ..errors import NeuralensError
from ..imageio import load_image, resize_long_side
from ..style.transfer import StyleOptions
from .jobs import FINISHED, Job, JobManager
from .uploads import read_image

SAMPLES = FilePath(__file__).resolve().parent.parent / "samples"
SAMPLE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
JOB_ID = Path(pattern=r"^[0-9a-f]{32}$", description="a job id as returned by POST /api/jobs")
# How often the event stream looks for news, and how long it stays quiet before a keep-alive comment.
POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0


def samples() -> Dict[str, FilePath]:
    """The bundled sample images by file name (the only names a request may use to pick one)."""
    return {p.name: p for p in sorted(SAMPLES.iterdir()) if p.suffix.lower() in SAMPLE_SUFFIXES}


def parse_blend(text: Optional[str]) -> Optional[List[float]]:
    """'0.7,0.3' -> [0.7, 0.3]; empty -> None."""
    if text is None or not text.strip():
        return None
    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise NeuralensError(f"style_blend must be numbers separated by commas, got {text[:60]!r}") from None


def shrink(image, long_side: int):
    """``image`` scaled down to ``long_side`` if it is larger (never up)."""
    return resize_long_side(image, long_side) if max(image.size) > long_side else image


def register(api: APIRouter, manager: JobManager, config) -> None:
    """Add the /jobs routes to ``api``."""
    def find(job_id: str) -> Job:
        job = manager.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} (finished jobs are forgotten when the server stops "
                                     "or when they are deleted)")
        return job

    def describe(job: Job) -> dict:
        data = manager.snapshot(job)
        data["queue_position"] = manager.position(job)
        return data

    def pick_sample(name: str, what: str):
        known = samples()
        if name not in known:
            raise HTTPException(404, f"{what}: no bundled sample called {name[:40]!r} "
                                     f"(available: {', '.join(known)})")
        return load_image(known[name])

    @api.post("/jobs", status_code=202, summary="Submit a stylization job",
              description="Multipart form: a content image (`content` upload or `content_sample` name) and "
                          "one or more style images (`style` uploads and/or `style_sample` names, blended in "
                          "that order with `style_blend`), plus options. Answers 202 with the job; "
                          "429 when the queue is full.")
    def submit(content: Optional[UploadFile] = File(None, description="the photo to repaint"),
               style: List[UploadFile] = File([], description="style image(s)"),
               content_sample: Optional[str] = Form(None, description="a bundled sample as content (see /api/info)"),
               style_sample: List[str] = Form([], description="bundled sample(s) as style"),
               size: int = Form(384, description="long side of the output in pixels"),
               iterations: Optional[int] = Form(None, description="loss evaluations at the output size "
                                                "(default: by size, 75 up to 512 px)"),
               style_weight: float = Form(StyleOptions.style_weight, description="style strength (beta)"),
               content_weight: float = Form(1.0, description="content weight (alpha)"),
               tv_weight: float = Form(0.0, description="total-variation smoothing"),
               preserve_color: Literal["none", "luminance", "histogram"] = Form("none"),
               style_blend: Optional[str] = Form(None, description="weights per style, e.g. 0.7,0.3"),
               seed: Optional[int] = Form(0),
               optimizer: Literal["lbfgs", "adam"] = Form("lbfgs")) -> dict:
        manager.ensure_room()  # before decoding any upload: a full queue refuses at once
        if (content is None) == (not content_sample):
            raise HTTPException(400, "give exactly one content image: a 'content' upload or a 'content_sample' name")
        if not style and not style_sample:
            raise HTTPException(400, "give at least one style image: 'style' upload(s) or 'style_sample' name(s)")
        if len(style) + len(style_sample) + 1 > config.max_files:
            raise HTTPException(400, f"too many images: at most {config.max_files - 1} style images per job")
        if size > config.max_size:
            raise NeuralensError(f"size {size} is over this server's limit of {config.max_size} px")
        if iterations is not None and iterations > config.max_iterations:
            raise NeuralensError(f"iterations {iterations} is over this server's limit of {config.max_iterations}")
        options = StyleOptions(size=size, iterations=iterations, style_weight=style_weight,
                               content_weight=content_weight, tv_weight=tv_weight,
                               preserve_color=None if preserve_color == "none" else preserve_color,
                               style_blend=parse_blend(style_blend), seed=seed, optimizer=optimizer,
                               device=config.device).validate()
        n_styles = len(style) + len(style_sample)
        if options.style_blend is not None and len(options.style_blend) != n_styles:
            raise NeuralensError(f"style_blend has {len(options.style_blend)} weights for {n_styles} style images")
        limits = (config.max_upload_bytes, config.max_pixels)
        content_image = (read_image(content, "content", *limits) if content is not None
                         else pick_sample(content_sample, "content"))
        style_images = [read_image(f, f"style {i}", *limits) for i, f in enumerate(style, start=1)]
        style_images += [pick_sample(name, "style") for name in style_sample]
        # Waiting jobs hold their inputs in memory: keep no more pixels than the run will use (the output
        # size; styles are used at the output size too, since the API keeps style_scale at 1).
        content_image = shrink(content_image, size)
        style_images = [shrink(image, size) for image in style_images]
        labels = {"content": content_sample or "upload",
                  "styles": ["upload"] * len(style) + list(style_sample)}
        return describe(manager.submit(options, content_image, style_images, labels))

    @api.get("/jobs", summary="All jobs of this server, newest first")
    def list_jobs() -> dict:
        return {"jobs": [describe(job) for job in manager.list()]}

    @api.get("/jobs/{job_id}", summary="A job's status and progress")
    def status(job_id: str = JOB_ID) -> dict:
        return describe(find(job_id))

    @api.get("/jobs/{job_id}/events", summary="Progress as server-sent events",
             description="`event: job` with the job's JSON whenever it changes, then `event: end` once it "
                         "has finished.", response_class=StreamingResponse)
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

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @api.get("/jobs/{job_id}/preview", summary="The latest intermediate image (PNG)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def preview(job_id: str = JOB_ID) -> Response:
        """The latest intermediate image; once the job has finished, its result."""
        job = find(job_id)
        data = job.preview
        if data is None and job.result_size is not None:
            return FileResponse(job.result_path, media_type="image/png", headers={"Cache-Control": "no-store"})
        if data is None:
            raise HTTPException(404, "no preview yet: the job has not made its first step")
        return Response(data, media_type="image/png",
                        headers={"Cache-Control": "no-store", "X-Iteration": str(job.preview_iteration)})

    @api.get("/jobs/{job_id}/result", summary="Download the final image (PNG)",
             response_class=FileResponse, responses={200: {"content": {"image/png": {}}}})
    def result(job_id: str = JOB_ID) -> FileResponse:
        job = find(job_id)
        if job.result_size is None:
            raise HTTPException(409, f"the job is {job.status}: no result to download"
                                     + (f" ({job.error})" if job.error else ""))
        return FileResponse(job.result_path, media_type="image/png", filename=f"neuralens-{job.id[:8]}.png")

    @api.post("/jobs/{job_id}/cancel", summary="Cancel a job",
              description="A waiting job is dropped; a running one stops after its current step and keeps "
                          "the best image so far as its result.")
    def cancel(job_id: str = JOB_ID) -> dict:
        job = find(job_id)
        if job.status not in FINISHED:
            manager.cancel(job)
        return describe(job)

    @api.delete("/jobs/{job_id}", summary="Delete a job and its images")
    def delete(job_id: str = JOB_ID) -> dict:
        manager.delete(find(job_id))
        return {"deleted": job_id}
