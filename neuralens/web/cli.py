"""`neuralens serve`: run the web app and API with uvicorn."""

from __future__ import annotations

import argparse
import os
import secrets

from .. import devices, options
from ..distributed.options import QueueOptions
from ..errors import NeuralensError

TOKEN_ENV = "NEURALENS_TOKEN"

SERVE_EXAMPLES = """examples:
  neuralens serve                                   (http://127.0.0.1:8000, this machine only)
  neuralens serve --port 8080 --gallery ~/faces.sqlite3
  NEURALENS_TOKEN=$(openssl rand -hex 16) neuralens serve --host 0.0.0.0   (reachable by others; token required)
  neuralens serve --host 0.0.0.0 --token generate   (prints a fresh random token)
  neuralens serve --broker redis://127.0.0.1:6379/0 --jobs 4   (jobs on `neuralens worker` processes)
"""


def register(subparsers) -> None:
    """Add the `serve` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="start the local web app and HTTP API",
        description="Serve a page (style transfer with live previews; face enrolment and search) and its JSON "
        "API, documented at /docs. Binds to 127.0.0.1 unless told otherwise; any other address "
        "needs an access token.",
        epilog=SERVE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 picks a free one)")
    p.add_argument(
        "--token",
        default=None,
        help=f"access token required on every API call (default: ${TOKEN_ENV}); 'generate' makes one",
    )
    p.add_argument(
        "--device",
        choices=devices.DEVICES,
        default="auto",
        help="where style jobs run (default %(default)s)",
    )
    p.add_argument(
        "--gallery",
        default=None,
        help="faces gallery file, or postgresql://... for the shared PostgreSQL gallery "
        "(default: $NEURALENS_GALLERY or the user data folder)",
    )
    p.add_argument("--jobs", type=int, default=1, help="style jobs running at once (default %(default)s)")
    p.add_argument(
        "--queue", type=int, default=4, help="style jobs allowed to wait; more are refused (default %(default)s)"
    )
    p.add_argument(
        "--preview-every",
        type=int,
        default=5,
        metavar="N",
        help="send an intermediate image every N loss evaluations (default %(default)s)",
    )
    p.add_argument(
        "--max-size", type=int, default=1024, help="largest output size a job may ask for (default %(default)s)"
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=20, help="largest upload per file in MB (default %(default)s)"
    )
    options.add_arguments(
        p.add_argument_group("jobs on a job queue: style, video, training (--jobs: style jobs at once)"), QueueOptions
    )
    p.set_defaults(func=serve)


def _check_shared_gallery(gallery) -> None:
    """A PostgreSQL gallery (``--gallery`` or ``$NEURALENS_GALLERY``) is reached once before the server
    starts, so a wrong URL, a server that is down or a missing extra stops it in one line instead of
    failing every faces request. A gallery file is left to the first request, as before."""
    from ..faces.gallery import gallery_target, open_gallery  # noqa: PLC0415

    target = gallery_target(gallery)
    if isinstance(target, str):
        open_gallery(target, timeout=10).close()


def serve(args: argparse.Namespace) -> int:
    """Check the binding, build the app, run uvicorn until Ctrl-C."""
    # FastAPI is imported here, not with the module: other commands start without it (about 1 s less).
    from .security import LOOPBACK_NAMES, check_bind, is_loopback  # noqa: PLC0415

    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    if token == "generate":
        token = secrets.token_urlsafe(18)
    check_bind(args.host, token)
    if args.port < 0 or args.port > 65535:
        raise NeuralensError(f"port must be between 0 and 65535, got {args.port}")
    for flag, value, least in (
        ("--jobs", args.jobs, 1),
        ("--queue", args.queue, 0),
        ("--preview-every", args.preview_every, 1),
        ("--max-size", args.max_size, 16),
    ):
        if value < least:
            raise NeuralensError(f"{flag} must be at least {least}, got {value}")
    if args.max_upload_mb <= 0:
        raise NeuralensError("--max-upload-mb must be > 0")

    queue = QueueOptions(args.broker, args.storage).validate()
    _check_shared_gallery(args.gallery)

    import uvicorn  # noqa: PLC0415 -- only this command needs the server

    from .app import WebConfig, create_app  # noqa: PLC0415

    # On loopback, only loopback Host headers are accepted (DNS-rebinding guard); elsewhere the token guards.
    hosts = LOOPBACK_NAMES + (args.host,) if is_loopback(args.host) else None
    config = WebConfig(
        token=token,
        device=args.device,
        gallery=args.gallery,
        workers=args.jobs,
        max_queue=args.queue,
        max_size=args.max_size,
        preview_every=args.preview_every,
        max_upload_bytes=int(args.max_upload_mb * 1_000_000),
        allowed_hosts=hosts,
        broker=queue.broker,
        storage=queue.storage,
    )
    app = create_app(config)
    # A short graceful-shutdown timeout: open progress streams must not hold up Ctrl-C.
    uvicorn_config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3
    )
    server = _server_class()(uvicorn_config)
    server.token_note = (
        (f"access token: {token}" if args.token == "generate" else "access token required (the page asks for it once)")
        if token
        else None
    )
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: a normal stop here
        pass
    print("stopped; the results of this session were deleted", flush=True)
    return 0


def _server_class():
    import uvicorn  # noqa: PLC0415

    class Server(uvicorn.Server):
        """uvicorn's server, printing the real address once listening (it picks the port when given 0)."""

        token_note = None

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            for listener in getattr(self, "servers", [])[:1]:
                for sock in listener.sockets[:1]:
                    host, port = sock.getsockname()[:2]
                    shown = f"[{host}]" if ":" in host else host
                    print(f"neuralens is serving at http://{shown}:{port}/  (API docs at /docs)", flush=True)
            if self.token_note:
                print(self.token_note, flush=True)
            print("press Ctrl-C to stop", flush=True)

    return Server
