"""The live-preview part of the API: ``POST /api/fast`` answers a small stylized preview at once (a built-in
model or any painting through the arbitrary-style engine), ``POST /api/paintings`` uploads a painting once
and answers its id (its style code stays cached on the server), ``GET /api/live`` says what this server
offers, including the webcam stream (``webcam.py``).

``POST /api/fast`` is asynchronous on the server side only: it waits for its turn on the process-wide
queue (``Live.gate``) in the event loop and then runs the model in the threadpool. A request whose client
disconnected meanwhile (the page aborts a preview that a newer one superseded) is skipped without running.
"""

from __future__ import annotations

import time
from typing import List, Literal, Optional, Tuple

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..errors import NeuralensError
from ..fast import model as fast_model
from .live import PAINTING_ID, PREVIEW_SIZE, WEBCAM_SIZE, Live, LiveOptions, digest, encode, sample_key
from .models_api import builtin_file
from .security import error_responses
from .style_api import samples
from .uploads import decode_image, read_limited

IMAGES = {
    "content": {
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
    }
}


class WebcamInfo(BaseModel):
    url: str = Field(..., description="the WebSocket path (see docs/web.md, 'Webcam')")
    width: int = Field(..., description="frame width the page sends")
    height: int = Field(..., description="frame height the page sends")


class LiveInfo(BaseModel):
    """What live previews and the webcam can use on this server."""

    arbitrary: bool = Field(..., description="whether any painting can be used (the arbitrary-style engine)")
    models: List[str] = Field(..., description="the built-in models (GET /api/models describes them)")
    preview_size: int = Field(..., description="the long side POST /api/fast uses by default")
    max_size: int = Field(..., description="the largest long side a preview may ask for")
    webcam: WebcamInfo


class PaintingOut(BaseModel):
    id: str = Field(..., description="the painting's id (a hash of the file): painting_id in POST /api/fast")
    width: Optional[int] = Field(..., description="the upload's size (null when it was already cached)")
    height: Optional[int] = Field(..., description="the upload's size (null when it was already cached)")
    cached: bool = Field(..., description="true when the server already had this painting")
    seconds: float = Field(..., description="time spent computing the painting's style code")


