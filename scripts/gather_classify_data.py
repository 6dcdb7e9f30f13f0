"""Build real two-class photo datasets available offline, for the transfer-learning benchmark (issue 14).

    python scripts/gather_classify_data.py -o data/classify [--crops 10] [--no-scenery] [--verbose]

Two datasets, each a folder in the layout ``neuralens classify train`` reads, with a ``MANIFEST.csv`` listing
every file with its class, split, source, original, licence, credit and SHA-256:

``lfw-faces/`` -- scikit-image's ``lfw_subset`` (``skimage/data/lfw_subset.npy``, read out of the installed
    package or of its wheel fetched with ``pip download --no-deps``; scikit-image is not installed for this): 100
    face crops and 100 non-face crops, 25x25 grey, all cut by the scikit-image authors from the photos of Labeled
    Faces in the Wild (the non-faces from their backgrounds). Written as ``face/`` and ``nonface/`` PNGs, exactly
    the stored pixels (rounded to 8 bits). No split is written: the benchmark holds half out with ``val_split``.
    The file's SHA-256 is checked against the one in scikit-image's own data registry.

``plants-scenery/`` -- the free-licensed photos ``scripts/gather_photos.py`` gathers for the style networks
    (Debian's MATE and KDE Plasma wallpapers, the shared sample photos), of which 20 fall into two real
    categories, chosen by eye (``CATEGORIES``): close-ups of plants and flowers, and scenery (a landscape,
    water or sky to the horizon). The other photos (a water drop, wood, cups, architecture, a cat, a coffee, a
    rocket, an astronaut, a galaxy field) are left out. Half of each class's photos (the same ones on every
    run: ``gather_photos.choose_holdout``) go to ``val/``, the rest to ``train/``, so no photo is on both sides;
    each photo gives ``--crops`` files: the whole photo and seeded square crops of 60-100 % of its short side,
    flipped half the time, 320 px. Crops of one photo are alike, so its validation accuracy rests on 10 photos,
    not on the number of files.

Running it again gives the same files (crops are seeded by the photo's name; PNG/JPEG encoding is deterministic
for one Pillow version) and removes files an earlier run listed that are no longer made. Any problem is one
line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import os
import random
import re
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
MANIFEST = "MANIFEST.csv"
FIELDS = ("file", "class", "split", "source", "original", "licence", "credit", "sha256")
LFW_MEMBER = "skimage/data/lfw_subset.npy"
LFW_CLASSES = ("face", "nonface")  # the first 100 rows are faces, the next 100 non-faces (lfw_subset's docstring)
LFW_LICENCE = "BSD-3-Clause (scikit-image's licence, 'Files: *'); LFW itself states no licence"
LFW_CREDIT = (
    "scikit-image lfw_subset: crops of Labeled Faces in the Wild (Huang, Ramesh, Berg, Learned-Miller 2007; "
    "news photos collected from the web), non-faces from the same photos' backgrounds"
)
CROP_SIDE = 320
CROP_FRACTION = (0.6, 1.0)
JPEG_QUALITY = 92
DEFAULT_CROPS = 10

# Two real categories among the photos gather_photos.py keeps, checked by eye (Dec 2026; Debian 12's
# mate-backgrounds 1.26.0-1 and plasma-workspace-wallpapers 4:5.27.5-2, the shared Tübingen photo).
# plant: the picture is filled by leaves, grass, moss or flowers seen from close by.
# scenery: a view into the distance: a horizon, open water or sky (mate-dune has grass in front of the sea, and
# plasma-path is a forest path: scenery with plants in it, kept as the honest hard cases).
CATEGORIES: Dict[str, str] = {
    "mate-blinds": "plant",
    "mate-freshflower": "plant",
    "mate-garden": "plant",
    "mate-greenmeadow": "plant",
    "mate-ladybird": "plant",
    "mate-raindrops": "plant",
    "mate-twowings": "plant",
    "mate-yellowflower": "plant",
    "plasma-fallenleaf": "plant",
    "plasma-onestandsout": "plant",
    "mate-dune": "scenery",
    "mate-storm": "scenery",
    "plasma-bythewater": "scenery",
    "plasma-coldripple": "scenery",
    "plasma-darkesthour": "scenery",
    "plasma-eveningglow": "scenery",
    "plasma-kite": "scenery",
    "plasma-path": "scenery",
    "plasma-summer-1am": "scenery",
    "shared-tubingen": "scenery",
}


def load_gather_photos():
    """scripts/gather_photos.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gather_photos", HERE / "gather_photos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gather_photos"] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


