"""What the live preview (``POST /api/fast``) and the webcam (``/ws/webcam``) share: the style a request
names, the caches that make a repeated request cheap, and the one place where a model runs.

- A style is a built-in feed-forward model (by name, as in ``models_api``) or a painting for the
  arbitrary-style engine (``neuralens.fast.load_arbitrary``), identified by the hash of its uploaded bytes
  (or ``sample:NAME`` for a bundled one). A painting's style code (``encode_style``: one VGG pass) is computed
  once and kept (``PAINTINGS_CACHED`` of them), so moving a slider costs one stylization, not two passes.
- Uploaded photos are kept decoded, keyed by the hash of their bytes and shrunk to the server's largest size,
  so that a preview request repeated with another strength does not decode a 12-megapixel JPEG again.
- Every model run takes ``ModelCache.run_lock`` (the lock ``POST /api/models/{name}/stylize`` takes): one
  stylization at a time in the whole process, since each already uses every core. Async callers first queue
  on ``gate`` (an asyncio lock, FIFO) so that a request whose client went away while waiting is skipped
  without running, and so the event loop never blocks on the thread lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import io
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, Optional, Tuple

from PIL import Image

from ..errors import NeuralensError
from ..fast.apply import ApplyOptions
from ..imageio import load_image
from ..options import check, option, specs
from .models_api import builtin_file
from .style_api import samples, shrink

PREVIEW_SIZE = 384  # long side of a live preview: ~0.1-0.2 s per built-in model pass on 2 cores
WEBCAM_SIZE = (320, 240)  # what the page sends: the 10 frames/s target of issue 12 is at this size
PAINTINGS_CACHED = 16  # style codes kept (a few KB each: channel statistics)
CONTENTS_CACHED = 4  # decoded photos kept (at most max_size x max_size x 3 bytes each)
PAINTING_ID = r"^[0-9a-f]{32}$"

_APPLY = specs(ApplyOptions)


def _check_id(value: Optional[str]) -> None:
    if value is not None and not re.fullmatch(PAINTING_ID, value):
        raise NeuralensError(f"must be a painting id (32 hex digits from POST /api/paintings), got {value[:40]!r}")


@dataclass
class LiveOptions:
    """The settings of a live stream (the webcam's query string or a JSON message; ``POST /api/fast`` takes
    the same names as form fields)."""

    model: Optional[str] = option(None, "a built-in style model by name (GET /api/models)", none_help="none")
    painting: Optional[str] = option(
        None,
        "a painting for the arbitrary-style engine: the id POST /api/paintings answered",
        none_help="none",
        check=_check_id,
    )
    painting_sample: Optional[str] = option(None, "a bundled painting for the arbitrary-style engine", none_help="none")
    strength: float = option(1.0, _APPLY["strength"].help, minimum=0, maximum=1)
    preserve_color: Optional[str] = option(
        None, _APPLY["preserve_color"].help, choices=_APPLY["preserve_color"].choices, none_help="off"
    )
    quality: int = option(80, "JPEG quality of the answers (higher: larger frames)", minimum=10, maximum=95)

    def validate(self) -> LiveOptions:
        """Check every field (OptionError naming the first bad one); at most one style. Returns self."""
        check(self)
        given = [name for name in ("model", "painting", "painting_sample") if getattr(self, name)]
        if len(given) > 1:
            raise NeuralensError(f"give one style, not {' and '.join(given)}")
        return self

    def style(self) -> Optional[Tuple[str, str]]:
        """The chosen style as ('model', name) or ('painting', key); None when none is chosen yet."""
        if self.model:
            return ("model", self.model)
        if self.painting:
            return ("painting", self.painting)
        if self.painting_sample:
            return ("painting", sample_key(self.painting_sample))
        return None

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in specs(self)}


def sample_key(name: str) -> str:
    """The painting key of a bundled sample; NeuralensError unless it is one."""
    if name not in samples():
        raise NeuralensError(f"no bundled sample called {name[:40]!r} (available: {', '.join(samples())})")
    return f"sample:{name}"


def digest(data: bytes) -> str:
    """The id of uploaded bytes: 32 hex digits of their SHA-256 (the same file always gets the same id)."""
    return hashlib.sha256(data).hexdigest()[:32]


class LRU:
    """A small thread-safe least-recently-used mapping of at most ``size`` entries."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def load_engine(device: str):
    """The arbitrary-style engine (``neuralens.fast.load_arbitrary``, cached there). NeuralensError when this
    neuralens has none or its decoder cannot be loaded."""
    try:
        from ..fast import load_arbitrary  # noqa: PLC0415 -- loads VGG19 and the decoder: only when asked
    except ImportError:
        raise NeuralensError("this server has no arbitrary-style engine (neuralens.fast.arbitrary)") from None
    return load_arbitrary(device=device)