def register(api: APIRouter, config) -> None:
    """Add /live, /paintings and /fast to ``api``; the app's ``state.live`` holds the ``Live``."""
    names = ", ".join(samples())
    limits = (config.max_upload_bytes, config.max_pixels)

    async def read_upload(upload: UploadFile, label: str) -> Tuple[bytes, str]:
        """The upload's bytes (size-limited) and its label for messages (the client's file name, trimmed)."""
        name = upload.filename
        shown = f"{label} ({name[:60]})" if name else label
        return await run_in_threadpool(read_limited, upload.file, shown, limits[0]), shown

    def decoder(label: str):
        return lambda data: decode_image(data, label, limits[1])

    @api.get("/live", summary="What live previews and the webcam can use here", response_model=LiveInfo)
    def live_info(request: Request) -> dict:
        live: Live = request.app.state.live
        return {
            "arbitrary": live.engine.installed(),
            "models": fast_model.builtin_names(),
            "preview_size": PREVIEW_SIZE,
            "max_size": config.max_size,
            "webcam": {"url": "/ws/webcam", "width": WEBCAM_SIZE[0], "height": WEBCAM_SIZE[1]},
        }

    @api.post(
        "/paintings",
        summary="Upload a painting for the arbitrary-style engine; answers its id",
        description="Multipart form with one `painting` upload. The server computes the painting's style "
        "code once and keeps it (the most recently used few): send the id as `painting_id` to "
        "`POST /api/fast`, or as `painting` to the webcam stream. Uploading the same file again answers the "
        "same id at no cost.",
        response_model=PaintingOut,
        responses=error_responses(
            400,
            413,
            415,
            422,
            e400="malformed request: no painting upload",
            e422="this server has no arbitrary-style engine, or the engine refuses the image",
        ),
    )
    async def add_painting(request: Request, painting: UploadFile = File(..., description="the painting")) -> dict:
        live: Live = request.app.state.live
        data, shown = await read_upload(painting, "painting")
        key = digest(data)
        if key in live.paintings:
            return {"id": key, "width": None, "height": None, "cached": True, "seconds": 0.0}
        image = await run_in_threadpool(decoder(shown), data)
        _, seconds = await run_in_threadpool(live.add_painting, key, image)
        return {"id": key, "width": image.width, "height": image.height, "cached": False, "seconds": round(seconds, 4)}

    @api.post(
        "/fast",
        summary="A stylized preview at once: a built-in model or any painting (JPEG or PNG)",
        description="Multipart form: a content image (`content` upload or `content_sample`) and one style: "
        "`model` (a built-in model's name), or a painting for the arbitrary-style engine (`painting` upload, "
        "`painting_id` from `POST /api/paintings`, or `painting_sample`), plus `size` (long side, default "
        f"{PREVIEW_SIZE}), `strength`, `preserve_color` and `format`. Answers the image itself; `X-Seconds` is "
        "the model's time on the server. Uploads are cached by their hash, so repeating a request with "
        "another strength costs one stylization. Requests are served one at a time; one whose client has "
        "gone away before its turn is skipped (409).",
        response_class=Response,
        responses={
            200: {**IMAGES, "description": "the stylized image"},
            **error_responses(
                400,
                404,
                409,
                413,
                415,
                422,
                e400="malformed request: no content image or two, no style or two, a badly typed field or a "
                "value outside the limits given in this schema",
                e404="no built-in model, bundled sample or cached painting by that name or id",
                e409="skipped: the client went away before its turn (nobody reads this answer)",
                e422="this server has no arbitrary-style engine, or the library refuses the image",
            ),
        },
    )
    async def fast(
        request: Request,
        content: Optional[UploadFile] = File(None, description="the photo to repaint"),
        content_sample: Optional[str] = Form(
            None, description=f"a bundled sample as content ({names})", examples=["tubingen.jpg"]
        ),
        model: Optional[str] = Form(None, description="a built-in model (GET /api/models)"),
        painting: Optional[UploadFile] = File(None, description="a painting for the arbitrary-style engine"),
        painting_id: Optional[str] = Form(
            None, pattern=PAINTING_ID, description="a painting uploaded before (POST /api/paintings)"
        ),
        painting_sample: Optional[str] = Form(
            None, description=f"a bundled sample as painting ({names})", examples=["starry_night.jpg"]
        ),
        size: int = Form(PREVIEW_SIZE, gt=0, le=config.max_size, description="long side of the result in pixels"),
        strength: float = Form(
            1.0, ge=0.0, le=1.0, allow_inf_nan=False, description="blend of the photo (0) and the painting (1)"
        ),
        preserve_color: Literal["none", "luminance", "histogram"] = Form(
            "none", description="keep the photo's colours: luminance, or match the result's colours (histogram)"
        ),
        format: Literal["jpeg", "png"] = Form("jpeg", description="the answer's format"),
    ) -> Response:
        live: Live = request.app.state.live
        if (content is None) == (not content_sample):
            raise HTTPException(400, "give exactly one content image: a 'content' upload or a 'content_sample' name")
        given = [n for n, v in (("model", model), ("painting", painting), ("painting_id", painting_id)) if v]
        given += ["painting_sample"] if painting_sample else []
        if len(given) != 1:
            raise HTTPException(
                400,
                "give exactly one style: 'model', or a painting ('painting' upload, 'painting_id' or "
                f"'painting_sample'){'; got ' + ', '.join(given) if given else ''}",
            )
        # Names first (404 before any upload is decoded).
        for value, what in ((content_sample, "content"), (painting_sample, "painting")):
            if value and value not in samples():
                raise HTTPException(404, f"{what}: no bundled sample called {value[:40]!r} (available: {names})")
        if model:
            builtin_file(model)
            style = ("model", model)
        elif painting_id:
            if painting_id not in live.paintings:
                raise HTTPException(
                    404, f"no painting {painting_id} on this server (it keeps the latest few): upload it again"
                )
            style = ("painting", painting_id)
        elif painting_sample:
            style = ("painting", sample_key(painting_sample))
        else:
            data, shown = await read_upload(painting, "painting")
            key = digest(data)
            if key not in live.paintings:
                await run_in_threadpool(live.add_painting, key, await run_in_threadpool(decoder(shown), data))
            style = ("painting", key)
        if content is not None:
            data, shown = await read_upload(content, "content")
            image = await run_in_threadpool(live.content, data, decoder(shown))
        else:
            image = await run_in_threadpool(live.sample, content_sample)
        options = LiveOptions(strength=strength, preserve_color=None if preserve_color == "none" else preserve_color)
        started = time.perf_counter()
        async with live.gate:
            if await request.is_disconnected():
                raise HTTPException(409, "skipped: the client went away before its turn")
            if style[0] == "painting" and not style[1].startswith("sample:") and style[1] not in live.paintings:
                raise NeuralensError("the painting was forgotten by the server meanwhile: upload it again")
            result, seconds = await run_in_threadpool(live.render, style, image, options, size)
        waited = time.perf_counter() - started - seconds
        body = await run_in_threadpool(encode, result, format)
        headers = {
            "Cache-Control": "no-store",
            "X-Seconds": f"{seconds:.3f}",
            "X-Wait-Seconds": f"{max(0.0, waited):.3f}",
            "X-Style": f"{style[0]}:{style[1]}",
            "Content-Disposition": f'inline; filename="neuralens-fast.{"png" if format == "png" else "jpg"}"',
        }
        return Response(body, media_type=f"image/{format}", headers=headers)
