"""The web app: ``create_app(...)`` builds a FastAPI application serving the page and the JSON API.

    from neuralens.web import create_app
    app = create_app(token="a-long-secret")      # then: uvicorn.run(app, host=..., port=...)

The page (``static/``), the bundled samples and the API docs (``/docs``, with Swagger UI's files served
from the ``fastapi-offline`` package, so it works offline) are public; everything under ``/api``
goes through the guard (token, cross-site refusal). Every error leaves as JSON ``{"error": "..."}`` with a
4xx status (or 500 for a bug), and the server keeps serving. The OpenAPI schema says so: every error
status a route can answer is declared with that shape, and the bearer scheme only when there is a token.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, devices
from ..errors import NeuralensError
from ..options import OptionError, check_value, parse_text
from . import faces_api, health_api, live_api, models_api, style_api, video_api, webcam
from .classify_api import register as register_classify
from .jobs import JobManager, QueueFull, run_style_transfer
from .live import Live
from .metrics import Metrics, RequestMetrics
from .security import ERROR_MEANINGS, BodyLimit, Error, HostGuard, api_guard
from .shapes import OptionField
from .style_api import sample_list, samples
from .style_form import WEB_SPECS, option_fields, web_choices
from .uploads import UploadError

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
DOCS_ASSETS = "/docs-assets"  # Swagger UI, from the fastapi-offline package


@dataclass
class WebConfig:
    """Settings of one server. The limits protect the machine from oversized or too many requests."""

    token: Optional[str] = None  # required on every API call when set
    device: str = "auto"  # where style jobs run
    gallery: Optional[str] = None  # faces gallery file (default: the faces default)
    workers: int = 1  # jobs running at once (one per device by default)
    max_queue: int = 4  # jobs allowed to wait; more get 429
    preview_every: int = 5  # an intermediate image every N loss evaluations
    max_upload_bytes: int = 20_000_000  # per uploaded file
    max_pixels: int = 40_000_000  # per uploaded image
    max_files: int = 8  # per request (content + styles, or enrolment photos)
    max_size: int = 1024  # largest output long side a job may ask for
    max_iterations: int = 1000
    allowed_hosts: Optional[Tuple[str, ...]] = None  # Host headers accepted (None: any)
    broker: Optional[str] = None  # style, video and training jobs run on this Redis queue's workers (docs/scale-out.md)
    storage: Optional[str] = None  # the queue's shared storage (with broker)

    @property
    def max_request_bytes(self) -> int:
        return self.max_upload_bytes * self.max_files + 1_000_000  # the files plus room for the form fields


class Sample(BaseModel):
    name: str
    url: str
    kind: Optional[Literal["content", "style"]]
    title: str


class Info(BaseModel):
    version: str
    device: str
    limits: Dict[str, int]
    samples: List[Sample]
    options: List[OptionField]


def _option_message(name: str, value: Any) -> Optional[str]:
    """The options' own message for a bad form value of option ``name`` (as the CLI and the Python API
    word it, naming the field), or None when it cannot say."""
    spec = WEB_SPECS.get(name)
    if spec is None or not isinstance(value, str):
        return None
    try:
        parsed = parse_text(name, spec, value)
        choices = web_choices(name, spec)
        if choices is not None and parsed not in choices:
            return f"{name} must be one of {', '.join(str(c) for c in choices)}, got {value[:60]!r}"
        check_value(name, spec, parsed)
    except OptionError as exc:
        return str(exc)
    return None


def _validation_message(exc: RequestValidationError) -> str:
    """One line naming each bad field, e.g. "size must be a whole number > 0, got -4"."""
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "form")]
        where = ".".join(loc)
        own = _option_message(loc[-1], err.get("input")) if len(loc) == 1 else None
        parts.append(own or f"{where or 'request'}: {err.get('msg', 'invalid')}")
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
    runner, video_runner, trainer = run_style_transfer, None, None  # None: the library's, in this process
    probe = None
    if config.broker is not None:  # the queue's client only when asked: the default needs no Redis
        from ..distributed.health import BrokerProbe  # noqa: PLC0415
        from ..distributed.options import QueueOptions  # noqa: PLC0415
        from ..distributed.web import QueueRunner, QueueTrainer, QueueVideoRunner  # noqa: PLC0415

        runner = QueueRunner(QueueOptions(config.broker, config.storage).validate())
        video_runner, trainer = QueueVideoRunner(runner.client), QueueTrainer(runner.client)  # one connection
        probe = BrokerProbe(config.broker)  # /readyz and /metrics: workers alive, the queue's length
    broker_status = probe.status if probe is not None else None
    metrics = Metrics(broker_status)
    manager = JobManager(
        workers=config.workers, max_queue=config.max_queue, preview_every=config.preview_every, runner=runner
    )
    videos = video_api.manager(config, manager.root, video_runner)  # its jobs' folders: in the style jobs' root
    metrics.watch(manager, "style")
    metrics.watch(videos, "video")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        manager.start()
        videos.start()
        try:
            yield
        finally:
            app.state.trainings.shutdown()  # the classifier project and trainings: likewise
            videos.shutdown()  # before the root it lives in is removed
            manager.shutdown()
            if probe is not None:
                probe.close()
                runner.close()  # the queue's connections (the video and training runners share them)

    description = (
        "Neural style transfer with live previews, real-time style with built-in models, and face enrolment "
        "and search, over HTTP."
    )
    if config.token:
        description += " This server has an access token: send it as `Authorization: Bearer <token>`."
    app = FastAPI(
        title="neuralens",
        version=__version__,
        lifespan=lifespan,
        description=description,
        docs_url=None,
        redoc_url=None,
    )
    app.state.config = config
    app.state.manager = manager
    app.state.metrics = metrics
    app.state.videos = videos
    app.state.video_limits = video_api.VideoLimits()
    app.state.models = models_api.ModelCache(config.device)  # built-in fast models, loaded on first use
    app.state.live = Live(app.state, config)  # live previews and the webcam: caches, the model queue
    _install_error_handlers(app)
    if config.allowed_hosts:
        # Guards a localhost server against DNS rebinding (a foreign name resolving to 127.0.0.1).
        app.add_middleware(HostGuard, allowed=config.allowed_hosts)
    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)
    app.add_middleware(RequestMetrics, counter=metrics.requests)  # outermost: refused requests count too

    api = APIRouter(prefix="/api", dependencies=[Depends(api_guard(config.token))])

    @api.get(
        "/info",
        summary="Server version, device, limits, bundled samples and the style options",
        response_model=Info,
        description="`options`: every option of `POST /api/jobs` with its kind, default, limits, choices "
        "and help (the page builds its settings from these).",
    )
    def info() -> dict:
        fields = (
            "workers",
            "max_queue",
            "preview_every",
            "max_upload_bytes",
            "max_pixels",
            "max_files",
            "max_size",
            "max_iterations",
        )
        return {
            "version": __version__,
            "device": str(devices.pick_device(config.device)),
            "limits": {name: getattr(config, name) for name in fields},
            "samples": sample_list(),
            "options": option_fields(),
        }

    style_api.register(api, manager, config)
    faces_api.register(api, config)
    models_api.register(api, config)
    live_api.register(api, config)
    # Classifier training: its project and jobs live in the style jobs' root, so they go with it.
    app.state.trainings = register_classify(api, config, manager.root / "classify", trainer)
    metrics.watch(app.state.trainings, "classify")
    video_api.register(api, videos, config)
    app.include_router(api)
    webcam.register(app, config)  # /ws/webcam: a WebSocket checks its token and Origin itself
    health_api.register(app, metrics, config.token, broker_status)  # /healthz, /readyz, /metrics
    _add_page_routes(app)
    _add_docs_routes(app)
    app.openapi = lambda: _openapi(app, config)
    return app


def _error_response(status: int) -> dict:
    return {
        "description": ERROR_MEANINGS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _openapi(app: FastAPI, config: WebConfig) -> dict:
    """FastAPI's schema, made to say what this server really answers:

    - a validation error is a 400 ``{"error": ...}`` here (see ``_install_error_handlers``), not FastAPI's
      422 ``HTTPValidationError``, which no route ever sends: that one is replaced;
    - the errors every route shares are added: 400 (bad input, or any request when the Host header is
      checked), 401 (token) on /api when there is a token, 403 on /api writes (cross-site), 413 where a
      body is taken. The routes declare their own (404, 409, 415, 422, 429) with ``responses=``."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
            extra = []
            if operation.get("parameters") or operation.get("requestBody") or config.allowed_hosts:
                extra.append(400)
            if path.startswith("/api/"):
                if config.token:
                    extra.append(401)
                if method not in ("get", "head", "options"):
                    extra.append(403)
            if operation.get("requestBody"):
                extra.append(413)
            for status in extra:
                responses.setdefault(str(status), _error_response(status))
            operation["responses"] = dict(sorted(responses.items()))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components["Error"] = Error.model_json_schema()
    app.openapi_schema = schema
    return schema


def _docs_assets() -> Optional[Path]:
    """The folder of Swagger UI's files shipped by the fastapi-offline package (None without it)."""
    found = importlib.util.find_spec("fastapi_offline")
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(list(found.submodule_search_locations)[0]) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _add_docs_routes(app: FastAPI) -> None:
    """/docs (Swagger UI), loading its script and styles from this server, never a CDN. (No /redoc: ReDoc's
    bundle fetches its logo from the vendor's site.)"""
    assets = _docs_assets()
    if assets is None:

        @app.get("/docs", include_in_schema=False)
        def no_docs() -> HTMLResponse:
            return HTMLResponse(
                "<!doctype html><title>neuralens API</title><p>The interactive docs need the "
                "<code>fastapi-offline</code> package. The schema is at "
                "<a href='/openapi.json'>/openapi.json</a>.</p>"
            )

        return

    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="neuralens API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            # no "valid schema" badge: it would ask a validator site about the schema
            swagger_ui_parameters={"validatorUrl": None},
        )


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
