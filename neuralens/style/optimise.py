"""Optimising the pixels of an image against an Objective (L-BFGS with a strong-Wolfe line search, or Adam),
with every evaluation reported to a ``Reporter`` (history, progress, the caller's callback, stop requests)."""

from __future__ import annotations

import math
import time
from typing import Callable, List, Optional, Tuple

import torch
from PIL import Image

from ..errors import NeuralensError
from ..progress import Progress
from .objective import Objective
from .options import StyleOptions
from .results import Step

# L-BFGS's first step moves the pixels by 1 in total (t = 1 / |gradient|_1): on a 512x384 image about a millionth
# of a level each, and its strong-Wolfe search then grows the step at most tenfold per evaluation. Measured
# (Tuebingen + Starry Night, a 362-px result upsampled to 512 px): the first 5 of every scale's evaluations left
# the loss where it was (3.64e13 -> 3.56e13) - half of the 10 each tile of a 4000-px print gets. The first step
# is sized instead to move each pixel value by this much on average; the line search adjusts it from there.
FIRST_STEP = 0.01


class _ClampPixels(torch.autograd.Function):
    """The image clamped to [0, 1] - what gets saved - with a gradient that still lets out-of-range pixels
    come back: it passes through unchanged except where it would push a pixel further out of range.

    Optimising the loss of the clamped image (instead of clamping only at the end) matters: an unconstrained
    L-BFGS run leaves a few percent of the values outside [0, 1], and clamping them afterwards multiplied the
    style loss by 2-3 in our benchmark runs."""

    @staticmethod
    def forward(ctx, image: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(image)
        return image.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (image,) = ctx.saved_tensors
        outward = ((image <= 0) & (grad > 0)) | ((image >= 1) & (grad < 0))  # descent moves against grad
        return grad.masked_fill(outward, 0)


def clamp_pixels(image: torch.Tensor) -> torch.Tensor:
    """``image`` clamped to [0, 1], differentiable (see _ClampPixels)."""
    return _ClampPixels.apply(image)


class Reporter:
    """Receives every loss evaluation of a run: keeps the history, moves the progress display, calls the
    caller's ``callback(step)`` and asks ``should_stop()``. ``done`` and ``scale`` say where the run is."""

    def __init__(
        self,
        total: int,
        callback: Optional[Callable[[Step], None]] = None,
        should_stop: Optional[Callable[[], bool]] = None,
        progress: bool = False,
    ):
        self.total = total
        self.callback = callback
        self.should_stop = should_stop
        self.history: List[dict] = []
        self.done = 0  # evaluations finished in earlier optimise() calls
        self.scale = 0
        self.started = time.perf_counter()
        self.progress = Progress(total, what="stylize", unit="step", enabled=progress)

    def report(self, evaluation: int, size: Tuple[int, int], values: dict, image: Callable[[], Image.Image]) -> bool:
        """Record evaluation number ``evaluation`` (1-based, within the current optimise call) of an image of
        ``size`` (width, height) with its loss ``values``. Returns True when the user asked to stop."""
        step = Step(
            self.done + evaluation,
            self.total,
            self.scale,
            size,
            values["content"],
            values["style"],
            values["tv"],
            values["total"],
            time.perf_counter() - self.started,
            image,
        )
        self.history.append(step.to_dict())
        self.progress.update(1, f"{size[0]}x{size[1]} content {values['content']:.3g} style {values['style']:.3g}")
        if self.callback is not None:
            self.callback(step)
        return self.should_stop is not None and bool(self.should_stop())

    def close(self) -> None:
        self.progress.close()


class _StopOptimising(Exception):
    """Raised inside the loss closure to end an optimisation run (early stop, user stop)."""


def optimise(
    objective: Objective,
    image: torch.Tensor,
    iterations: int,
    options: StyleOptions,
    reporter: Reporter,
    to_pil: Callable[[torch.Tensor], Image.Image],
) -> Tuple[torch.Tensor, int, bool]:
    """Optimise ``image``'s pixels with at most ``iterations`` loss evaluations (forward + backward passes,
    each costing the same time) of ``options.optimizer``, stopping early when the loss stalls
    (``early_stop_tolerance`` over ``early_stop_patience`` evaluations). ``to_pil`` turns an image into the
    picture a step shows.

    Returns (best image seen, evaluations made, stopped by the user)."""
    o = options
    image = image.detach().contiguous().clone().requires_grad_(True)
    # L-BFGS flattens gradients with .view(): keep them NCHW-contiguous even when the network is channels-last.
    image.register_hook(lambda grad: grad.contiguous())
    if o.optimizer == "lbfgs":
        # The style loss is quartic in the features: without a line search L-BFGS diverges when style
        # dominates, so use strong-Wolfe steps (about 1.1 evaluations per iteration once it settles).
        optimizer = torch.optim.LBFGS(
            [image],
            lr=1.0,
            max_iter=iterations,
            max_eval=iterations,
            history_size=50,
            tolerance_grad=0,
            tolerance_change=0,
            line_search_fn="strong_wolfe",
        )
    else:
        optimizer = torch.optim.Adam([image], lr=o.learning_rate)
    size = (image.shape[3], image.shape[2])
    state = {
        "evals": 0,
        "best": math.inf,
        "best_image": image.detach().clamp(0, 1),
        "improved_at": 0,
        "stopped": False,
        "early_best": math.inf,
        "last": None,  # (point, gradient, loss) of the latest L-BFGS evaluation
        # L-BFGS sees the loss scaled to about 1 per pixel value at the start: its line search works in float32
        # products of gradients, and a raw style loss of 1e15 overflowed them into a NaN step (init=style).
        "scale": None,
    }

    def closure() -> torch.Tensor:
        last = state["last"]
        if last is not None and torch.equal(last[0], image):  # L-BFGS asks again for the point it stands on
            image.grad = last[1].clone()
            return last[2]
        if state["evals"] >= iterations:
            raise _StopOptimising
        optimizer.zero_grad(set_to_none=True)
        pixels = clamp_pixels(image)
        losses = objective(pixels)
        if state["scale"] is None:
            start = float(losses["total"].detach())
            lbfgs = o.optimizer == "lbfgs" and math.isfinite(start) and start > 0
            state["scale"] = image.numel() / start if lbfgs else 1.0
        scaled = losses["total"] * state["scale"]
        scaled.backward()
        state["evals"] += 1
        if o.optimizer == "lbfgs":
            state["last"] = (image.detach().clone(), image.grad.clone(), scaled.detach())
        values = {k: float(v.detach()) for k, v in losses.items()}
        if not math.isfinite(values["total"]):
            raise NeuralensError("the loss became infinite or NaN; try smaller weights or --optimizer adam")
        if values["total"] < state["best"]:
            state["best"] = values["total"]
            state["best_image"] = pixels.detach()  # clamp's output: a fresh tensor nothing changes later
        n = state["evals"]
        if reporter.report(n, size, values, lambda: to_pil(state["best_image"])):
            state["stopped"] = True
            raise _StopOptimising
        # Early stopping: the best loss has not improved by the tolerance over the last `patience` evaluations.
        if values["total"] < state["early_best"] * (1 - o.early_stop_tolerance):
            state["early_best"], state["improved_at"] = values["total"], n
        elif o.early_stop_patience and n - state["improved_at"] >= o.early_stop_patience:
            raise _StopOptimising
        return scaled

    try:
        if o.optimizer == "lbfgs":
            group = optimizer.param_groups[0]
            while state["evals"] < iterations:
                before = state["evals"]
                closure()  # the gradient here sizes the first step (L-BFGS's own call to it is then free)
                gradient = float(image.grad.abs().sum())
                first_lr = FIRST_STEP * image.numel() / min(gradient, 1.0) if gradient > 0 else 1.0
                group.update(lr=first_lr, max_iter=1)
                optimizer.step(closure)  # one steepest-descent iteration with its line search
                group.update(lr=1.0, max_iter=iterations)
                optimizer.step(closure)  # returns early when L-BFGS converges; go on with a fresh history
                optimizer.state.clear()
                if state["evals"] <= before + 1:  # no step left that lowers the loss (a zero gradient)
                    break
        else:
            while True:
                optimizer.step(closure)
                with torch.no_grad():
                    image.clamp_(0, 1)
    except _StopOptimising:
        pass
    except KeyboardInterrupt:
        state["stopped"] = True
    return state["best_image"], state["evals"], state["stopped"]
