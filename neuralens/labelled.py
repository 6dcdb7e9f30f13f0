"""Labelled photo folders, read the same way by every trainer (``classify train``, ``faces train``).

A folder holds one sub-folder of photos per class (per person for faces), or ``train/`` and ``val/`` folders
that each hold one sub-folder per class. The traps that users of Keras' ``image_dataset_from_directory`` keep
falling into are closed here: the class order is the sorted NFC names (the same on every machine and file
system, stored with the model), an empty class folder or a single class is refused by name, identical files
(by SHA-256 of their bytes) are reported when they sit in two classes or in both train and val, and the split
is seeded, stratified and never separates identical files.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import NeuralensError
from .imageio import is_image_name

SPLIT_FOLDERS = ("train", "val")
# A class with fewer than this fraction of the largest class's images gets a warning: with 1:10 a classifier
# can score 91 % by never answering the small class.
UNBALANCED_RATIO = 0.1


@dataclass(frozen=True)
class LabelledImage:
    """One photo: its path, class name, SHA-256 of its bytes, and 'train'/'val' when the folder says so."""

    path: Path
    label: str
    sha256: str
    split: Optional[str] = None


@dataclass
class LabelledFolder:
    """What ``read_labelled_folder`` found: the classes in their stored order, the images, and what is odd."""

    root: Path
    classes: List[str]
    images: List[LabelledImage]
    has_split: bool = False
    duplicates: List[List[LabelledImage]] = field(default_factory=list)  # identical files with another label/split

    def labels(self) -> np.ndarray:
        """Class index of every image, shape (n,)."""
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([index[im.label] for im in self.images], dtype=np.int64)

    def counts(self, split: Optional[str] = None) -> Dict[str, int]:
        """{class: number of images} in class order (``split``: only that part of a train/val layout)."""
        out = dict.fromkeys(self.classes, 0)
        for im in self.images:
            if split is None or im.split == split:
                out[im.label] += 1
        return out

    def without(self, paths: Sequence[Path]) -> LabelledFolder:
        """The same folder less the images at ``paths`` (files found unreadable later)."""
        gone = {Path(p) for p in paths}
        kept = [im for im in self.images if im.path not in gone]
        duplicates = [[im for im in group if im.path not in gone] for group in self.duplicates]
        return LabelledFolder(self.root, self.classes, kept, self.has_split, [g for g in duplicates if len(g) > 1])

    def warnings(self) -> List[str]:
        """One line per thing a user should look at: unbalanced classes, identical files across labels/splits."""
        lines = []
        counts = self.counts()
        largest = max(counts.values(), default=0)
        small = [f"{name} ({n})" for name, n in counts.items() if n < UNBALANCED_RATIO * largest]
        if small:
            lines.append(
                f"unbalanced classes: {', '.join(small)} against {largest} in the largest; "
                "add photos there (the loss weighs classes equally, but so few photos say little)"
            )
        for group in self.duplicates:
            where = ", ".join(self.describe(im) for im in group)
            kind = "in two classes" if len({im.label for im in group}) > 1 else "in both train and val"
            lines.append(f"identical files {kind}: {where}")
        return lines

    def describe(self, image: LabelledImage) -> str:
        """The image's path relative to the root, for messages."""
        try:
            return str(image.path.relative_to(self.root))
        except ValueError:
            return str(image.path)

    def to_dict(self) -> dict:
        return {
            "root": str(self.root),
            "classes": list(self.classes),
            "counts": self.counts(),
            "images": len(self.images),
            "has_split": self.has_split,
            "duplicates": [[self.describe(im) for im in group] for group in self.duplicates],
            "warnings": self.warnings(),
        }


def class_name(folder: Path) -> str:
    """A class's name: its folder name in Unicode NFC (macOS stores names decomposed, Linux as typed)."""
    return unicodedata.normalize("NFC", folder.name)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes; NeuralensError if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise NeuralensError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    return digest.hexdigest()


def _class_folders(folder: Path) -> List[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: class_name(p)
    )


