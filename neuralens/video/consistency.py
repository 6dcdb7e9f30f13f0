"""Temporal consistency: how each frame's result is tied to the results before it.

- ``Independent``: every frame painted on its own (``--consistency none``; flickers).
- ``FlowBlend`` (feed-forward engines): the previous result is warped along the flow onto the new frame and
  blended in where the flow is reliable: x = (s + w m warped) / (1 + w m), the per-pixel minimiser of
  |x - s|^2 + w m |x - warped|^2 for the network's output s, the reliability mask m and the weight w. The
  network paints each frame shifted by the camera's pan so far (modulo its texture period), so that what it paints
  is in step with what is carried.
- ``RuderTemporal`` (optimisation; Ruder, Dosovitskiy & Brox 2016): each frame after the first starts from the
  previous result warped along the flow and minimises the style objective plus the temporal loss
  w * L0 * sum_j sum_x c_j(x) |x(x) - warped_j(x)|^2 over the results of frames t-1, t-2 and t-4 (long-term; c_j
  keeps only pixels that the nearer frames do not already constrain, their eq. 8). L0 is the first frame's loss
  per pixel value, so that w means the same at any size and style weight: w = 100 makes a deviation of 0.1 on
  every pixel cost as much as the whole first frame's loss (the objective's own scale spans many decades:
  about 1e12 at 128x96 with the default weights).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..style import color
from .engines import OptimisationEngine
from .flow import FlowEstimator, FlowField, digest
from .pipeline import Beside

LONG_TERM = (1, 2, 4)  # Ruder et al.'s J: the previous frames a frame is tied to


@dataclass
class Past:
    """A finished frame: its input pixels (uint8), their content key and the result (float32 in [0, 1])."""

    rgb: np.ndarray
    key: bytes
    output: np.ndarray


class Temporal:
    """The frames seen so far (the last ``depth``) and how a new frame is painted given them. ``next(rgb)``
    paints a frame; ``keep(rgb, output)`` records one finished earlier (a resumed run) without painting it."""

    depth = 1

    def __init__(self, engine, flows: Optional[FlowEstimator] = None):
        self.engine = engine
        self.flows = flows
        self.past: Deque[Past] = collections.deque(maxlen=self.depth)
        self.on_step: Optional[Callable] = None  # optimisation: called after every loss evaluation

    def keep(self, rgb: np.ndarray, output: np.ndarray) -> None:
        """Record a finished frame (its input and result) as the latest one."""
        key = digest(rgb) if self.flows is not None else b""
        self.past.append(Past(rgb, key, output))

    def next(self, rgb: np.ndarray) -> np.ndarray:
        """Paint the frame ``rgb`` (H, W, 3) uint8 and record it; returns the result (H, W, 3) float32."""
        output = self.paint(rgb)
        self.keep(rgb, output)
        return output

    def paint(self, rgb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _field(self, rgb: np.ndarray, past: Past) -> FlowField:
        return self.flows.between(rgb, past.rgb, None, past.key)

    def to_dict(self) -> dict:
        return {"consistency": type(self).__name__}


class Independent(Temporal):
    """Every frame on its own."""

    depth = 0

    def keep(self, rgb: np.ndarray, output: np.ndarray) -> None:
        return

    def paint(self, rgb: np.ndarray) -> np.ndarray:
        if isinstance(self.engine, OptimisationEngine):
            return self.engine.stylize(rgb, callback=self.on_step)
        return self.engine.stylize(rgb)


class FlowBlend(Temporal):
    """The feed-forward engines' consistency: the previous result, warped (sharp), kept where the flow is reliable.

    With ``weight`` None (the default) the previous result is carried as it is wherever the mask is on and the
    network's output fills the rest (disocclusions, new content); the mask is feathered over 5 px so the seam
    does not show. A finite ``weight`` w blends instead: x = (s + w m warped) / (1 + w m). Measured on a 16-frame
    320x240 pan (benchmarks/video_flicker.py): any blend mixes two unrelated brush textures and averages them
    away (w = 2: warping error x0.09 but style loss +77 %), while carrying the result keeps the strokes (x0.02,
    +11 %)."""

    def __init__(self, engine, flows: FlowEstimator, weight: Optional[float] = None):
        super().__init__(engine, flows)
        self.weight = None if weight is None else float(weight)
        self._beside = Beside("neuralens-video-flow")
        self._pan = np.zeros(2)  # how far the picture has moved (x, y) up to the latest kept frame, in pixels
        self._shift: Optional[Tuple[np.ndarray, np.ndarray]] = None  # (frame, its global_shift from the one before)

    def keep(self, rgb: np.ndarray, output: np.ndarray) -> None:
        if self.past:  # painted frames and those a resumed run reuses alike, so the pan is followed the same
            self._pan += self._shift_to(rgb)
        super().keep(rgb, output)

    def _shift_to(self, rgb: np.ndarray) -> np.ndarray:
        """``global_shift`` from the latest kept frame to ``rgb``, computed once per frame."""
        if self._shift is None or self._shift[0] is not rgb:
            self._shift = (rgb, global_shift(self.past[-1].rgb, rgb))
        return self._shift[1]

    def paint(self, rgb: np.ndarray) -> np.ndarray:
        if not self.past or self.weight == 0:
            return self._stylize_in_phase(rgb)
        # The flow, the warped previous result and the mask need only the inputs and the previous result: they
        # are made in a thread while the network paints this frame (both release the GIL; see pipeline.py).
        self._beside.start(self._carried, rgb, self.past[-1])
        try:
            styled = self._stylize_in_phase(rgb)
        finally:
            warped, keep = self._beside.result()
        if self.weight is None:
            return keep * warped + (1.0 - keep) * styled
        return (styled + keep * warped) / (1.0 + keep)

    def _stylize_in_phase(self, rgb: np.ndarray) -> np.ndarray:
        """The network's output for ``rgb`` with its texture in step with the first frame's under a camera pan.

        A network that downsamples paints a texture that repeats every ``phase`` pixels of its input (4 for the
        models: strides 2 and 2), tied to the input's pixel grid: after a pan of 3 px, the new frame's strokes sit
        3 px off those carried along. New content enters at the edge a strip a frame, so a carried result became a
        mosaic of strips out of step (the 48-frame pan of benchmarks/video_flicker.py with the refined Starry
        Night: style loss +37 % over painting every frame where strips came in, +10 % where the first frame's
        strokes were carried; the whole frame +31 %, +15 % in step). Padding the frame on the left and top by the
        pan so far (modulo ``phase``) puts its content where the network saw it in the first frame, so the strips
        continue the texture."""
        phase = getattr(self.engine, "phase", 1)
        pan = self._pan + (self._shift_to(rgb) if self.past else 0.0)
        pad_x, pad_y = (int(-round(v)) % phase for v in pan)
        if not (pad_x or pad_y) or min(rgb.shape[:2]) <= phase:
            return self.engine.stylize(rgb)
        padded = np.pad(rgb, ((pad_y, 0), (pad_x, 0), (0, 0)), mode="reflect")
        return np.ascontiguousarray(self.engine.stylize(padded)[pad_y:, pad_x:])

    def _carried(self, rgb: np.ndarray, previous: Past) -> Tuple[np.ndarray, np.ndarray]:
        """(the previous result warped onto this frame, the weight of it per pixel (H, W, 1)): the feathered mask
        when carrying, w * mask when blending."""
        field = self._field(rgb, previous)
        warped = field.warp(previous.output, sharp=True)
        keep = feather(field.mask) if self.weight is None else self.weight * field.mask
        return warped, keep[..., None]

    def to_dict(self) -> dict:
        method = "carried where reliable" if self.weight is None else "warped blend"
        return {"consistency": "flow", "method": method, "weight": self.weight}


MIN_SHIFT = 0.25  # px a frame: slower global motion is not followed (see global_shift)


def global_shift(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """(dx, dy): how far the picture moved from ``previous`` to ``current`` (uint8 RGB frames), by phase
    correlation (one FFT pair; about a millisecond at 320x240); zero when the frames do not match well. Within
    0.02 px on the benchmark's pans from 160x120 up; tiny frames read less (2.7 px for 3 at 64x48)."""
    import cv2  # noqa: PLC0415

    a = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY).astype(np.float32)
    b = cv2.cvtColor(current, cv2.COLOR_RGB2GRAY).astype(np.float32)
    (dx, dy), response = cv2.phaseCorrelate(a, b, cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F))
    shift = np.array([dx, dy]) if response > 0.1 else np.zeros(2)
    # A still background with something moving over it reads as a drift of about 0.1 px a frame (measured on the
    # benchmark's cat clip), which would add up to whole pixels: shifts this small count as none.
    shift[np.abs(shift) < MIN_SHIFT] = 0.0
    return shift


