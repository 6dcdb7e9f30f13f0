"""Progress of long work on stderr, the same for every command.

On a terminal: a live tqdm bar. Anywhere else (a log file, a pipe, CI): one plain line every few seconds
with the count, the status, the time elapsed and the time left - tqdm's carriage-return updates wrote
about 60 KB into a log for one 512-px stylization, a line per 5 s writes about 1 KB.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Optional

# Seconds between two lines when stderr is not a terminal (NEURALENS_PROGRESS_SECONDS overrides it).
LINE_SECONDS = float(os.environ.get("NEURALENS_PROGRESS_SECONDS", 5.0))


def format_seconds(seconds: float) -> str:
    """12 -> '12 s', 95 -> '1 min 35 s', 4000 -> '1 h 07 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Counts ``total`` units of work (``what``: a short label such as 'stylize') and shows it on ``stream``
    (default stderr): a tqdm bar when the stream is a terminal, else a line every ``interval`` seconds and
    one at the end. ``enabled=False`` shows nothing. ``initial``: units already done before this run (a
    resumed training), counted but not used for the rate. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        total: Optional[int],
        what: str = "",
        unit: str = "step",
        enabled: bool = True,
        stream: Optional[IO[str]] = None,
        interval: Optional[float] = None,
        initial: int = 0,
    ):
        self.total = total
        self.what = what
        self.unit = unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interval = LINE_SECONDS if interval is None else interval
        self.count = self.initial = initial
        self.status = ""
        self.started = time.perf_counter()
        self._last_line = -float("inf")
        self._closed = False
        self._bar = None
        if enabled and _is_terminal(self.stream):
            from tqdm.auto import tqdm  # noqa: PLC0415 -- only needed on a terminal

            self._bar = tqdm(
                total=total,
                initial=initial,
                desc=what or None,
                unit=unit,
                dynamic_ncols=True,
                leave=True,
                file=self.stream,
            )

    def update(self, n: int = 1, status: Optional[str] = None) -> None:
        """Count ``n`` more units done; ``status`` (e.g. '512x384 content 1.2e5 style 3.4e5') replaces the
        text shown beside the count."""
        self.count += n
        if status is not None:
            self.status = status
        if not self.enabled:
            return
        if self._bar is not None:
            if status is not None:
                self._bar.set_postfix_str(status, refresh=False)
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last_line >= self.interval:
            self._write_line(now)

    def set_total(self, total: Optional[int]) -> None:
        """Change the planned amount of work (for example when a plan turns out shorter)."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def time_left(self) -> Optional[float]:
        """Seconds left at this run's average rate so far (None while unknown)."""
        done = self.count - self.initial
        if not self.total or done <= 0:
            return None
        return self.elapsed() / done * max(0, self.total - self.count)

    def line(self) -> str:
        """The plain progress line, e.g. 'stylize 40/95 step (42 %) 512x384 ..., 12 s elapsed, 16 s left'."""
        count = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        share = f" ({100 * self.count / self.total:.0f} %)" if self.total else ""
        parts = [f"{self.what + ' ' if self.what else ''}{count} {self.unit}{share}"]
        if self.status:
            parts[0] += f" {self.status}"
        parts.append(f"{format_seconds(self.elapsed())} elapsed")
        left = self.time_left()
        if left is not None and self.count < (self.total or 0):
            parts.append(f"about {format_seconds(left)} left")
        return ", ".join(parts)

    def _write_line(self, now: float) -> None:
        self._last_line = now
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the display (the final line when not on a terminal). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.count:
            self._write_line(time.perf_counter())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