def _images_in(folder: Path) -> List[Path]:
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and is_image_name(p) and not p.name.startswith(".")),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def read_labelled_folder(
    folder: Union[str, Path],
    min_classes: int = 2,
    empty: str = "error",
    noun: str = "class",
    progress: Optional[Callable[[int, int], None]] = None,
) -> LabelledFolder:
    """Read a folder of labelled photos (hashing every file); returns a ``LabelledFolder``.

    ``empty``: 'error' refuses a class folder without images (naming it), 'skip' leaves it out. Fewer than
    ``min_classes`` classes is refused. ``noun`` ('class', 'person') words the messages. Photos in nested
    folders of a class count for that class. ``progress(done, total)`` is called while hashing."""
    root = Path(folder)
    if not root.is_dir():
        raise NeuralensError(f"{root}: no such folder")
    subfolders = _class_folders(root)
    names = {p.name for p in subfolders}
    has_split = "train" in names and "val" in names and all(p.name in SPLIT_FOLDERS for p in subfolders)
    parts: List[Tuple[Optional[str], Path]] = (
        [(split, root / split) for split in SPLIT_FOLDERS] if has_split else [(None, root)]
    )
    files: List[Tuple[Path, str, Optional[str]]] = []
    classes: List[str] = []
    for split, part in parts:
        for class_folder in _class_folders(part):
            name = class_name(class_folder)
            found = _images_in(class_folder)
            where = f"{split}/{class_folder.name}" if split else class_folder.name
            if not found:
                if empty == "error" and split != "val":
                    raise NeuralensError(
                        f"{root}: the {noun} folder '{where}' has no images; add photos or remove the folder"
                    )
                continue
            if name not in classes:
                if split == "val":
                    raise NeuralensError(f"{root}: '{where}' is in val/ but not in train/; every {noun} needs both")
                classes.append(name)
            files += [(path, name, split) for path in found]
    if not files:
        raise NeuralensError(f"{root}: no photos found (expected one sub-folder of photos per {noun})")
    classes.sort()
    if len(classes) < min_classes:
        found_names = ", ".join(classes)
        raise NeuralensError(
            f"{root}: found {len(classes)} {noun} ({found_names}); at least {min_classes} are needed, "
            f"one sub-folder of photos per {noun}"
        )
    images = []
    for i, (path, name, split) in enumerate(files):
        images.append(LabelledImage(path, name, file_sha256(path), split))
        if progress:
            progress(i + 1, len(files))
    images.sort(key=lambda im: (classes.index(im.label), SPLIT_FOLDERS.index(im.split or "train"), str(im.path)))
    return LabelledFolder(root, classes, images, has_split, _duplicates(images))


def _duplicates(images: Sequence[LabelledImage]) -> List[List[LabelledImage]]:
    by_hash: Dict[str, List[LabelledImage]] = {}
    for im in images:
        by_hash.setdefault(im.sha256, []).append(im)
    return [
        group
        for group in by_hash.values()
        if len({im.label for im in group}) > 1 or len({im.split for im in group}) > 1
    ]


def stratified_split(
    labels: Sequence[int],
    fraction: float,
    seed: int = 0,
    groups: Optional[Sequence[str]] = None,
    keep: int = 1,
) -> Tuple[np.ndarray, np.ndarray]:
    """A seeded held-out split that takes about ``fraction`` of every class (rounded, at least one where the
    class has more than ``keep`` items) and leaves at least ``keep`` of each class for training. Items with
    the same ``groups`` value (the file's hash) always land on the same side, so an identical copy never
    leaks into validation. Returns boolean masks (train, held_out). Same labels + seed = same split.

    >>> train, held = stratified_split([0, 0, 0, 0, 1, 1, 1, 1], 0.25, seed=1)
    >>> int(held.sum()), sorted(set(int(x) for x in held.nonzero()[0] // 4))
    (2, [0, 1])
    """
    labels = np.asarray(labels)
    if not 0 < fraction < 1:
        raise NeuralensError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    keys = np.asarray(groups) if groups is not None else np.arange(len(labels)).astype(str)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        unique_keys = sorted(set(keys[members].tolist()))  # sorted first: the order files were listed in is irrelevant
        if len(unique_keys) <= keep:
            continue
        count = min(len(unique_keys) - keep, max(1, int(round(fraction * len(unique_keys)))))
        chosen = set(rng.permutation(unique_keys)[:count].tolist())
        held[members[np.isin(keys[members], list(chosen))]] = True
    held &= ~np.isin(keys, keys[~held])  # a copy in another class stays with its training twin
    return ~held, held
