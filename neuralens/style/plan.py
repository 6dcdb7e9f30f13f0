"""The plan of a run, made before any pixel is touched: the coarse-to-fine scales, the loss evaluations
at each, and for each whether it fits in memory whole, in tiles, or not at all.

Everything here is arithmetic on image sizes, so an impossible request (a 100000-px output, a 4000x4 photo)
is refused in milliseconds, before a single large tensor exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import torch

from ..backbone import LAYER_NAMES, layer_index
from ..errors import NeuralensError
from . import memory, tiling
from .options import StyleOptions

ANCHOR_SIZE = 512  # coarse-to-fine scales grow by sqrt(2) up to here, then double
ANCHOR_ITERATIONS = 75  # evaluations at the 512-px scale (or the output, when it is smaller)
# ... and when the output is larger: the anchor then only shapes the picture, and the evaluations it gives up buy
# more at the output scale (measured: see scale_iterations).
ANCHOR_ITERATIONS_BELOW_OUTPUT = 40
COARSE_ITERATIONS = 20  # evaluations at each scale below that (they only give the next scale a start)
MIN_ITERATIONS = 10  # at least this many at every scale above 512 px
MAX_AUTO_TILE = 1024  # automatic tiles are at most this big (px), however much memory there is
MIN_TILE = 256  # below this a tile sees too little of the picture to be worth it


def scale_sizes(size: int, scales: Optional[int], min_size: int) -> List[int]:
    """Long sides of the coarse-to-fine scales, ending at ``size``: by sqrt(2) steps up to ANCHOR_SIZE px,
    then by doubling (large scales are slow and mostly refine detail, so fewer of them).

    >>> scale_sizes(512, None, 256), scale_sizes(4000, None, 256)
    ([256, 362, 512], [250, 354, 500, 1000, 2000, 4000])
    """
    if scales is not None:
        return [round(size / math.sqrt(2) ** i) for i in reversed(range(scales))]
    big = []
    while size > ANCHOR_SIZE:
        big.append(size)
        size = round(size / 2)
    steps = max(0, round(2 * math.log2(size / min_size))) if size > min_size else 0
    return [round(size / math.sqrt(2) ** i) for i in reversed(range(steps + 1))] + big[::-1]


def scale_iterations(
    sizes: Sequence[int], iterations: Optional[int] = None, coarse_iterations: Optional[int] = None
) -> List[int]:
    """Loss evaluations for each scale of ``sizes`` (coarse to fine).

    By default the work goes where it pays, as measured on the objective (benchmarks/README.md): the scale
    closest to ANCHOR_SIZE from below (the anchor) is where the picture takes shape at a modest cost per
    evaluation, and each smaller scale gets COARSE_ITERATIONS (more there only bake in coarse brush strokes that
    the fine scale has to undo). When the anchor is the output it gets ANCHOR_ITERATIONS. When the output is
    larger, the anchor gets ANCHOR_ITERATIONS_BELOW_OUTPUT, each scale between it and the output MIN_ITERATIONS,
    and the output scale ANCHOR_ITERATIONS x (512/side)^2 (at least MIN_ITERATIONS) plus the anchor's given-up
    evaluations at the same cost in pixels (the cost per pixel is flat across sizes since the command runs
    under jemalloc or mimalloc, ``neuralens/allocator.py``). Measured on the canonical objective at full resolution
    (benchmarks/results/style_print.md, 2026-12-08): at 1024 px 20,20,40,27 gave 2.48e12 in 136 s against
    the former 20,20,75,19's 2.87e12 in 143 s; at 2048 px 20,20,40,10,12 6.29e12 in 245 s against
    20,20,75,19,10's 6.46e12 in 304 s; lower in less time at 700, 1500 and 4000 px too (benchmarks/README.md).
    ``iterations`` fixes the output scale's count, ``coarse_iterations`` every other (and then the output scale's
    default count has nothing handed to it).

    >>> scale_iterations([256, 362, 512]), scale_iterations([250, 354, 500, 1000, 2000, 4000])
    ([20, 20, 75], [20, 20, 40, 10, 10, 10])
    >>> scale_iterations([256, 362, 512, 1024]), scale_iterations([256, 362, 512, 1024, 2048])
    ([20, 20, 40, 27], [20, 20, 40, 10, 12])
    """
    anchor = max([s for s in sizes if s <= ANCHOR_SIZE], default=sizes[0])
    output = sizes[-1]

    def default(side: int) -> int:
        if side < anchor:
            return COARSE_ITERATIONS
        return max(MIN_ITERATIONS, round(ANCHOR_ITERATIONS * min(1.0, (ANCHOR_SIZE / side) ** 2)))

    plan = [default(s) for s in sizes]
    if anchor < output and anchor <= ANCHOR_SIZE and coarse_iterations is None:
        given_up = ANCHOR_ITERATIONS - ANCHOR_ITERATIONS_BELOW_OUTPUT
        plan = [
            ANCHOR_ITERATIONS_BELOW_OUTPUT if s == anchor else MIN_ITERATIONS if s > anchor else n
            for s, n in zip(sizes, plan)
        ]
        plan[-1] = default(output) + int(given_up * (anchor / output) ** 2)
    if coarse_iterations is not None:
        plan[:-1] = [coarse_iterations] * (len(sizes) - 1)
    if iterations is not None:
        plan[-1] = iterations
    return plan


def plan_scales(options: StyleOptions) -> List[Tuple[int, int]]:
    """[(long side, loss evaluations), ...] coarse to fine for ``options`` (scales with none are left out).

    >>> plan_scales(StyleOptions())
    [(256, 20), (362, 20), (512, 75)]
    """
    sizes = scale_sizes(options.size, options.scales, options.min_scale_size)
    plan = list(zip(sizes, scale_iterations(sizes, options.iterations, options.coarse_iterations)))
    return [(side, n) for side, n in plan if n > 0] or plan[-1:]


def scaled_shape(height: int, width: int, long_side: int) -> Tuple[int, int]:
    """(H, W) of a height x width image scaled so that its long side is ``long_side``.

    >>> scaled_shape(384, 512, 256)
    (192, 256)
    """
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def smallest_side(layers: Iterable[str]) -> int:
    """The smallest image side (px) VGG19 can take up to the deepest of ``layers``: each 2x2 pooling before
    it halves the grid, and a grid must keep at least one cell.

    >>> smallest_side(["relu4_2"]), smallest_side(["relu1_1", "relu5_1"])
    (8, 16)
    """
    deepest = max(layers, key=layer_index)
    pools = sum(1 for name in LAYER_NAMES[: layer_index(deepest)] if name.startswith("pool"))
    return 2**pools


def check_shape(width: int, height: int, size: int, what: str, min_side: int = 16) -> None:
    """Refuse (NeuralensError) an image whose short side, once its long side is ``size`` px, is smaller than
    ``min_side`` (16 px for the default style layers, see ``smallest_side``). ``what`` names the image."""
    if min(width, height) <= 0:
        raise NeuralensError(f"{what}: image has no pixels")
    h, w = scaled_shape(height, width, size)
    if min(h, w) < min_side:
        need = math.ceil(min_side * max(width, height) / min(width, height))
        raise NeuralensError(
            f"{what} ({width}x{height}) is too thin: at a long side of {size} px its short side is "
            f"{min(h, w)} px, and the network needs at least {min_side} px (crop the image, or "
            f"use a size of {need} px or more)"
        )


@dataclass
class ScalePlan:
    """One scale of a run: its long side, image shape, loss evaluations per tile, and its tiles."""

    long_side: int
    shape: Tuple[int, int]  # (H, W)
    iterations: int
    tile: Optional[int]  # tile size in px, None when the scale is optimised whole
    boxes: List[Optional[tiling.Box]]

    @property
    def evaluations(self) -> int:
        return self.iterations * len(self.boxes)


def tile_for(width: int, height: int, options: StyleOptions, precision: str, device: torch.device) -> Optional[int]:
    """The tile size for optimising a width x height image, or None when it fits whole.

    Raises NeuralensError (naming the largest size that fits) when it does not fit and tiling is off, when
    even a small tile would not fit, or when the whole image's copies kept beside the tiles do not fit."""
    o = options
    budget = int(o.max_memory_gb * memory.GB) if o.max_memory_gb else memory.available_bytes(device)
    if o.tile_size:
        tile = o.tile_size if max(width, height) > o.tile_size else None
    else:
        problem = memory.check_fits(width, height, precision, o.optimizer, device, budget)
        if problem is None:
            return None
        tile = min(MAX_AUTO_TILE, memory.largest_fitting_long_side(1.0, precision, o.optimizer, budget))
        tile = tile // tiling.GRID * tiling.GRID
        if o.tile_size == 0 or tile < MIN_TILE:
            raise NeuralensError(problem + ("" if o.tile_size == 0 else " (even in tiles)"))
    if tile is not None:
        problem = memory.check_tiled_fits(width, height, tile, precision, o.optimizer, device, budget)
        if problem is not None:
            raise NeuralensError(problem)
    return tile