gp = load_gather_photos()
GatherError = gp.GatherError


# -- lfw_subset ---------------------------------------------------------------------------------------------
def _registry_hash(text: str) -> Optional[str]:
    """The SHA-256 scikit-image's skimage/data/_registry.py records for data/lfw_subset.npy."""
    found = re.search(r'"data/lfw_subset\.npy":\s*"([0-9a-f]{64})"', text)
    return found.group(1) if found else None


def read_lfw_subset(workdir: Path) -> Tuple[np.ndarray, str]:
    """(the (200, 25, 25) array in [0, 1], 'scikit-image VERSION'), from the installed package or its wheel;
    its bytes checked against scikit-image's registry hash."""
    spec = importlib.util.find_spec("skimage")
    if spec is not None and spec.origin:
        data = Path(spec.origin).parent / "data"
        raw = (data / "lfw_subset.npy").read_bytes() if (data / "lfw_subset.npy").is_file() else None
        registry = (data / "_registry.py").read_text(encoding="utf-8") if (data / "_registry.py").is_file() else ""
        label = f"scikit-image {gp._installed_version('scikit-image')}".strip()
    else:
        report = gp.Report()
        wheel = gp._download_wheel("scikit-image", workdir, report)
        if wheel is None:
            raise GatherError(report.notes[-1] if report.notes else "scikit-image's wheel could not be fetched")
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            raw = archive.read(LFW_MEMBER) if LFW_MEMBER in names else None
            registry = archive.read("skimage/data/_registry.py").decode("utf-8", "replace")
        label = f"scikit-image {wheel.name.split('-')[1]}"
    if raw is None:
        raise GatherError(f"{label} has no {LFW_MEMBER}")
    expected = _registry_hash(registry)
    digest = hashlib.sha256(raw).hexdigest()
    if expected is not None and digest != expected:
        raise GatherError(f"{LFW_MEMBER}: SHA-256 {digest[:12]}... is not the registry's {expected[:12]}...")
    images = np.load(io.BytesIO(raw), allow_pickle=False)
    if images.shape != (200, 25, 25):
        raise GatherError(f"{LFW_MEMBER}: expected 200 images of 25x25, got shape {images.shape}")
    return images, label


def lfw_files(images: np.ndarray, source: str) -> List[Tuple[Dict[str, str], bytes]]:
    """(manifest row, PNG bytes) for every face and non-face."""
    out = []
    for index, array in enumerate(images):
        label = LFW_CLASSES[index // 100]
        number = index % 100
        pixels = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, mode="L").save(buffer, format="PNG", optimize=True)
        row = {
            "file": f"{label}/lfw-{label}-{number:03d}.png",
            "class": label,
            "split": "",
            "source": source,
            "original": f"{LFW_MEMBER}[{index}]",
            "licence": LFW_LICENCE,
            "credit": LFW_CREDIT,
        }
        out.append((row, buffer.getvalue()))
    return out


