"""Overlapping the stages of a video run in threads: decoding ahead, encoding and saving behind, flow beside the
network.

Every heavy stage of a frame runs in native code that releases the GIL (FFmpeg through PyAV, OpenCV's DIS flow and
remapping, numpy's array arithmetic, onnxruntime, zlib in Pillow's PNG encoder), so threads overlap them for real on
a few cores: while the network paints frame t, the flow of frame t towards t-1 is computed, frame t+1 is decoded
and frame t-1 is encoded and kept in the work folder. Measured at 320x240 on the 2-core machine
(benchmarks/video_speed.py, results/video_flicker_speed.md): the stages one after another take about 38 ms a frame
(the network 14, flow + mask + warp 13, the work folder's PNG 8), and overlapped the run makes about 20 frames/s
end to end where it made 11.

The order of the results never changes: one thread per stage, and each stage takes its work in order.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator, Optional, TypeVar

T = TypeVar("T")

_END = object()  # marks the end of a prefetched sequence


class _Failure:
    """An exception raised in a worker thread, carried to the thread that waits for the result."""

    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """``items`` produced by a background thread, at most ``depth`` ahead of the consumer; an exception raised
    while producing is raised here, where the item would have come. Closing the returned generator (or leaving a
    ``for`` loop over it early) stops the producer after the item it is making. Yields the items in order."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_END)
        except BaseException as exc:  # noqa: BLE001 -- handed to the consumer, which raises it
            buffer.put(_Failure(exc))

    thread = threading.Thread(target=produce, name="neuralens-video-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting for room, then let it see ``stop``
            try:
                buffer.get(timeout=0.1)
            except queue.Empty:
                pass
        close = getattr(items, "close", None)
        if close is not None:
            close()


class Background:
    """One worker thread running submitted calls in order, at most ``depth`` waiting (``submit`` blocks beyond
    that, so memory stays bounded when the worker is the slow stage). The first exception a call raises is
    raised again by the next ``submit`` or by ``wait``; the calls after it are skipped."""

    def __init__(self, name: str, depth: int = 8):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is _END:
                    return
                if self._error is None:
                    fn, args = job
                    fn(*args)
            except BaseException as exc:  # noqa: BLE001 -- raised again in the submitting thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; raises the error of an earlier call, if any."""
        self._raise()
        self._queue.put((fn, args))

    def wait(self) -> None:
        """Block until every queued call has run; raises the first error of one."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Run what is queued, stop the thread (safe to call twice); raises the first error of a call."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
        self._raise()


class Beside:
    """A single worker thread that computes one thing while the caller does another: ``start(fn, *args)``, then
    ``result()`` (the value, or the exception ``fn`` raised). Used for the flow of a frame while the network paints
    it."""

    def __init__(self, name: str):
        self._name = name
        self._thread: Optional[threading.Thread] = None
        self._value: Any = None
        self._error: Optional[BaseException] = None

    def start(self, fn: Callable[..., Any], *args: Any) -> None:
        """Begin ``fn(*args)`` in the background (the previous one must have been collected)."""
        self._value, self._error = None, None

        def run() -> None:
            try:
                self._value = fn(*args)
            except BaseException as exc:  # noqa: BLE001 -- raised again by result()
                self._error = exc

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()

    def result(self) -> Any:
        """Wait for the call started last and return its value (or raise its exception)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self._value
