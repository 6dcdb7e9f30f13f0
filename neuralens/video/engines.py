"""The three ways to paint a frame, behind one small interface: ``engine.stylize(rgb) -> float32 (H, W, 3)`` in
[0, 1]. A trained model (``--model``), the arbitrary-style network (``STYLE --fast``) or optimisation
(``STYLE``, which can also start from a given image and take extra loss terms - the temporal loss)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ..errors import NeuralensError
from ..fast.apply import ApplyOptions
from ..imageio import ImageLike
from ..style import color
from ..style.options import StyleOptions
from ..style.transfer import ExtraTerms, StyleTransfer


def to_float(image: Image.Image) -> np.ndarray:
    """A PIL RGB image as (H, W, 3) float32 in [0, 1]."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)


class ModelEngine:
    """A trained feed-forward model (``neuralens.fast.load_model``): one pass per frame."""

    kind = "model"
    phase = 4  # pixels after which its texture repeats: both architectures halve the image twice

    def __init__(self, apply: ApplyOptions):
        self.options = apply.validate()
        self.model = apply.load()
        self.name = self.model.name

    def stylize(self, rgb: np.ndarray) -> np.ndarray:
        image = self.model.stylize(Image.fromarray(rgb), self.options.strength, self.options.preserve_color)
        return to_float(image)

    def to_dict(self) -> dict:
        return {"engine": self.kind, "model": self.name, **self.options.__dict__}


class ArbitraryEngine:
    """The arbitrary-style network (``neuralens.fast.load_arbitrary``, AdaIN): the paintings are encoded once."""

    kind = "fast"
    phase = 8  # its encoder (VGG19 to relu4_1) pools three times

    def __init__(
        self,
        styles: Sequence[ImageLike],
        strength: float = 1.0,
        preserve_color: Optional[str] = None,
        style_blend: Optional[Sequence[float]] = None,
        device: str = "auto",
        precision: str = "auto",
    ):
        try:
            from ..fast import load_arbitrary  # noqa: PLC0415
        except ImportError:
            raise NeuralensError("--fast needs the arbitrary-style engine, which this neuralens lacks") from None
        self.model = load_arbitrary(None, device, precision)
        self.codes = self.model.codes(list(styles))
        self.strength, self.preserve_color, self.style_blend = strength, preserve_color, style_blend
        self.name = "+".join(code.name for code in self.codes)

    def stylize(self, rgb: np.ndarray) -> np.ndarray:
        image = self.model.stylize(
            Image.fromarray(rgb),
            self.codes,
            self.strength,
            preserve_color=self.preserve_color,
            style_weights=self.style_blend,
        )
        return to_float(image)

    def to_dict(self) -> dict:
        return {"engine": self.kind, "styles": self.name, "strength": self.strength}


class OptimisationEngine:
    """Gatys et al.'s optimisation (``neuralens.style.StyleTransfer``) at the frames' size. The style's Gram
    targets are computed once for the whole video (StyleTargets caches them per size). A frame that starts from
    a given image (the previous result, warped) runs one scale of ``frame_iterations`` evaluations; otherwise
    the full coarse-to-fine plan of ``options``."""

    kind = "optimisation"

    def __init__(
        self, styles: Sequence[ImageLike], options: StyleOptions, size: Tuple[int, int], frame_iterations: int
    ):
        width, height = size
        base = dataclasses.replace(options, size=max(width, height), progress=False)
        self.full = StyleTransfer(list(styles), base)
        # The same network and style targets, planned as one scale at the output size.
        self.short = copy.copy(self.full)
        self.short.options = dataclasses.replace(
            base, scales=1, iterations=frame_iterations, coarse_iterations=None
        ).validate()
        self.options = base
        self.name = "+".join(str(s) if not isinstance(s, Image.Image) else "image" for s in styles)
        self.evaluations = 0

    @property
    def device(self) -> torch.device:
        return self.full.device

    def stylize(
        self,
        rgb: np.ndarray,
        start: Optional[np.ndarray] = None,
        extra_terms: Optional[ExtraTerms] = None,
        callback: Optional[Callable] = None,
    ) -> np.ndarray:
        """The frame ``rgb`` painted; ``start`` (H, W, 3) float in [0, 1] as the starting image (then one short
        scale), ``extra_terms`` added to the loss. Raises KeyboardInterrupt when the run was stopped."""
        transfer = self.full if start is None else self.short
        tensor = None if start is None else torch.from_numpy(np.ascontiguousarray(start)).permute(2, 0, 1)[None]
        result = transfer.run(Image.fromarray(rgb), callback=callback, start=tensor, extra_terms=extra_terms)
        self.evaluations += len(result.history)
        if result.stopped:
            raise KeyboardInterrupt
        return to_float(result.image)

    @torch.no_grad()
    def loss(self, rgb: np.ndarray, output: np.ndarray) -> float:
        """The style objective's total (no extra terms) of ``output`` as the result for frame ``rgb``."""
        content = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
        image = torch.from_numpy(np.ascontiguousarray(output)).permute(2, 0, 1)[None].float()
        if self.options.preserve_color == "luminance":
            content, image = color.luminance(content), color.luminance(image)
        objective = self.short.objective(content)
        return float(objective(self.short.network.to_device(image))["total"])

    def to_dict(self) -> dict:
        return {"engine": self.kind, "styles": self.name, "options": self.options.to_dict()}
