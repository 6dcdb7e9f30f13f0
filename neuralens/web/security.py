"""Access control for the web app: the token, cross-site request refusal, and a request-size cap.

- The token (when configured) must come with every API call as ``Authorization: Bearer <token>``; it is
  compared in constant time.
- A page on another site can make a browser POST a form to 127.0.0.1 (a "simple" request needs no CORS
  preflight). State-changing calls whose ``Origin`` is another site are therefore refused, so a server
  bound to localhost without a token cannot be driven by whatever web page happens to be open.
- Starlette spools an entire multipart body to disk before any handler sees it, so the byte limit on
  uploads is enforced on the raw request stream as well (``BodyLimit``), not only per file.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ..errors import NeuralensError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
bearer = HTTPBearer(auto_error=False, description="The server's access token (`neuralens serve --token`)")


class Error(BaseModel):
    """Every error the server answers: one line saying what is wrong."""

    error: str = Field(..., description="what went wrong, in one line")


# What each error status means in this API (docs/web.md, "Safety"). ``error_responses`` turns a list of
# statuses into FastAPI's ``responses=`` with the shared model, so the schema says what really comes back.
ERROR_MEANINGS = {
    400: "malformed request (a missing or badly typed field, a value outside the schema's limits)",
    401: "missing or wrong access token",
    403: "cross-site request refused",
    404: "not found",
    409: "conflict: the resource does not exist (yet)",
    413: "too many bytes or pixels",
    415: "an upload that is not a supported image",
    422: "a value the library refuses (its one-line message)",
    429: "the queue is full: retry later",
}


def error_responses(*statuses: int, **meanings: str) -> Dict[Any, Dict[str, Any]]:
    """``responses=`` for FastAPI: each status with the shared ``Error`` model and its meaning
    (``meanings`` overrides it, keyed ``e404="no job with that id"``)."""
    return {
        status: {"model": Error, "description": meanings.get(f"e{status}", ERROR_MEANINGS[status])}
        for status in statuses
    }


def is_loopback(host: str) -> bool:
    """True for addresses that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: Optional[str]) -> None:
    """Refuse to serve on a non-loopback address without a token (raises NeuralensError)."""
    if not is_loopback(host) and not token:
        raise NeuralensError(
            f"binding to {host} makes the server reachable from other machines: set an access "
            "token with --token or NEURALENS_TOKEN (or bind to 127.0.0.1)"
        )
    if token is not None and len(token) < 8:
        raise NeuralensError("the access token must be at least 8 characters long")


def token_matches(expected: str, given: Optional[str]) -> bool:
    """Constant-time comparison (a plain == would leak how many leading characters were right)."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from a page on another site."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin != "null"
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def api_guard(token: Optional[str]):
    """A FastAPI dependency for every /api route: cross-site writes refused, the token checked when set.

    With a token it is declared through the HTTP bearer security scheme, so /docs shows an "Authorize"
    button; without one the schema declares no security at all (there is nothing to send)."""

    def refuse_cross_site(request: Request) -> None:
        if request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin(request):
            raise HTTPException(403, "cross-site request refused: use the page served by this server")

    if token is None:

        async def open_guard(request: Request) -> None:
            refuse_cross_site(request)

        return open_guard

    async def guard(request: Request, credentials: Optional[HTTPAuthorizationCredentials] = Security(bearer)) -> None:
        refuse_cross_site(request)
        given = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
        if not token_matches(token, given):
            message = (
                "an access token is required: send 'Authorization: Bearer <token>'"
                if given is None
                else "wrong access token"
            )
            raise HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})

    return guard


def host_of(header: str) -> str:
    """The host part of a Host header: 'example.org:8000' -> 'example.org', '[::1]:8000' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostGuard:
    """ASGI middleware: answer 400 (JSON) to requests whose Host header is not one of ``allowed``.

    On a loopback server this defeats DNS rebinding: a page from evil.example whose name is made to resolve
    to 127.0.0.1 still sends ``Host: evil.example``."""

    def __init__(self, app, allowed):
        self.app = app
        self.allowed = {name.strip("[]").lower() for name in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if host_of(host) not in self.allowed and scope["type"] == "websocket":
                # A WebSocket handshake is refused by closing it before it is accepted (HTTP 403).
                await send({"type": "websocket.close", "code": 1008, "reason": "unexpected Host header"})
                return
            if host_of(host) not in self.allowed:
                body = b'{"error": "unexpected Host header: this server answers only to its own address"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a request body passes the limit."""


class BodyLimit:
    """ASGI middleware: answer 413 to any request whose body is longer than ``max_bytes``."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(send)
        seen = 0
        state = {"over": False, "answered": False}

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    state["over"] = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message):
            # Once the limit is passed, whatever the app answers (FastAPI turns the exception into a
            # generic 400 "error parsing the body") is replaced by one clear 413.
            if state["over"]:
                if not state["answered"]:
                    state["answered"] = True
                    await self._refuse(send)
                return
            state["answered"] = state["answered"] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        if state["over"] and not state["answered"]:
            await self._refuse(send)

    async def _refuse(self, send) -> None:
        body = b'{"error": "request too large: the limit is %d bytes in all"}' % self.max_bytes
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