class Engine:
    """The arbitrary-style engine, loaded on first use with ``loader(device)`` (tests hand in a stand-in).
    A failed load is not remembered: the decoder may be installed while the server runs."""

    def __init__(self, device: str = "auto", loader: Optional[Callable[[str], Any]] = None):
        self.device = device
        self.loader = loader or load_engine
        self._model = None
        self._lock = threading.Lock()

    def installed(self) -> bool:
        """Whether the engine and its decoder weights are there (without loading them)."""
        if self.loader is not load_engine or self._model is not None:
            return True
        if importlib.util.find_spec("neuralens.fast.arbitrary") is None:
            return False
        shipped = getattr(importlib.import_module("neuralens.fast.arbitrary"), "SHIPPED", None)
        return shipped is None or Path(shipped).is_file()

    def get(self):
        with self._lock:
            if self._model is None:
                self._model = self.loader(self.device)
            return self._model


class Live:
    """The shared state of live previews and webcam streams of one app (``app.state.live``)."""

    def __init__(self, state, config, engine: Optional[Engine] = None):
        self.state = state  # app.state: ``state.models`` is the ModelCache (tests may replace it)
        self.config = config
        self.engine = engine or Engine(config.device)
        self.paintings = LRU(PAINTINGS_CACHED)  # key -> style code
        self.contents = LRU(CONTENTS_CACHED)  # digest -> decoded photo, at most max_size on its long side
        self._gate: Optional[asyncio.Lock] = None
        self.runs = 0  # model runs so far (tests and the benchmark read it)

    @property
    def gate(self) -> asyncio.Lock:
        """The FIFO queue of async callers for the model (created in the running event loop)."""
        if self._gate is None:
            self._gate = asyncio.Lock()
        return self._gate

    @property
    def run_lock(self) -> threading.Lock:
        return self.state.models.run_lock

    # --- styles ------------------------------------------------------------------------------------
    def check_style(self, style: Tuple[str, str]) -> None:
        """Raise (HTTPException 404 for an unknown built-in model, NeuralensError for an unknown painting)
        unless the style can be used now."""
        kind, key = style
        if kind == "model":
            builtin_file(key)
        elif key not in self.paintings and not key.startswith("sample:"):
            raise NeuralensError(f"no painting {key[:40]!r} on this server (upload it with POST /api/paintings)")

    def add_painting(self, key: str, image: Optional[Image.Image]) -> Tuple[str, float]:
        """Make sure the style code of painting ``key`` is cached, computing it from ``image`` (or the bundled
        sample the key names) when it is not. Returns (key, seconds spent encoding). Runs the model: call it
        from a worker thread."""
        if key in self.paintings:
            return key, 0.0
        if image is None:
            name = key.split(":", 1)[1]
            image = load_image(samples()[name])
        engine = self.engine.get()
        # The engine resizes the painting itself; a huge upload is shrunk first so the copy kept is small.
        image = shrink(image, self.config.max_size)
        with self.run_lock:
            started = time.perf_counter()
            code = engine.encode_style(image)
            seconds = time.perf_counter() - started
        self.paintings.put(key, code)
        return key, seconds

    # --- photos ------------------------------------------------------------------------------------
    def sample(self, name: str) -> Image.Image:
        """A bundled sample photo, decoded once (NeuralensError unless ``name`` is one)."""
        key = sample_key(name)
        image = self.contents.get(key)
        if image is None:
            image = shrink(load_image(samples()[name]), self.config.max_size)
            self.contents.put(key, image)
        return image

    def content(self, data: bytes, decode: Callable[[bytes], Image.Image]) -> Image.Image:
        """The decoded photo of upload ``data`` (``decode(data)`` on a miss), kept for the next request."""
        key = digest(data)
        image = self.contents.get(key)
        if image is None:
            image = shrink(decode(data), self.config.max_size)
            self.contents.put(key, image)
        return image

    # --- running -----------------------------------------------------------------------------------
    def render(
        self, style: Tuple[str, str], image: Image.Image, options: LiveOptions, size: Optional[int]
    ) -> Tuple[Image.Image, float]:
        """Stylize ``image`` (long side ``size``, or its own) with ``style``; returns (image, seconds the model
        took). Blocks on the process-wide run lock: call it from a worker thread, never the event loop."""
        kind, key = style
        preserve = options.preserve_color
        if kind == "model":
            model = self.state.models.get(key)
            with self.run_lock:
                started = time.perf_counter()
                out = model.stylize(image, options.strength, preserve, size)
                seconds = time.perf_counter() - started
                self.runs += 1
        else:
            if key not in self.paintings:
                self.add_painting(key, None)  # a bundled sample (uploads were cached by check_style's caller)
            code = self.paintings.get(key)
            if code is None:
                raise NeuralensError("the painting was forgotten by the server: upload it again")
            engine = self.engine.get()
            with self.run_lock:
                started = time.perf_counter()
                out = engine.stylize(image, code, strength=options.strength, size=size, preserve_color=preserve)
                seconds = time.perf_counter() - started
                self.runs += 1
        return out, seconds


def encode(image: Image.Image, kind: str = "jpeg", quality: int = 90) -> bytes:
    """The image as JPEG (fast and small: previews and frames) or PNG (fast zlib level)."""
    buffer = io.BytesIO()
    if kind == "png":
        image.save(buffer, format="PNG", compress_level=1)
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def limits(config) -> Dict[str, Any]:
    """What a live client needs to know about this server's limits."""
    return {"max_size": config.max_size, "max_upload_bytes": config.max_upload_bytes, "preview_size": PREVIEW_SIZE}
