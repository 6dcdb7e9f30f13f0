"""The real-time style part of the API: the built-in feed-forward models (``neuralens.fast``), listed and
applied synchronously (one forward pass: well under a second on a 384-px photo).

Only built-in models are offered, by name: a name must be one of ``builtin_names()`` and the file is then
taken from the built-in folder, so no request string ever reaches ``load_model`` as a path (it would take an
existing file of that name). Each model is loaded once per server, on first use, and kept in a small cache
(``ModelCache``, on ``app.state.models`` so tests can hand it a stand-in loader).
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, List, Literal, Optional

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..errors import NeuralensError
from ..fast import model as fast_model
from ..fast.model import StyleModel
from ..imageio import load_image
from .security import error_responses
from .style_api import PNG, SAMPLE_KINDS, samples
from .uploads import read_image

DEFAULT_SIZE = 384
CACHED_MODELS = 4  # models kept loaded (a built-in model is 1 MB of fp32 weights)


def builtin_file(name: str) -> Path:
    """The file of built-in model ``name``; 404 unless the name is one of the built-in models."""
    known = fast_model.builtin_names()
    if name not in known:  # a lookup in the listing: a request string is never taken as a path
        raise HTTPException(
            404, f"no built-in style model called {name[:40]!r} (available: {', '.join(known) or 'none'})"
        )
    return fast_model.BUILTIN / f"{name}{fast_model.MODEL_SUFFIX}"


class ModelCache:
    """Built-in models by name, loaded on first use (``loader(path, device)``) and kept, at most
    ``size`` of them (least recently used dropped). Thread-safe: the routes run in FastAPI's threadpool."""

    def __init__(self, device: str = "auto", size: int = CACHED_MODELS, loader: Optional[Callable] = None):
        self.device = device
        self.size = size
        self.loader = loader or (lambda path, device: fast_model.load_model(path, device))
        self._models: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        # One stylization at a time: each already uses every core (or the GPU); more would only thrash.
        self.run_lock = threading.Lock()

    def get(self, name: str) -> StyleModel:
        path = builtin_file(name)
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name]
            model = self.loader(path, self.device)
            self._models[name] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return model

    def loaded(self) -> List[str]:
        with self._lock:
            return list(self._models)


class ModelOut(BaseModel):
    """A built-in style model as the API lists it."""

    name: str = Field(..., description="the name to use in POST /api/models/{name}/stylize")
    painting: Optional[str] = Field(..., description="the painting it was trained on (file name)")
    title: Optional[str] = Field(..., description="the painting's title, when it is a bundled sample")
    painting_url: Optional[str] = Field(..., description="the painting's thumbnail, when it is a bundled sample")
    width: Optional[int] = Field(..., description="the network's width (channels of its first layer)")
    bytes: Optional[int] = Field(..., description="size of the model file")
    iterations: Optional[int] = Field(..., description="training steps")
    minutes: Optional[float] = Field(..., description="training time")
    trained: str = Field(..., description="how it was trained, in words (e.g. '1060 steps, 7 min')")
    error: Optional[str] = Field(..., description="why the model cannot be used (null when it can)")


class ModelList(BaseModel):
    models: List[ModelOut]
    default_size: int = Field(..., description="the size POST /api/models/{name}/stylize uses by default")


