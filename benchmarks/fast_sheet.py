"""The built-in style models side by side on photos they were not trained on: one row per photo (the photo, then
each model's result), written as one sheet - the pictures to look at next to the numbers.

    python -m benchmarks.fast_sheet [--photos data/photos/holdout] [--size 384] [--out results/fast_models.jpg]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from .style_common import RESULTS, ROOT


def main(argv: Optional[Sequence[str]] = None) -> int:
    from neuralens.fast import builtin_names, load_model
    from neuralens.imageio import find_images, load_image, resize_long_side, save_image
    from neuralens.visualize.sheets import contact_sheet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=Path, default=ROOT / "data" / "photos" / "holdout")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--out", type=Path, default=RESULTS / "fast_models.jpg")
    args = p.parse_args(argv)
    names = builtin_names()
    if not names:
        raise SystemExit("error: no built-in models (see scripts/train_builtin_models.sh)")
    models = [load_model(name) for name in names]
    tiles: List = []
    captions: List[str] = []
    seconds = []
    for path in find_images(args.photos):
        photo = resize_long_side(load_image(path), args.size)
        tiles.append(photo)
        captions.append(path.name)
        for model in models:
            started = time.perf_counter()
            tiles.append(model.stylize(photo))
            seconds.append(time.perf_counter() - started)
            captions.append(model.name)
    sheet = contact_sheet(
        tiles, captions, columns=1 + len(models), title=f"built-in models on held-out photos ({args.size} px)"
    )
    save_image(sheet, args.out)
    print(
        f"wrote {args.out}: {len(tiles) // (1 + len(models))} photos x {len(models)} models, "
        f"median {sorted(seconds)[len(seconds) // 2] * 1000:.0f} ms per image"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