def feather(mask: np.ndarray, size: int = 5) -> np.ndarray:
    """``mask`` shrunk and softened over ``size`` px: 1 only well inside, easing to 0 at its edge (so a seam
    between carried and new pixels fades in rather than cuts)."""
    import cv2  # noqa: PLC0415

    eroded = cv2.erode(mask, np.ones((size // 2 + 1, size // 2 + 1), np.uint8))
    return cv2.blur(eroded, (size, size))


class RuderTemporal(Temporal):
    """The optimisation engine's consistency: flow-warped start and masked short/long-term temporal loss."""

    depth = max(LONG_TERM)

    def __init__(self, engine: OptimisationEngine, flows: FlowEstimator, weight: float, long_term: bool = True):
        super().__init__(engine, flows)
        self.weight = float(weight)
        self.offsets = LONG_TERM if long_term else (1,)
        self.reference: Optional[float] = None  # L0: the first frame's loss per pixel value

    def keep(self, rgb: np.ndarray, output: np.ndarray) -> None:
        if self.reference is None:  # painted or reused alike, so a resumed run weighs frames as before
            self.reference = self.engine.loss(rgb, output) / output.size
        super().keep(rgb, output)

    def paint(self, rgb: np.ndarray) -> np.ndarray:
        if not self.past:
            return self.engine.stylize(rgb, callback=self.on_step)
        targets, masks = self.targets(rgb)
        start = targets[0]
        terms = self._terms(targets, masks) if self.weight > 0 else None
        return self.engine.stylize(rgb, start=start, extra_terms=terms, callback=self.on_step)

    def targets(self, rgb: np.ndarray) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """The results of frames t-j warped onto this frame, and their masks c_j (eq. 8 of Ruder et al.: a pixel
        counts for the nearest earlier frame that sees it reliably)."""
        targets, masks = [], []
        covered = None
        for j in self.offsets:
            if j > len(self.past):
                break
            past = self.past[-j]
            field = self._field(rgb, past)
            mask = field.mask if covered is None else np.maximum(field.mask - covered, 0.0)
            covered = field.mask if covered is None else covered + field.mask
            targets.append(field.warp(past.output, sharp=True))
            masks.append(mask)
        return targets, masks

    def _terms(self, targets: List[np.ndarray], masks: List[np.ndarray]):
        device = self.engine.device
        luminance = self.engine.options.preserve_color == "luminance"
        target = torch.from_numpy(np.stack(targets)).permute(0, 3, 1, 2).float()
        if luminance:  # the optimised image is the luminance there; colours come back afterwards
            target = color.luminance(target)
        mask = torch.from_numpy(np.stack(masks))[:, None].float()
        weight = self.weight * (self.reference or 1.0)
        cache: Dict[tuple, Tuple[torch.Tensor, torch.Tensor]] = {}

        def factory(shape, box):
            key = (tuple(shape), box)
            if key not in cache:
                t, m = target, mask
                if box is not None:
                    y0, y1, x0, x1 = box
                    t, m = t[:, :, y0:y1, x0:x1], m[:, :, y0:y1, x0:x1]
                if tuple(t.shape[2:]) != tuple(shape):
                    t = F.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False)
                    m = F.interpolate(m, size=tuple(shape), mode="bilinear", align_corners=False)
                cache[key] = (t.to(device), m.to(device))
            t, m = cache[key]

            def temporal(image: torch.Tensor) -> torch.Tensor:
                return weight * ((image.float() - t).pow(2) * m).sum()

            return {"temporal": temporal}

        return factory

    def to_dict(self) -> dict:
        return {
            "consistency": "flow",
            "method": "Ruder et al. 2016: warped start + temporal loss",
            "weight": self.weight,
            "frames": list(self.offsets),
        }
