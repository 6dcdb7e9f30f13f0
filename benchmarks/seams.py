"""Seam check of a tiled output: are the pixel jumps across the tiles' edges larger than elsewhere?

`python -m benchmarks.seams OUT.png --tile 1024 --overlap 128` recomputes the tile boxes neuralens used for an
image of OUT's size and compares the mean absolute difference between neighbouring columns (rows) at every
tile edge, where a seam would show, with the same measure over all columns (rows). A ratio near 1 means no
visible seam; a hard seam gives several times the typical jump.
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image

from neuralens.style import tiling


def seam_ratios(path: str, tile: int, overlap: int) -> Dict[str, float]:
    """{'columns': ratio, 'rows': ratio, 'edges': count} of edge jumps to typical jumps for ``path``."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w = pixels.shape[:2]
    col_jumps = np.abs(np.diff(pixels, axis=1)).mean(axis=(0, 2))  # jump between column x and x+1
    row_jumps = np.abs(np.diff(pixels, axis=0)).mean(axis=(1, 2))
    boxes = tiling.tile_boxes(h, w, tile, overlap)
    # Every place where a tile's region starts or ends inside the image (the feather ramps' ends).
    xs = sorted({x for _, _, x0, x1 in boxes for x in (x0, x1) if 0 < x < w})
    ys = sorted({y for y0, y1, _, _ in boxes for y in (y0, y1) if 0 < y < h})

    def at(jumps, edges):
        return float(np.mean([jumps[e - 1] for e in edges])) if edges else float("nan")

    return {
        "columns": at(col_jumps, xs) / float(col_jumps.mean()),
        "rows": at(row_jumps, ys) / float(row_jumps.mean()),
        "edges": len(xs) + len(ys),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--overlap", type=int, default=128)
    args = p.parse_args(argv)
    if args.tile < 64 or args.overlap < 0:
        p.error("--tile must be >= 64 and --overlap >= 0")
    try:
        r = seam_ratios(args.image, args.tile, args.overlap)
    except OSError as error:  # missing or unreadable file (PIL's UnidentifiedImageError is an OSError)
        print(f"seams: {args.image}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(
        f"{args.image}: {r['edges']} tile edges; jump at edges / typical jump: columns {r['columns']:.3f}, "
        f"rows {r['rows']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
