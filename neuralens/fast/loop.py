"""The training loop that `train-style` and `train-decoder` share: the time budget or step count, stop requests
and Ctrl-C, the loss history, progress with images/s and time left, the callback, checkpoints and previews.

Each trainer supplies one step (``one_step() -> (losses, images)``: draw a batch, compute the losses, step the
optimiser) and how to write its checkpoint and preview; what the loop carries between steps is a ``LoopState``,
which the trainers save in their checkpoints (``step``, ``seconds``, ``history``, ``watch_state()``) and read back
on resume.
"""

from __future__ import annotations

import collections
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from ..errors import NeuralensError
from ..progress import Progress

HISTORY_EVERY = 10  # one loss-history entry every this many steps (and at step 1)
# A run whose loss mean over BLOWUP_WINDOW steps rises above BLOWUP times its lowest has gone wrong without a NaN:
# a 75-minute decoder run at learning rate 1e-3 went from a style loss of 0.6 to 15 in 60 steps (step 3940) and
# ended painting one flat colour. Such a run is warned about once (it goes on: a user may want the rest).
BLOWUP = 3.0
BLOWUP_WINDOW = 50


@dataclass
class LoopState:
    """Where training stands: steps and seconds so far (including those before a resume), the loss history."""

    step: int = 0
    seconds_before: float = 0.0  # training seconds of the runs before a resume
    history: List[Dict[str, float]] = field(default_factory=list)
    recent: Deque[Dict[str, float]] = field(default_factory=lambda: collections.deque(maxlen=HISTORY_EVERY))
    train_seconds: float = 0.0  # of this run
    images_done: int = 0  # of this run
    stopped: bool = False  # by Ctrl-C or should_stop()
    checkpoint_path: Optional[Path] = None
    blew_up_at: Optional[int] = None  # the step where the loss mean rose above BLOWUP times its lowest (if it did)
    _window: List[float] = field(default_factory=list, init=False, repr=False)
    _lowest: Optional[float] = field(default=None, init=False, repr=False)

    def watch(self, total: float) -> None:
        """Follow the total loss; warn once (and set ``blew_up_at``) when its mean over BLOWUP_WINDOW steps rises
        above BLOWUP times the lowest such mean so far."""
        self._window.append(total)
        if len(self._window) < BLOWUP_WINDOW:
            return
        mean, self._window = sum(self._window) / len(self._window), []
        if self._lowest is None or mean < self._lowest:
            self._lowest = mean
        elif self.blew_up_at is None and mean > BLOWUP * self._lowest:
            self.blew_up_at = self.step
            warnings.warn(
                f"the loss rose to {mean / self._lowest:.1f}x its lowest by step {self.step}: training has probably "
                "diverged and the result may be worse than earlier (keep a checkpoint from before, or start again "
                "with a smaller --learning-rate)",
                stacklevel=2,
            )

    def watch_state(self) -> Dict[str, Any]:
        """What ``watch`` has seen, for a checkpoint: a resumed run goes on judging against the same lowest mean."""
        return {"window": list(self._window), "lowest": self._lowest, "blew_up_at": self.blew_up_at}

    def restore_watch(self, saved: Optional[Dict[str, Any]]) -> None:
        """Take back ``watch_state()`` from a checkpoint (None, as in older checkpoints: watch afresh)."""
        if saved:
            self._window = [float(v) for v in saved["window"]]
            self._lowest = None if saved["lowest"] is None else float(saved["lowest"])
            self.blew_up_at = saved["blew_up_at"]

    @property
    def seconds(self) -> float:
        """Training seconds in total."""
        return self.seconds_before + self.train_seconds

    @property
    def images_per_second(self) -> float:
        """Crops per second in this run."""
        return self.images_done / self.train_seconds if self.train_seconds > 0 else 0.0

    def final_losses(self) -> Dict[str, float]:
        """The mean of each loss over the last steps (what a report calls the final losses)."""
        recent = self.recent
        return {k: sum(r[k] for r in recent) / len(recent) for k in recent[0]} if recent else {}

    def curve(self) -> List[Dict[str, float]]:
        """The history with the last step added when it is not already the last entry."""
        history, recent = self.history, self.recent
        if self.step and recent and (not history or history[-1]["iteration"] != self.step):
            return history + [{"iteration": self.step, "seconds": round(self.seconds, 3), **recent[-1]}]
        return list(history)


def run(
    state: LoopState,
    one_step: Callable[[], Tuple[Dict[str, float], int]],
    options,
    label: str,
    save_checkpoint: Callable[[], Path],
    write_preview: Callable[[], None],
    callback: Optional[Callable[[dict], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> LoopState:
    """Step until ``options.minutes`` are spent (or ``options.iterations`` steps are done), a stop is asked for
    or Ctrl-C; ``options`` also gives ``batch_size``, ``checkpoint_every``, ``preview_every`` and ``progress``.
    A checkpoint is written every ``checkpoint_every`` steps and at the end when stopped early or when any was
    written. NeuralensError when a loss is no longer finite. Returns ``state``, updated."""
    budget = options.minutes * 60.0 if options.minutes is not None else None
    total = None if budget is not None else options.iterations
    run_started = time.perf_counter()
    last_preview = run_started
    progress = Progress(total, label, unit="step", enabled=options.progress, initial=state.step)
    try:
        while True:
            state.train_seconds = time.perf_counter() - run_started
            if budget is not None and state.train_seconds >= budget:
                break
            if budget is None and state.step >= options.iterations:
                break
            if should_stop is not None and should_stop():
                state.stopped = True
                break
            values, images = one_step()
            state.step += 1
            state.images_done += images
            if not all(math.isfinite(v) for v in values.values()):
                raise NeuralensError(
                    f"training diverged at step {state.step} (loss {values['total']}); try a smaller --learning-rate"
                )
            state.recent.append(values)
            state.watch(values["total"])
            state.train_seconds = time.perf_counter() - run_started
            rate = state.images_per_second
            if state.step == 1 or state.step % HISTORY_EVERY == 0:
                state.history.append({"iteration": state.step, "seconds": round(state.seconds, 3), **values})
            if budget is not None and state.images_done:
                left = max(0, int((budget - state.train_seconds) * rate / options.batch_size))
                progress.set_total(state.step + left)
            shown = " ".join(f"{k} {v:.3g}" for k, v in values.items() if k != "total" and (v or k != "tv"))
            progress.update(1, f"{shown} {rate:.2f} img/s")
            if callback is not None:
                callback({"iteration": state.step, "seconds": state.seconds, "images_per_second": rate, **values})
            if options.checkpoint_every and state.step % options.checkpoint_every == 0:
                state.checkpoint_path = save_checkpoint()
            if options.preview_every and time.perf_counter() - last_preview >= options.preview_every:
                write_preview()
                last_preview = time.perf_counter()
    except KeyboardInterrupt:
        state.stopped = True
    finally:
        progress.close()
    state.train_seconds = time.perf_counter() - run_started
    if state.stopped or state.checkpoint_path is not None:
        state.checkpoint_path = save_checkpoint()
    return state
