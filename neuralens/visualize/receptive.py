"""Receptive-field arithmetic for VGG19: which image pixels a unit at activation position (y, x) can see.

Every VGG19 layer is one of three kinds, each changing the receptive field in a fixed way:

* conv3x3, padding 1, stride 1: size grows by 2 input steps (``2 * jump``); jump and centre stay.
* ReLU: changes nothing.
* pool 2x2, stride 2: size grows by one input step (``jump``); the jump doubles; the centre of output
  position 0 moves half an input step to the right (it lies between input positions 0 and 1).

Coordinates are pixel indices: the centre of pixel ``i`` is ``i``, so a centre may be fractional (x.5)
and the receptive field of a position covers the ``size`` pixels from ``centre - (size - 1) / 2`` to
``centre + (size - 1) / 2`` inclusive. Near the border, part of that window lies in the zero padding;
``box`` clamps it to the image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..backbone import LAYER_NAMES, layer_index
from ..errors import NeuralensError

# Output channels ("units") of every layer, by block (conv, relu and pool of a block share them).
_BLOCK_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of one VGG19 layer.

    ``size``: side of the square window of image pixels that one unit sees (padding included);
    ``jump``: image pixels between neighbouring activation positions (the layer's total stride);
    ``start``: image coordinate of the centre of the window of activation position 0.
    """

    layer: str
    size: int
    jump: int
    start: float

    def to_dict(self) -> dict:
        return {"layer": self.layer, "size": self.size, "jump": self.jump, "start": self.start}

    def center(self, y: int, x: int) -> Tuple[float, float]:
        """Image coordinates (cy, cx) of the centre of the receptive field of activation position (y, x)."""
        return self.start + y * self.jump, self.start + x * self.jump

    def box(self, y: int, x: int, image_size: Optional[Tuple[int, int]] = None) -> Tuple[int, int, int, int]:
        """Pixel box (left, top, right, bottom), right/bottom exclusive as in PIL's ``crop``, of the receptive
        field of position (y, x). With ``image_size`` = (width, height) the box is clamped to the image."""
        cy, cx = self.center(y, x)
        half = (self.size - 1) / 2
        # centre - half is a whole number: size and the doubled centre have opposite parities by construction.
        left, top = int(round(cx - half)), int(round(cy - half))
        right, bottom = left + self.size, top + self.size
        if image_size is not None:
            width, height = image_size
            left, top = max(0, left), max(0, top)
            right, bottom = min(width, right), min(height, bottom)
        return left, top, right, bottom

    def output_size(self, image_size: Tuple[int, int]) -> Tuple[int, int]:
        """(width, height) of this layer's activation map for an input image of ``image_size``."""
        pools = sum(1 for name in LAYER_NAMES[: layer_index(self.layer) + 1] if name.startswith("pool"))
        width, height = image_size
        for _ in range(pools):  # 2x2/2 pooling floors odd sizes
            width, height = width // 2, height // 2
        return width, height


@functools.cache
def receptive_fields() -> Dict[str, ReceptiveField]:
    """The receptive field of every VGG19 layer (conv1_1 ... pool5), computed layer by layer from the input."""
    size, jump, start = 1, 1, 0.0  # the input: each "unit" is one pixel
    table: Dict[str, ReceptiveField] = {}
    for name in LAYER_NAMES:
        if name.startswith("conv"):
            kernel, stride, padding = 3, 1, 1
        elif name.startswith("pool"):
            kernel, stride, padding = 2, 2, 0
        else:
            kernel, stride, padding = 1, 1, 0  # ReLU works position by position
        size += (kernel - 1) * jump
        start += ((kernel - 1) / 2 - padding) * jump
        jump *= stride
        table[name] = ReceptiveField(name, size, jump, start)
    return table


def receptive_field(layer: str) -> ReceptiveField:
    """The ``ReceptiveField`` (size, jump, start) of a VGG19 layer name; NeuralensError for an unknown name."""
    layer_index(layer)
    return receptive_fields()[layer]


def layer_units(layer: str) -> int:
    """Number of units (channels) of a VGG19 layer; NeuralensError for an unknown name."""
    layer_index(layer)
    block = int(next(ch for ch in layer if ch.isdigit()))  # conv3_2 -> 3, pool4 -> 4
    return _BLOCK_CHANNELS[block]


def check_unit(layer: str, unit: int) -> int:
    """Return ``unit`` if the layer has it, else raise NeuralensError naming the valid range."""
    count = layer_units(layer)
    if not isinstance(unit, int) or isinstance(unit, bool) or not 0 <= unit < count:
        raise NeuralensError(f"unit {unit} is out of range: {layer} has {count} units (0-{count - 1})")
    return unit