# -- plants and scenery -------------------------------------------------------------------------------------
def crop_views(image: Image.Image, name: str, count: int) -> List[Image.Image]:
    """The whole photo (short side CROP_SIDE) and ``count - 1`` seeded square crops of 60-100 % of its short
    side, flipped half the time, CROP_SIDE square."""
    rng = random.Random(f"gather-classify/{name}")
    scale = CROP_SIDE / min(image.size)
    whole = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    views = [whole]
    for _ in range(count - 1):
        side = round(min(image.size) * rng.uniform(*CROP_FRACTION))
        left, top = rng.randint(0, image.width - side), rng.randint(0, image.height - side)
        crop = image.crop((left, top, left + side, top + side)).resize((CROP_SIDE, CROP_SIDE), Image.LANCZOS)
        views.append(crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return views


def scenery_files(
    workdir: Path, crops: int, packages: Sequence[str]
) -> Tuple[List[Tuple[Dict[str, str], bytes]], List[str]]:
    """(manifest row, JPEG bytes) for the crops of every categorised photo, and notes on what was missing."""
    photos = workdir / "photos"
    rows, report = gp.gather(photos, 0, gp.DEFAULT_SHARED, packages, skimage=False)
    notes = list(report.notes)
    by_name = {Path(row["file"]).stem: row for row in rows}
    missing = sorted(set(CATEGORIES) - set(by_name))
    if missing:
        notes.append(f"plants-scenery: {len(missing)} photo(s) not found, left out: {', '.join(missing)}")
    present = [name for name in CATEGORIES if name in by_name]
    val = set()
    for label in sorted(set(CATEGORIES.values())):
        members = [name for name in present if CATEGORIES[name] == label]
        if len(members) < 2:
            raise GatherError(f"plants-scenery: class {label} has {len(members)} photo(s); at least 2 are needed")
        val.update(gp.choose_holdout(members, len(members) // 2))
    out = []
    for name in sorted(present):
        source = by_name[name]
        label = CATEGORIES[name]
        split = "val" if name in val else "train"
        with Image.open(photos / source["file"]) as opened:
            image = opened.convert("RGB")
        for number, view in enumerate(crop_views(image, name, crops)):
            buffer = io.BytesIO()
            view.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
            what = "whole photo" if number == 0 else f"crop {number}"
            row = {
                "file": f"{split}/{label}/{name}-{number:02d}.jpg",
                "class": label,
                "split": split,
                "source": source["source"],
                "original": f"{source['original_path']} ({what})",
                "licence": source["licence"],
                "credit": source["credit"],
            }
            out.append((row, buffer.getvalue()))
    return out, notes


# -- writing ------------------------------------------------------------------------------------------------
def _write_bytes(path: Path, data: bytes) -> None:
    """Atomic write (temporary file in the same folder, then rename), left as it is when already identical."""
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_dataset(folder: Path, files: Sequence[Tuple[Dict[str, str], bytes]]) -> List[Dict[str, str]]:
    """Write the files and MANIFEST.csv into ``folder``; remove files the old manifest lists that are gone."""
    old = set()
    if (folder / MANIFEST).is_file():
        with (folder / MANIFEST).open(newline="", encoding="utf-8") as handle:
            old = {row["file"] for row in csv.DictReader(handle) if row.get("file")}
    rows = []
    for row, data in files:
        _write_bytes(folder / row["file"], data)
        rows.append({**row, "sha256": hashlib.sha256(data).hexdigest()})
    wanted = {row["file"] for row in rows}
    root = folder.resolve()
    for rel in sorted(old - wanted):
        stale = (folder / rel).resolve()
        if stale.is_file() and root in stale.parents:  # only files inside the dataset, as the manifest named them
            stale.unlink()
    rows.sort(key=lambda r: r["file"])
    tmp = folder / f".{MANIFEST}.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, folder / MANIFEST)
    return rows


def describe(name: str, rows: Sequence[Dict[str, str]]) -> str:
    """'lfw-faces: 200 files (face 100, nonface 100)' with the split where there is one."""
    counts: Dict[str, int] = {}
    for row in rows:
        key = f"{row['split']}/{row['class']}" if row["split"] else row["class"]
        counts[key] = counts.get(key, 0) + 1
    return f"{name}: {len(rows)} files (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")"


def gather(
    output: Path, crops: int = DEFAULT_CROPS, scenery: bool = True, packages: Sequence[str] = gp.DEFAULT_PACKAGES
) -> Tuple[Dict[str, List[Dict[str, str]]], List[str]]:
    """Both datasets into ``output``; returns ({dataset: manifest rows}, notes)."""
    if crops < 1:
        raise GatherError(f"--crops must be at least 1, got {crops}")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GatherError(f"{output}: cannot create the output folder ({exc.strerror or exc})") from None
    datasets: Dict[str, List[Dict[str, str]]] = {}
    notes: List[str] = []
    with tempfile.TemporaryDirectory(prefix="gather-classify-") as tmp:
        workdir = Path(tmp)
        images, source = read_lfw_subset(workdir)
        try:
            datasets["lfw-faces"] = write_dataset(output / "lfw-faces", lfw_files(images, source))
            if scenery:
                files, notes = scenery_files(workdir, crops, packages)
                datasets["plants-scenery"] = write_dataset(output / "plants-scenery", files)
        except OSError as exc:
            raise GatherError(f"{output}: writing failed ({exc.strerror or exc})") from None
    return datasets, notes


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gather_classify_data.py",
        description="Build real two-class photo datasets available offline (scikit-image's lfw_subset faces vs "
        "non-faces; plant close-ups vs scenery from the Debian wallpapers) for neuralens classify.",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--crops", type=int, default=DEFAULT_CROPS, help="files per scenery photo (default %(default)s)"
    )
    parser.add_argument("--no-scenery", action="store_true", help="only lfw-faces (no apt download)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every file written")
    args = parser.parse_args(argv)
    try:
        datasets, notes = gather(args.output, args.crops, not args.no_scenery)
    except GatherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for name, rows in datasets.items():
        if args.verbose:
            for row in rows:
                print(f"{name}/{row['file']}: {row['original']} ({row['licence']})")
        print(describe(f"{args.output / name}", rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