def tile_overlap(options: StyleOptions, tile: Optional[int]) -> int:
    """Pixels shared by neighbouring tiles: the option, at most a quarter of the tile."""
    return min(int(options.tile_overlap), (tile or 0) // 4)


def plan_run(
    options: StyleOptions,
    height: int,
    width: int,
    precision: str,
    device: torch.device,
    min_side: int = 16,
    styles: Sequence[Tuple[str, int, int]] = (),
) -> List[ScalePlan]:
    """The whole run for a content image of height x width px: each scale with its shape, evaluations and
    tiles. ``styles``: (name, width, height) of the style images, used at ``style_scale`` times each scale.

    Scales at which an image would be thinner than ``min_side`` px are left out (an elongated panorama
    starts at a larger scale); a request that cannot work at all is refused here, before any work."""
    images = [("content image", width, height, 1.0)] + [(name, w, h, options.style_scale) for name, w, h in styles]

    def thin(long_side: int) -> bool:
        return any(min(scaled_shape(h, w, max(1, round(long_side * factor)))) < min_side for _, w, h, factor in images)

    for what, w, h, factor in images:
        check_shape(w, h, max(1, round(options.size * factor)), what, min_side)
    plan = []
    for long_side, iterations in reversed(plan_scales(options)):  # the output scale first: refusals name it
        if thin(long_side):
            continue
        h, w = scaled_shape(height, width, long_side)
        tile = tile_for(w, h, options, precision, device)
        boxes = tiling.tile_boxes(h, w, tile, tile_overlap(options, tile)) if tile else [None]
        plan.append(ScalePlan(long_side, (h, w), iterations, tile, boxes))
    return plan[::-1]
