"""The webcam stream: ``/ws/webcam``, a WebSocket on which the page sends camera frames and the server
answers each with the stylized frame.

Protocol (JSON text messages one way or the other, frames as binary messages):

- Connect to ``/ws/webcam?model=NAME&strength=0.8`` (the settings of ``LiveOptions``: ``model``, or a
  painting for the arbitrary-style engine as ``painting=ID`` from ``POST /api/paintings`` or
  ``painting_sample=NAME``, and ``strength``, ``preserve_color``, ``quality``). When the server has an
  access token it must come first: ``Authorization: Bearer`` (non-browser clients), ``?token=``, or a first
  text message ``{"token": "...", ...settings}`` (what the page does: browsers cannot set the header, and a
  token in a URL ends up in logs). A page of another site is refused (its ``Origin``), as on the API.
- The server answers ``{"type": "ready", "settings": {...}, "limits": {...}}``. Send frames (JPEG, PNG or
  WebP bytes; at most ``max_size`` pixels on the long side). Each frame is answered by
  ``{"type": "frame", "frame": N, "received", "answered", "dropped", "errors", "held_peak", "seconds":
  {"wait", "decode", "model", "encode"}}`` followed by the stylized JPEG of the same size as a binary message,
  or by ``{"type": "error", "frame": N, "error": "..."}`` (a frame that is not an image, say); the connection
  stays open. ``{"model": "other", "strength": 0.5}`` at any time changes the settings (answered by
  ``{"type": "settings", ...}`` or an error).
- Backpressure: the server holds at most one frame waiting per connection; a newer frame replaces it and
  the replaced one counts as dropped (``dropped``). Memory stays bounded however fast a client sends; a
  client that waits for each answer (the page keeps at most two frames in flight) loses none.
- Refusals are a ``{"type": "error"}`` message and then a close: 4401 (token), 4403 (cross-site).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections import deque
from typing import Any, Deque, Dict, Optional, Tuple

from fastapi import FastAPI, HTTPException, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from ..errors import NeuralensError
from ..options import check_value, parse_text, specs
from .live import Live, LiveOptions, encode, limits
from .security import same_origin, token_matches
from .uploads import decode_image

log = logging.getLogger(__name__)

AUTH_SECONDS = 10.0  # how long a connection may stay silent before sending its token
CLOSE_TOKEN, CLOSE_CROSS_SITE = 4401, 4403  # application close codes, after HTTP's 401 and 403
FPS_WINDOW = 20  # answers over which the server's frames/s is measured
SETTINGS = specs(LiveOptions)
IGNORED_KEYS = ("type", "token")
STYLE_KEYS = ("model", "painting", "painting_sample")


def parse_settings(values: Dict[str, Any], base: LiveOptions) -> LiveOptions:
    """``base`` with the settings of a query string (text values) or a JSON message (typed values)
    applied and checked. NeuralensError (naming the field) for an unknown name or a bad value."""
    changes = {}
    for name, value in values.items():
        if name in IGNORED_KEYS:
            continue
        spec = SETTINGS.get(name)
        if spec is None:
            raise NeuralensError(f"unknown setting {str(name)[:40]!r} (known: {', '.join(SETTINGS)})")
        if spec.kind == "str" and value is not None and not isinstance(value, str):
            raise NeuralensError(f"{name} must be text, got {str(value)[:40]}")
        if isinstance(value, str) and spec.kind != "str":
            value = parse_text(name, spec, value)
        elif isinstance(value, str) and spec.nullable and value.strip().lower() in ("", "none", "null"):
            value = None
        changes[name] = check_value(name, spec, value)
    chosen = [name for name in STYLE_KEYS if changes.get(name)]
    if len(chosen) == 1:  # a new style replaces the old one, whichever kind it was
        changes.update({other: None for other in STYLE_KEYS if other != chosen[0]})
    return dataclasses.replace(base, **changes).validate()


def _bearer(websocket: WebSocket) -> Optional[str]:
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


class Connection:
    """One webcam client: a reader task taking messages (the newest frame replaces a waiting one) and a
    worker task answering frames one at a time."""

    def __init__(self, websocket: WebSocket, live: Live, config):
        self.ws = websocket
        self.live = live
        self.config = config
        self.options = LiveOptions()
        self.pending: Optional[Tuple[int, bytes]] = None  # the one frame waiting: (number, bytes)
        self.next: Optional[Tuple[int, bytes]] = None  # the frame taken to be painted next (see take_next)
        self.busy = False  # a frame is being stylized
        self.wake = asyncio.Event()
        self.send_lock = asyncio.Lock()  # a frame's JSON and its image go out together
        self.received = self.answered = self.dropped = self.errors = 0
        self.held_peak = 0  # most frames held at once (waiting, taken, being stylized): never more than 2
        self.answer_times: Deque[float] = deque(maxlen=FPS_WINDOW)

    # --- sending -----------------------------------------------------------------------------------
    async def send(self, message: dict, image: Optional[bytes] = None) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(message))
            if image is not None:
                await self.ws.send_bytes(image)

    async def refuse(self, code: int, message: str) -> None:
        await self.send({"type": "error", "error": message})
        await self.ws.close(code=code, reason=message[:120])

    def counters(self) -> dict:
        return {
            "received": self.received,
            "answered": self.answered,
            "dropped": self.dropped,
            "errors": self.errors,
            "held_peak": self.held_peak,
        }

    # --- the connection ----------------------------------------------------------------------------
    async def serve(self) -> None:
        await self.ws.accept()
        if not same_origin(self.ws):
            return await self.refuse(
                CLOSE_CROSS_SITE, "cross-site WebSocket refused: use the page served by this server"
            )
        params = dict(self.ws.query_params)
        token = params.pop("token", None) or _bearer(self.ws)
        first: Dict[str, Any] = {}
        if self.config.token and token is None:
            try:
                message = await asyncio.wait_for(self.ws.receive(), AUTH_SECONDS)
            except asyncio.TimeoutError:
                message = {"type": "websocket.receive"}
            if message["type"] == "websocket.disconnect":
                return
            try:
                first = json.loads(message.get("text") or "")
            except ValueError:
                first = {}
            first = first if isinstance(first, dict) else {}
            token = first.get("token") if isinstance(first.get("token"), str) else None
        if self.config.token and not token_matches(self.config.token, token):
            required = 'an access token is required: send it in the first message as {"token": "..."}'
            return await self.refuse(CLOSE_TOKEN, required if token is None else "wrong access token")
        for values in (params, first):
            if values:
                await self.change(values, announce=False)
        await self.send({"type": "ready", "settings": self.options.to_dict(), "limits": limits(self.config)})
        worker = asyncio.create_task(self.work())
        try:
            await self.read()
        finally:
            worker.cancel()
            try:
                await worker
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 -- the client is gone either way
                pass

    async def read(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, WebSocketDisconnected, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                self.offer(message["bytes"])
            elif message.get("text") is not None:
                try:
                    values = json.loads(message["text"])
                except ValueError:
                    values = None
                if not isinstance(values, dict):
                    await self.send({"type": "error", "error": "a text message must be a JSON object of settings"})
                    continue
                await self.change(values)

    async def change(self, values: Dict[str, Any], announce: bool = True) -> None:
        """Apply settings; an error message (and the old settings kept) when they are refused."""
        try:
            options = parse_settings(values, self.options)
            style = options.style()
            if style is not None:
                self.live.check_style(style)
        except HTTPException as exc:
            return await self.send({"type": "error", "error": str(exc.detail)})
        except NeuralensError as exc:
            return await self.send({"type": "error", "error": str(exc)})
        self.options = options
        if announce:
            await self.send({"type": "settings", "settings": options.to_dict()})

    def offer(self, data: bytes) -> None:
        """A new frame: painted next when the worker is free, else it waits, replacing (dropping) any frame
        still waiting. (Two frames often arrive together, before the worker task has run: the first one is
        taken at once, so the second does not replace it.)"""
        self.received += 1
        if self.next is None and not self.busy:
            self.next = (self.received, data)  # the worker is free: this one will be painted
        else:
            if self.pending is not None:
                self.dropped += 1
            self.pending = (self.received, data)
        held = (self.pending is not None) + (self.next is not None) + self.busy
        self.held_peak = max(self.held_peak, held)
        self.wake.set()

    async def work(self) -> None:
        while True:
            if self.next is None:
                if self.pending is None:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                self.next, self.pending = self.pending, None
            (number, data), self.next = self.next, None
            try:
                await self.answer(number, data)
            except (WebSocketDisconnect, WebSocketDisconnected, RuntimeError):
                return

    def take_next(self) -> None:
        """Commit to the waiting frame before an answer goes out: the client sends a new frame as soon as it
        has the answer, and that one must wait behind this frame, not replace it (without this, the page's
        two frames in flight lost a frame now and then in the browser test)."""
        if self.next is None and self.pending is not None:
            self.next, self.pending = self.pending, None

    async def answer(self, number: int, data: bytes) -> None:
        options, style = self.options, self.options.style()
        if style is None:
            self.errors += 1
            self.take_next()
            return await self.send(
                {"type": "error", "frame": number, "error": "choose a style first: a built-in model or a painting"}
            )
        queued = time.perf_counter()
        self.busy = True
        try:
            async with self.live.gate:
                started = time.perf_counter()
                image, seconds = await run_in_threadpool(self.stylize, number, data, style, options)
        except (HTTPException, NeuralensError) as exc:
            self.errors += 1
            self.take_next()
            detail = exc.detail if isinstance(exc, HTTPException) else exc
            return await self.send({"type": "error", "frame": number, "error": str(detail)})
        finally:
            self.busy = False
        self.take_next()
        self.answered += 1
        now = time.perf_counter()
        self.answer_times.append(now)
        times = self.answer_times
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
        seconds["wait"] = started - queued
        message = {"type": "frame", "frame": number, **self.counters(), "fps": fps, "seconds": seconds}
        await self.send(message, image)

    def stylize(self, number: int, data: bytes, style, options: LiveOptions) -> Tuple[bytes, Dict[str, float]]:
        """Decode, stylize and encode one frame (in a worker thread). Returns (JPEG, seconds per stage)."""
        t0 = time.perf_counter()
        image = decode_image(data, f"frame {number}", self.config.max_pixels)
        if max(image.size) > self.config.max_size:
            raise NeuralensError(
                f"frame {number}: {image.width}x{image.height} px is over this server's limit of "
                f"{self.config.max_size} px on the long side (the page sends 320x240)"
            )
        t1 = time.perf_counter()
        out, model_seconds = self.live.render(style, image, options, None)
        t2 = time.perf_counter()
        jpeg = encode(out, "jpeg", options.quality)
        t3 = time.perf_counter()
        return jpeg, {"decode": t1 - t0, "model": model_seconds, "render": t2 - t1, "encode": t3 - t2}


def register(app: FastAPI, config) -> None:
    """Add the ``/ws/webcam`` WebSocket route to ``app`` (its ``state.live`` holds the ``Live``)."""

    @app.websocket("/ws/webcam")
    async def webcam(websocket: WebSocket) -> None:
        try:
            await Connection(websocket, websocket.app.state.live, config).serve()
        except (WebSocketDisconnect, WebSocketDisconnected):
            pass  # the client went away mid-message: nothing to answer
        except Exception as exc:  # noqa: BLE001 -- a bug must not end without a word to the client
            log.exception("webcam stream failed")
            try:
                await websocket.send_text(
                    json.dumps({"type": "error", "error": f"internal error: {type(exc).__name__}"})
                )
                await websocket.close(code=1011)
            except Exception:  # noqa: BLE001 -- already closed
                pass
