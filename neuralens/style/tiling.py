"""High resolution beyond what fits in memory: optimise the image in overlapping tiles.

Each tile is optimised against its own content features and the style Gram targets of the whole image
(Grams are position-normalised, so a tile's Gram can be compared to the whole style's). Tiles are visited in
raster order, each starting from the current image (so it continues what its neighbours painted), and written
back with weights that ramp across the overlap: no seam where tiles meet.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Tuple

import torch

Box = Tuple[int, int, int, int]  # y0, y1, x0, x1

# relu5_x positions are 16 px apart: tile cores on a 16-px grid keep feature maps aligned with pixels.
GRID = 16


def _starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of tiles of ``tile`` px covering ``length`` px with at least ``overlap`` px shared."""
    if length <= tile:
        return [0]
    step = tile - overlap
    count = -(-(length - overlap) // step)  # ceil
    # Spread the tiles evenly so the last one ends exactly at the border.
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def fitted_side(length: int, tile: int, overlap: int) -> int:
    """The tile side along an axis of ``length`` px: as few tiles as ``tile`` px allow, each only as long as
    covering the axis with ``overlap`` px shared needs (rounded up to GRID). Squares of the full ``tile`` spread
    over the axis share far more than the overlap: at 4000x3000 with 1024-px tiles and 128 px of overlap, 20
    tiles of 1024x1024 (21.0 Mpx optimised for a 12 Mpx image) against 20 of 912x848 (15.5 Mpx), and the cost
    of a tile evaluation follows its pixels (benchmarks/results/style_speed_amd_avx2.md)."""
    if length <= tile:
        return length
    count = -(-(length - overlap) // (tile - overlap))  # ceil
    side = -(-(length + (count - 1) * overlap) // count)
    return min(tile, length, -(-side // GRID) * GRID)


def tile_boxes(height: int, width: int, tile: int, overlap: int) -> List[Box]:
    """Overlapping boxes (y0, y1, x0, x1), each at most ``tile`` px a side (``fitted_side`` along each axis),
    covering the whole image."""
    tile_h, tile_w = fitted_side(height, tile, overlap), fitted_side(width, tile, overlap)
    return [
        (y, y + tile_h, x, x + tile_w)
        for y in _starts(height, tile_h, overlap)
        for x in _starts(width, tile_w, overlap)
    ]


def feather(box: Box, height: int, width: int, overlap: int) -> torch.Tensor:
    """Blending weights (1, 1, h, w) for a tile: 1 inside, ramping to 0 across ``overlap`` px on every side
    that borders another tile (sides on the image's border stay at 1)."""
    y0, y1, x0, x1 = box
    h, w = y1 - y0, x1 - x0

    def ramp(n: int, start_inside: bool, end_inside: bool) -> torch.Tensor:
        r = torch.ones(n)
        k = min(overlap, n // 2)
        if k > 0:
            edge = (torch.arange(k, dtype=torch.float32) + 0.5) / k
            if start_inside:
                r[:k] = torch.minimum(r[:k], edge)
            if end_inside:
                r[n - k :] = torch.minimum(r[n - k :], edge.flip(0))
        return r

    wy = ramp(h, y0 > 0, y1 < height)
    wx = ramp(w, x0 > 0, x1 < width)
    return (wy[:, None] * wx[None, :]).view(1, 1, h, w)


@torch.no_grad()
def tiled_grams(
    features: Callable[[torch.Tensor, Iterable[str]], Dict[str, torch.Tensor]],
    image: torch.Tensor,
    layers: Iterable[str],
    tile: int,
    halo: int = 64,
) -> Dict[str, torch.Tensor]:
    """Position-normalised Gram matrices of a large image, computed tile by tile.

    A Gram matrix is a sum over positions, so the sum of the tiles' Grams over disjoint cores equals the
    whole image's; each tile is run with ``halo`` extra pixels of context, cropped away at every layer."""
    layers = list(layers)
    _, _, height, width = image.shape
    core = max(GRID, (tile - 2 * halo) // GRID * GRID)
    sums: Dict[str, torch.Tensor] = {}
    positions: Dict[str, int] = {}
    for y in range(0, height, core):
        for x in range(0, width, core):
            ty0, tx0 = max(0, y - halo), max(0, x - halo)
            ty1, tx1 = min(height, y + core + halo), min(width, x + core + halo)
            feats = features(image[:, :, ty0:ty1, tx0:tx1], layers)
            for layer, f in feats.items():
                stride = (ty1 - ty0) / f.shape[2]  # 1, 2, 4, 8 or 16
                fy0, fx0 = round((y - ty0) / stride), round((x - tx0) / stride)
                fy1 = round((min(height, y + core) - ty0) / stride)
                fx1 = round((min(width, x + core) - tx0) / stride)
                part = f[:, :, fy0:fy1, fx0:fx1]
                if part.numel() == 0:
                    continue
                flat = part.reshape(part.shape[0], part.shape[1], -1).float()
                sums[layer] = sums.get(layer, 0) + torch.bmm(flat, flat.transpose(1, 2))
                positions[layer] = positions.get(layer, 0) + flat.shape[2]
    return {layer: sums[layer] / positions[layer] for layer in sums}
