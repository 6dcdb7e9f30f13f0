"""Starting a finer scale with the texture it will need (issue 17's fast-init).

Each scale after the first starts from the previous scale's result upsampled: the picture is there, but the
upsampling blurs away exactly the fine brush strokes this scale is for, and the optimiser spends its first
evaluations putting texture back. The one-pass arbitrary-style engine (AdaIN, ``neuralens.fast.arbitrary``)
paints a full-resolution texture in well under one evaluation's time, so the start here is

    upsampled previous result + (AdaIN result - AdaIN result blurred to the previous scale)

the optimised picture with the AdaIN picture's finer detail added. Measured (benchmarks/README.md section 13)
on Tuebingen + Starry Night at equal evaluations, the loss at the finer scale ends lower than from the plain
upsampled start (-7 % at 1024 px). Scales that go in tiles start plainly: there (4000 px, 2 evaluations a
tile) the decoder's pixel-scale stripes outlasted the optimisation, where the plain start was clean.
"""

from __future__ import annotations

import importlib
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from ..errors import NeuralensError
from .options import StyleOptions
from .targets import StyleTargets


def engine_installed() -> bool:
    """True when the arbitrary-style engine and its shipped decoder are there to paint a start."""
    try:  # the module itself: the fast package exports a function of the same name
        arbitrary = importlib.import_module("neuralens.fast.arbitrary")
    except ImportError:
        return False
    return arbitrary.SHIPPED.is_file()


def why_not(options: StyleOptions) -> Optional[str]:
    """Why ``options`` cannot start scales from the fast engine (None when it can)."""
    if options.content_mask is not None or options.fine_style is not None:
        return "the fast engine has no content mask or fine style"
    if options.style_masks is not None and any(m is not None for m in options.style_masks):
        return "the fast engine here takes no style masks"
    if not engine_installed():
        return "the arbitrary-style engine's decoder is not installed"
    return None


def wanted(options: StyleOptions) -> bool:
    """Whether a run with ``options`` starts its finer scales from the fast engine: ``fast_start`` None means
    when it can; True insists (NeuralensError naming why it cannot); False never."""
    if options.fast_start is False:
        return False
    problem = why_not(options)
    if problem is not None and options.fast_start:
        raise NeuralensError(f"--fast-start: {problem}")
    return problem is None


def add_detail(upsampled: torch.Tensor, painted: torch.Tensor, previous_shape: tuple) -> torch.Tensor:
    """``upsampled`` (1, 3, H, W) with the detail of ``painted`` (same shape) that a (h, w) = ``previous_shape``
    image cannot hold: painted minus painted brought down to previous_shape and back up. Clamped to [0, 1]."""
    size = tuple(painted.shape[2:])
    low = F.interpolate(painted, size=tuple(previous_shape), mode="bicubic", align_corners=False, antialias=True)
    low = F.interpolate(low, size=size, mode="bicubic", align_corners=False)
    return (upsampled + painted - low).clamp(0, 1)


class FastStart:
    """Paints the AdaIN result of a content image at any scale in the run's style (the style images blended
    with ``style_blend``), and adds its detail to an upsampled start. The model loads on first use."""

    def __init__(self, targets: StyleTargets, options: StyleOptions):
        self.targets = targets
        self.options = options
        self._model = None
        self._codes: Dict[int, object] = {}

    @property
    def model(self):
        if self._model is None:
            from ..fast.arbitrary import load_arbitrary  # noqa: PLC0415

            self._model = load_arbitrary(None, self.options.device, self.options.precision)
        return self._model

    def _code(self, long_side: int):
        """The blended style code with each painting at the objective's size for this scale, at most its own
        size (statistics of an enlarged painting are its own, blurred; encoding it larger only costs time)."""
        if long_side not in self._codes:
            from ..fast.arbitrary import StyleCode  # noqa: PLC0415

            target = max(16, round(long_side * self.options.style_scale))
            codes: List = [self.model.encode_style(im, min(target, max(im.size))) for im in self.targets.images]
            self._codes[long_side] = StyleCode.blend(codes, self.options.style_blend)
        return self._codes[long_side]

    def paint(self, content: torch.Tensor) -> torch.Tensor:
        """The AdaIN result (1, 3, H, W) in [0, 1] for ``content`` (1, 3, H, W), on the CPU."""
        return self.model.stylize_tensor(content.cpu().float(), self._code(max(content.shape[2:])), 1.0)

    def start(self, upsampled: torch.Tensor, content: torch.Tensor, previous_shape: tuple) -> torch.Tensor:
        """The starting image of a scale: ``upsampled`` (the previous result at this scale) with the detail of
        the AdaIN result for ``content`` (this scale's content image) above ``previous_shape`` (h, w)."""
        return add_detail(upsampled.cpu(), self.paint(content), previous_shape)
