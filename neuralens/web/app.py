"""The web app: ``create_app(...)`` builds a FastAPI application serving the page and the JSON API.

    from neuralens.web import create_app
    app = create_app(token="a-long-secret")      # then: uvicorn.run(app, host=..., port=...)

The page (``static/``) and the bundled samples are public; everything under ``/api`` goes through the
guard (token, cross-site refusal). Every error leaves as JSON ``{"error": "..."}`` with a 4xx status
(or 500 for a bug), and the server keeps serving.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, devices
from ..errors import NeuralensError
from . import faces_api, style_api
from .jobs import JobManager, QueueFull
from .security import BodyLimit, HostGuard, api_guard
from .style_api import samples
from .uploads import UploadError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class WebConfig:
    """Settings of one server. The limits protect the machine from oversized or too many requests."""

    token: Optional[str] = None             # required on every API call when set
    device: str = "auto"                    # where style jobs run
    gallery: Optional[str] = None           # faces gallery file (default: the faces default)
    workers: int = 1                        # jobs running at once (one per device by default)
    max_queue: int = 4                      # jobs allowed to wait; more get 429
    preview_every: int = 5                  # an intermediate image every N loss evaluations
    max_upload_bytes: int = 20_000_000      # per uploaded file
    max_pixels: int = 40_000_000            # per uploaded image
    max_files: int = 8                      # per request (content + styles, or enrolment photos)
    max_size: int = 1024                    # largest output long side a job may ask for
    max_iterations: int = 1000
    allowed_hosts: Optional[Tuple[str, ...]] = None  # Host headers accepted (None: any)

    @property
    def max_request_bytes(self) -> int:
        return self.max_upload_bytes * self.max_files + 1_000_000  # the files plus room for the form fields


def _validation_message(exc: RequestValidationError) -> str:
    """One line naming each bad field, e.g. "size: Input should be a valid integer"."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "form"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "bad request: " + "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse({"error": _validation_message(exc)}, status_code=400)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull):
        return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": "10"})

    @app.exception_handler(NeuralensError)
    async def user_error(request: Request, exc: NeuralensError):
        # The Python API's one-line messages: the request was understood but its content is unusable.
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


def create_app(config: Optional[WebConfig] = None, **settings) -> FastAPI:
    """Build the app. Takes a ``WebConfig`` and/or its fields as keywords (``token=..., max_queue=...``).
    The job worker starts with the app (its lifespan) and the results folder is deleted when it stops."""
    config = dataclasses.replace(config or WebConfig(), **settings)
    devices.pick_device(config.device)  # fail now, not on the first job, when the device is missing
    manager = JobManager(workers=config.workers, max_queue=config.max_queue, preview_every=config.preview_every)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        manager.start()
        try:
            yield
        finally:
            manager.shutdown()

    app = FastAPI(
        title="neuralens", version=__version__, lifespan=lifespan,
        description="Neural style transfer with live previews, and face enrolment and search, over HTTP. "
                    "When the server has a token, send it as `Authorization: Bearer <token>`.")
    app.state.config = config
    app.state.manager = manager
    _install_error_handlers(app)
    if config.allowed_hosts:
        # Guards a localhost server against DNS rebinding (a foreign name resolving to 127.0.0.1).
        app.add_middleware(HostGuard, allowed=config.allowed_hosts)
    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)

    api = APIRouter(prefix="/api", dependencies=[Depends(api_guard(config.token))])

    @api.get("/info", summary="Server version, device, limits and bundled samples")
    def info() -> dict:
        fields = ("workers", "max_queue", "preview_every", "max_upload_bytes", "max_pixels", "max_files",
                  "max_size", "max_iterations")
        return {"version": __version__, "device": str(devices.pick_device(config.device)),
                "limits": {name: getattr(config, name) for name in fields},
                "samples": [{"name": name, "url": f"/samples/{name}"} for name in samples()]}

    style_api.register(api, manager, config)
    faces_api.register(api, config)
    app.include_router(api)
    _add_page_routes(app)
    return app


def _add_page_routes(app: FastAPI) -> None:
    """The page, its assets and the sample thumbnails: public, read-only, and loading nothing external."""
    thumbnails: Dict[str, bytes] = {}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/samples/{name}", include_in_schema=False)
    def sample(name: str) -> Response:
        known = samples()
        if name not in known:  # a lookup in the listing: no request string is ever joined to a path
            raise StarletteHTTPException(404, f"no sample called {name[:40]!r}")
        if name not in thumbnails:
            with Image.open(known[name]) as image:
                image = image.convert("RGB")
                image.thumbnail((512, 512))
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=88)
            thumbnails[name] = buffer.getvalue()
        return Response(thumbnails[name], media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
