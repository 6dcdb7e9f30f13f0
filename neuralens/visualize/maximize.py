"""What a unit wants to see: synthesise an image that maximises one unit's mean activation.

Gradient ascent on the pixels (Erhan et al. 2009; Simonyan et al. 2013; Yosinski et al. 2015), with the
simple regularisers that keep the result image-like instead of high-frequency noise: random jitter of the
image before each step, L2 decay towards mid-grey, a light blur every few steps, and clamping to [0, 1].
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from PIL import Image

from .. import devices
from ..backbone import load_vgg19
from ..errors import NeuralensError
from ..imageio import tensor_to_image
from .receptive import check_unit, receptive_field


@dataclass
class MaximizeResult:
    """The synthesised image and how the unit's mean activation grew."""

    image: Image.Image
    layer: str
    unit: int
    start_activation: float  # mean activation of the starting image (without jitter)
    final_activation: float  # mean activation of the returned image (without jitter)
    history: List[float] = field(default_factory=list)  # the jittered image's activation at each step
    seconds: float = 0.0
    stopped: bool = False  # True when Ctrl-C ended the ascent early (the image so far is returned)

    def to_dict(self) -> dict:
        """Everything but the image, JSON-ready."""
        return {
            "layer": self.layer,
            "unit": self.unit,
            "size": list(self.image.size),
            "start_activation": self.start_activation,
            "final_activation": self.final_activation,
            "history": list(self.history),
            "seconds": self.seconds,
            "stopped": self.stopped,
        }


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (1, 3, H, W), borders extended (replicate works for any image size)."""
    radius = max(1, int(round(2 * sigma)))
    xs = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(xs**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = image.shape[1]
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def unit_activation(model, image: torch.Tensor, layer: str, unit: int) -> torch.Tensor:
    """Mean activation of ``unit`` of ``layer`` over all positions of ``image`` (1, 3, H, W) in [0, 1]."""
    return model(image, [layer])[layer][:, unit].mean()


def maximize_unit(
    layer: str,
    unit: int,
    size: int = 128,
    iterations: int = 200,
    learning_rate: float = 0.05,
    decay: float = 0.01,
    blur_every: int = 4,
    blur_sigma: float = 0.5,
    jitter: int = 4,
    seed: Optional[int] = 0,
    device: str = "auto",
    weights: Optional[str] = None,
    pooling: str = "max",
    init: Optional[torch.Tensor] = None,
    model=None,
    callback: Optional[Callable[[int, float], None]] = None,
) -> MaximizeResult:
    """Synthesise a ``size`` x ``size`` image that maximises the mean activation of ``unit`` of ``layer``.

    Starts from mid-grey plus a little noise (or ``init``, (1, 3, H, W) in [0, 1]) and runs ``iterations``
    Adam ascent steps of ``learning_rate`` (pixel units) on the mean activation. Before each step the image
    is shifted by up to ``jitter`` pixels (random roll); after it, L2 decay pulls it towards grey by the
    fraction ``decay`` (x <- 0.5 + (1 - decay)(x - 0.5), as in Yosinski et al. 2015), every ``blur_every``
    steps it is blurred with ``blur_sigma`` (0 or None: never), and it is clamped to [0, 1]. ``callback(step, activation)`` is called after every step; Ctrl-C stops early with the image so far.

    Returns a MaximizeResult (image, start and final activation, per-step history). Raises NeuralensError for
    an unknown layer, a unit out of range or a size too small to reach the layer."""
    check_unit(layer, unit)
    if size <= 0 or iterations < 0:
        raise NeuralensError("size must be positive and iterations not negative")
    if not 0 <= decay < 1 or jitter < 0 or learning_rate <= 0:
        raise NeuralensError("decay must be in [0, 1), jitter >= 0 and the learning rate > 0")
    out_w, out_h = receptive_field(layer).output_size((size, size))
    if out_w == 0:
        raise NeuralensError(f"a {size} px image is too small to reach {layer}; use a larger --size")
    torch_device = devices.pick_device(device)
    if model is None:
        model = load_vgg19(layer, pooling, weights, torch_device)
    generator = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    if init is None:
        image = 0.5 + 0.05 * torch.randn((1, 3, size, size), generator=generator)
    else:
        image = init.detach().float().clone()
    image = image.clamp(0, 1).to(torch_device).requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=learning_rate)
    started = time.perf_counter()
    with torch.no_grad():
        start_activation = float(unit_activation(model, image, layer, unit))
    history: List[float] = []
    stopped = False
    try:
        for step in range(1, iterations + 1):
            dy, dx = (
                (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator)) if jitter else (0, 0)
            )
            shifted = torch.roll(image, shifts=(dy, dx), dims=(2, 3))
            activation = unit_activation(model, shifted, layer, unit)
            optimizer.zero_grad(set_to_none=True)
            (-activation).backward()  # Adam minimises; we climb
            optimizer.step()
            with torch.no_grad():
                # Decay is applied to the pixels directly, so its strength does not depend on the activation's scale.
                if decay:
                    image.sub_(0.5).mul_(1 - decay).add_(0.5)
                if blur_every and blur_sigma and step % blur_every == 0:
                    image.copy_(_blur(image, blur_sigma))
                image.clamp_(0, 1)
            history.append(float(activation.detach()))
            if callback is not None:
                callback(step, history[-1])
    except KeyboardInterrupt:
        stopped = True
    with torch.no_grad():
        final_activation = float(unit_activation(model, image, layer, unit))
    return MaximizeResult(
        tensor_to_image(image.detach().cpu()),
        layer,
        unit,
        start_activation,
        final_activation,
        history,
        time.perf_counter() - started,
        stopped,
    )