def _number(value) -> Optional[float]:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def describe(name: str) -> dict:
    """One entry of GET /api/models, from ``model_info`` (or the reason the file cannot be read)."""
    out = dict.fromkeys(ModelOut.model_fields)
    out.update(name=name, trained="-")
    try:
        data = fast_model.model_info(fast_model.BUILTIN / f"{name}{fast_model.MODEL_SUFFIX}")
    except NeuralensError as exc:
        out["error"] = str(exc).replace(str(fast_model.BUILTIN), "models")  # no server paths in answers
        return out
    info = data.get("info") or {}
    report = data.get("report") or {}
    result = report.get("result") or {}
    painting = info.get("painting") or report.get("style")
    painting = Path(str(painting)).name if painting else None
    steps = _number(info.get("iterations", result.get("iterations")))
    seconds = _number(info.get("seconds", result.get("seconds")))
    parts = []
    if steps is not None:
        parts.append(f"{int(steps)} steps")
    if seconds is not None:
        parts.append(f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s")
    if info.get("stopped"):
        parts.append("stopped early")
    sample = painting if painting in samples() else None
    out.update(
        painting=painting,
        title=SAMPLE_KINDS[sample][1] if sample in SAMPLE_KINDS else None,
        painting_url=f"/samples/{sample}" if sample else None,
        width=data["width"],
        bytes=data["bytes"],
        iterations=int(steps) if steps is not None else None,
        minutes=round(seconds / 60, 1) if seconds is not None else None,
        trained=", ".join(parts) or "-",
    )
    return out


def register(api: APIRouter, config) -> None:
    """Add the /models routes to ``api``; the app's ``state.models`` holds the ``ModelCache``."""
    names = ", ".join(samples())

    @api.get(
        "/models",
        summary="The built-in real-time style models",
        response_model=ModelList,
        description="Each built-in feed-forward model: its name, the painting it learnt, its width and how it "
        "was trained. Apply one with `POST /api/models/{name}/stylize`.",
    )
    def list_models() -> dict:
        return {"models": [describe(name) for name in fast_model.builtin_names()], "default_size": DEFAULT_SIZE}

    @api.post(
        "/models/{name}/stylize",
        summary="Paint a photo with a built-in model, at once (PNG)",
        description="Multipart form: a content image (`content` upload or `content_sample` name, as for "
        "`POST /api/jobs`) and `size` (long side of the result), `strength` (0: the photo, 1: the painting) "
        "and `preserve_color`. Answers the image itself (one forward pass, no job); `X-Seconds` says how "
        "long the stylization took on the server.",
        response_class=Response,
        responses={
            200: {**PNG, "description": "the stylized image"},
            **error_responses(
                400,
                404,
                413,
                415,
                422,
                e400="malformed request: no content image or two, a badly typed field or a value outside "
                "the limits given in this schema (size at most this server's --max-size)",
                e404="no built-in model by that name, or no bundled sample by that name",
                e422="the model file cannot be read, or the library refuses the image",
            ),
        },
    )
    def stylize(
        request: Request,
        name: str,
        content: Optional[UploadFile] = File(None, description="the photo to repaint"),
        content_sample: Optional[str] = Form(
            None, description=f"a bundled sample as content ({names})", examples=["tubingen.jpg"]
        ),
        size: int = Form(
            DEFAULT_SIZE, gt=0, le=config.max_size, description="long side of the result in pixels (at most --max-size)"
        ),
        strength: float = Form(
            1.0, ge=0.0, le=1.0, allow_inf_nan=False, description="blend of the photo (0) and the painting (1)"
        ),
        preserve_color: Literal["none", "luminance", "histogram"] = Form(
            "none", description="keep the photo's colours: luminance, or match the result's colours (histogram)"
        ),
    ) -> Response:
        cache: ModelCache = request.app.state.models
        builtin_file(name)  # 404 before any upload is decoded
        if (content is None) == (not content_sample):
            raise HTTPException(400, "give exactly one content image: a 'content' upload or a 'content_sample' name")
        if content is not None:
            image = read_image(content, "content", config.max_upload_bytes, config.max_pixels)
        else:
            known = samples()
            if content_sample not in known:
                raise HTTPException(
                    404, f"content: no bundled sample called {content_sample[:40]!r} (available: {', '.join(known)})"
                )
            image = load_image(known[content_sample])
        model = cache.get(name)
        with cache.run_lock:
            started = time.perf_counter()
            result = model.stylize(image, strength, None if preserve_color == "none" else preserve_color, size)
            seconds = time.perf_counter() - started
        buffer = io.BytesIO()
        result.save(buffer, format="PNG", compress_level=1)  # fast: this answer is about speed
        return Response(
            buffer.getvalue(),
            media_type="image/png",
            headers={
                "Cache-Control": "no-store",
                "X-Seconds": f"{seconds:.3f}",
                "X-Model": name,
                "Content-Disposition": f'inline; filename="neuralens-{name}.png"',
            },
        )
