"""What a style run reports: a ``Step`` after every loss evaluation, a ``StyleResult`` at the end."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from PIL import Image


@dataclass
class Step:
    """What the optimiser reports after each loss evaluation (to progress displays, callbacks, reports)."""

    iteration: int  # 1-based, counted over all scales
    total_iterations: int  # planned over all scales (early stopping may finish sooner)
    scale: int  # 0-based index of the current scale
    size: Tuple[int, int]  # (width, height) being optimised
    content_loss: float
    style_loss: float
    tv_loss: float
    loss: float
    elapsed: float  # seconds since the optimisation started
    image: Optional[Callable[[], Image.Image]] = field(repr=False, default=None)  # the current image, on demand

    def to_dict(self) -> dict:
        """The numbers as JSON-ready values (the image is left out)."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "image"}
        data["size"] = list(self.size)
        return data


@dataclass
class StyleResult:
    """A finished (or stopped) run: the image, the per-step history and timings."""

    image: Image.Image
    history: List[dict]
    timings: Dict[str, float]
    stopped: bool = False  # True when stopped early by the user (Ctrl-C or a stop request)
    setup: Dict[str, object] = field(default_factory=dict)  # device, precision, memory layout, allocator used

    def to_dict(self) -> dict:
        """Size, whether it was stopped, the setup, timings and the per-evaluation history, JSON-ready."""
        return {
            "size": [self.image.width, self.image.height],
            "stopped": self.stopped,
            "setup": dict(self.setup),
            "timings": dict(self.timings),
            "history": list(self.history),
        }
