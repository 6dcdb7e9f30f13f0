"""Gather the public-domain paintings available offline into one folder, for training the AdaIN decoder.

    python scripts/gather_paintings.py -o data/paintings [--holdout shipwreck.jpg ...]

Source: the shared paintings (``../shared/data/style`` from the project root), each kept only if the table in
``../shared/data/README.md`` lists it (all pre-1928 works, public domain in the US; the work's title and painter
are recorded as its credit). Searched and not found (Dec 2026): Debian packages with paintings (``apt-cache search
painting|artwork`` lists painting programs only) and PyPI wheels already in the venv (no paintings bundled).

Each painting is resized (Lanczos) so that its short side is at most 512 px and saved as JPEG quality 92 under
its own name. ``MANIFEST.csv`` lists every file with its split, source, original path, licence and credit.
``--holdout NAME ...`` (default: shipwreck.jpg) puts those paintings into ``holdout/`` instead: train-decoder never
trains on them and the quality benchmark (benchmarks/fast_arbitrary.py) uses them. Running it again gives the
same folder.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from pathlib import Path
from typing import Dict, List, Sequence

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = ROOT.parent / "shared" / "data" / "style"
MAX_SHORT_SIDE = 512
JPEG_QUALITY = 92
MANIFEST = "MANIFEST.csv"
HOLDOUT = "holdout"
DEFAULT_HOLDOUT = ("shipwreck.jpg",)
LICENCE = "public domain (pre-1928 work, US)"
FIELDS = ("file", "split", "source", "original_path", "licence", "credit", "original_sha256", "width", "height")


def read_credits(readme: Path) -> Dict[str, str]:
    """{file name: 'Painter, Title (year)'} from the style/ table of the shared README (empty if missing)."""
    if not readme.is_file():
        return {}
    credits, in_style = {}, False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_style = line.startswith("## style/")
            continue
        match = re.match(r"\|\s*([^|]+?\.(?:jpg|jpeg|png))\s*\|\s*([^|]+?)\s*\|", line)
        if in_style and match:
            credits[match.group(1)] = match.group(2)
    return credits


def gather(shared: Path, output: Path, holdout: Sequence[str], verbose: bool = False) -> List[dict]:
    """Copy the listed paintings into ``output`` (and ``output/holdout``); returns the manifest rows."""
    credits = read_credits(shared.parent / "README.md")
    rows = []
    (output / HOLDOUT).mkdir(parents=True, exist_ok=True)
    for path in sorted(shared.glob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        if path.name not in credits:
            print(f"skipped {path.name}: not in the licence table", file=sys.stderr)
            continue
        split = "holdout" if path.name in holdout else "train"
        target = (output / HOLDOUT if split == "holdout" else output) / (path.stem + ".jpg")
        with Image.open(path) as image:
            image = image.convert("RGB")
            short = min(image.size)
            if short > MAX_SHORT_SIDE:
                scale = MAX_SHORT_SIDE / short
                image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
            image.save(target, quality=JPEG_QUALITY)
            size = image.size
        other = (output / HOLDOUT if split == "train" else output) / target.name
        other.unlink(missing_ok=True)  # moved between the splits since the last run
        rows.append(
            {
                "file": str(target.relative_to(output)),
                "split": split,
                "source": "shared",
                "original_path": str(path),
                "licence": LICENCE,
                "credit": credits[path.name],
                "original_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "width": size[0],
                "height": size[1],
            }
        )
        if verbose:
            print(f"{split}: {target}", file=sys.stderr)
    with open(output / MANIFEST, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, type=Path)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared paintings folder")
    parser.add_argument("--holdout", nargs="*", default=list(DEFAULT_HOLDOUT), metavar="NAME")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    rows = gather(args.shared, args.output, args.holdout, args.verbose)
    held = sum(r["split"] == "holdout" for r in rows)
    print(f"{len(rows)} paintings in {args.output} ({held} held out); licences in {args.output / MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
