"""Group the faces of a folder of photos by person, without knowing who anyone is; then name a group.

    result = cluster(find_images("holiday/"))          # ClusterResult: groups of faces, largest first
    write_report(result, "faces.html")                 # the report, with a contact sheet per group
    with Gallery() as gallery:
        enroll_group(gallery, result, 1, "Ada")        # EnrollResult

Every face is detected and encoded as ``identify`` does; two faces are linked when their embeddings are
within the threshold (the gallery's calibrated one when a gallery exists, else dlib's 0.6), and dlib's
Chinese whispers clustering (Biemann 2006) groups the linked faces. It needs no number of groups and is
deterministic (dlib seeds it), so the same folder gives the same groups, numbered by size (largest first,
then by first photo name): a later ``--enroll-cluster ID NAME`` run over the same folder names the same
group.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw

from ..errors import NeuralensError
from ..progress import Progress
from . import api
from .api import DEFAULT_THRESHOLD, Face
from .gallery import Gallery
from .models import Pipeline
from .recognition import MAX_YAW, MIN_FACE, MIN_SHARPNESS, EnrollResult, check_quality, image_sha256, lookalikes

THUMBNAIL = 112  # px per face on a contact sheet: big enough to recognise someone, 8 across fit a screen
SHEET_COLUMNS = 8
SHEET_MAX_FACES = 64  # a sheet shows this many faces of a group at most; the report gives the count


@dataclass
class FoundFace:
    """One face of one photo: the photo's path and the face (box, embedding, quality)."""

    photo: str
    face: Face

    def to_dict(self) -> dict:
        """A JSON-ready form: the photo and the face's summary."""
        return {"photo": self.photo, **self.face.to_dict()}


@dataclass
class Group:
    """The faces taken to be one person. ``id`` is 1-based, largest group first."""

    id: int
    faces: List[FoundFace]
    sheet: Optional[str] = None  # the contact sheet's path, once written

    @property
    def photos(self) -> List[str]:
        """The photos the group's faces come from, each once, in order."""
        return list(dict.fromkeys(f.photo for f in self.faces))

    def to_dict(self) -> dict:
        """A JSON-ready form: id, size, photos, faces and the sheet's path."""
        return {
            "id": self.id,
            "size": len(self.faces),
            "photos": self.photos,
            "faces": [f.to_dict() for f in self.faces],
            "sheet": self.sheet,
        }


@dataclass
class ClusterResult:
    """Groups of faces (largest first), the threshold used, the photos read and those without a face."""

    groups: List[Group]
    threshold: float
    photos: int
    without_faces: List[str] = field(default_factory=list)
    report: Optional[str] = None

    @property
    def faces(self) -> int:
        """The number of faces found, in all groups together."""
        return sum(len(g.faces) for g in self.groups)

    def group(self, number: int) -> Group:
        """The group with id ``number``; NeuralensError when there is none."""
        if not 1 <= number <= len(self.groups):
            raise NeuralensError(f"no group {number}: the photos gave {len(self.groups)} group(s)")
        return self.groups[number - 1]

    def to_dict(self) -> dict:
        """A JSON-ready form of everything (without the embeddings)."""
        return {
            "photos": self.photos,
            "faces": self.faces,
            "threshold": self.threshold,
            "groups": [g.to_dict() for g in self.groups],
            "without_faces": list(self.without_faces),
            "report": self.report,
        }


def find_faces(
    photos: Sequence[Union[str, os.PathLike]], pipeline: Optional[Pipeline] = None, upsample: int = 1, progress=True
) -> tuple:
    """Detect and encode every face of every photo (with a progress bar). Returns (a list of
    ``FoundFace``, the photos where no face was found)."""
    pipeline = pipeline or Pipeline()
    found: List[FoundFace] = []
    empty: List[str] = []
    with Progress(len(photos), "finding faces", unit="photo", enabled=progress) as bar:
        for photo in photos:
            faces = api.encode(photo, pipeline=pipeline, upsample=upsample)
            if not faces:
                empty.append(str(photo))
            found += [FoundFace(str(photo), face) for face in faces]
            bar.update(1, status=f"{len(found)} faces")
    return found, empty


def group_faces(found: Sequence[FoundFace], threshold: float) -> List[Group]:
    """Chinese whispers over the faces' embeddings, linking pairs closer than ``threshold``. Returns the
    groups numbered by size (largest first), ties by the first photo's name."""
    if not found:
        return []
    import dlib  # noqa: PLC0415 -- already loaded by the encoding

    labels = dlib.chinese_whispers_clustering([dlib.vector(f.face.embedding.tolist()) for f in found], threshold)
    members: Dict[int, List[FoundFace]] = {}
    for label, face in zip(labels, found):
        members.setdefault(int(label), []).append(face)
    ordered = sorted(members.values(), key=lambda faces: (-len(faces), faces[0].photo, faces[0].face.index))
    return [Group(number, faces) for number, faces in enumerate(ordered, start=1)]


def cluster(
    photos: Sequence[Union[str, os.PathLike]],
    threshold: Optional[float] = None,
    gallery: Optional[Gallery] = None,
    detector: Optional[str] = None,
    jitter: Optional[int] = None,
    upsample: int = 1,
    progress: bool = True,
    find: Optional[Callable[..., tuple]] = None,
) -> ClusterResult:
    """Group the faces of ``photos`` by person. ``threshold`` defaults to the gallery's calibrated one
    (when ``gallery`` is given) or dlib's 0.6; the pipeline is the gallery's (so its groups can be enrolled
    there) with ``detector``/``jitter`` overriding. ``find(photos, pipeline, upsample, progress)`` finds the
    faces as ``find_faces`` (the default) does: ``functools.partial(distributed.client.find_faces_on_queue,
    queue)`` has the queue's workers do it. Returns a ``ClusterResult``."""
    if not photos:
        raise NeuralensError("cluster needs at least one photo")
    if threshold is None:
        threshold = gallery.threshold if gallery is not None else DEFAULT_THRESHOLD
    if not threshold > 0:
        raise NeuralensError(f"the threshold must be a number > 0, got {threshold}")
    pipeline = gallery.default_pipeline(detector, jitter) if gallery is not None else None
    if pipeline is None:
        pipeline = Pipeline(detector=detector or "hog", jitter=jitter or 0)
    found, empty = (find or find_faces)(photos, pipeline, upsample, progress)
    return ClusterResult(group_faces(found, float(threshold)), float(threshold), len(photos), empty)


# --- the report -----------------------------------------------------------------------------------------
def contact_sheet(group: Group, size: int = THUMBNAIL, columns: int = SHEET_COLUMNS) -> Image.Image:
    """One image with a square crop of each face of ``group`` (at most ``SHEET_MAX_FACES``), in rows of
    ``columns``. Returns a PIL image."""
    faces = group.faces[:SHEET_MAX_FACES]
    rows = (len(faces) + columns - 1) // columns
    sheet = Image.new("RGB", (min(len(faces), columns) * size, rows * size), "white")
    photos: Dict[str, Image.Image] = {}
    for i, item in enumerate(faces):
        if item.photo not in photos:
            photos = {item.photo: Image.fromarray(api.to_array(item.photo))}  # one photo in memory at a time
        left, top, right, bottom = item.face.box
        side = max(right - left, bottom - top) * 1.4  # some margin: hair and chin help to recognise
        cx, cy = (left + right) / 2, (top + bottom) / 2
        box = tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
        crop = photos[item.photo].crop(box).resize((size, size), Image.BILINEAR)
        sheet.paste(crop, ((i % columns) * size, (i // columns) * size))
    ImageDraw.Draw(sheet).rectangle((0, 0, sheet.width - 1, sheet.height - 1), outline="grey")
    return sheet


def write_report(result: ClusterResult, path: Union[str, os.PathLike]) -> Path:
    """Write an HTML page listing the groups, with a contact sheet per group in the folder
    ``<name>_sheets`` beside it (JPEG). Sets each group's ``sheet`` and the result's ``report``. Returns
    the page's path."""
    from ..imageio import save_image  # noqa: PLC0415 -- imports torch

    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise NeuralensError(f"{path}: the report is an HTML page (.html)")
    if not path.parent.is_dir():
        raise NeuralensError(f"{path}: the folder {path.parent} does not exist")
    folder = path.with_name(path.stem + "_sheets")
    folder.mkdir(exist_ok=True)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Faces by person</title>",
        "<style>body{font-family:sans-serif;margin:2em}img{display:block;margin:.5em 0 2em}</style>",
        f"<h1>{len(result.groups)} group(s) of {result.faces} face(s) in {result.photos} photo(s)</h1>",
        f"<p>Threshold {result.threshold:.3f}. Name a group with "
        "<code>neuralens faces cluster PHOTOS --enroll-cluster ID NAME</code>.</p>",
    ]
    for group in result.groups:
        sheet = folder / f"group-{group.id}.jpg"
        save_image(contact_sheet(group), sheet)
        group.sheet = str(sheet)
        more = f" (the first {SHEET_MAX_FACES} shown)" if len(group.faces) > SHEET_MAX_FACES else ""
        names = ", ".join(html.escape(Path(p).name) for p in group.photos[:20])
        parts.append(
            f"<h2>Group {group.id}: {len(group.faces)} face(s){more}</h2><p>{names}"
            f"{' ...' if len(group.photos) > 20 else ''}</p>"
            f"<img src='{html.escape(folder.name)}/{sheet.name}' alt='group {group.id}'>"
        )
    if result.without_faces:
        listing = ", ".join(html.escape(Path(p).name) for p in result.without_faces)
        parts.append(f"<h2>No face found</h2><p>{listing}</p>")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    result.report = str(path)
    return path


# --- naming a group --------------------------------------------------------------------------------------
def enroll_group(
    gallery: Gallery,
    result: ClusterResult,
    number: int,
    name: str,
    min_face: int = MIN_FACE,
    min_sharpness: float = MIN_SHARPNESS,
    max_yaw: float = MAX_YAW,
    detector: Optional[str] = None,
    jitter: Optional[int] = None,
) -> EnrollResult:
    """Enrol the faces of group ``number`` as ``name``: those big, sharp and frontal enough (the others
    are skipped, each with a warning), one per photo, and none from a photo already enrolled for them.
    ``detector``/``jitter`` must be those the result was made with (default: the gallery's). Returns an
    ``EnrollResult``; NeuralensError when no face of the group can be enrolled."""
    group = result.group(number)
    fingerprint = gallery.default_pipeline(detector, jitter).fingerprint()
    gallery.check_pipeline(fingerprint)
    existing = gallery.image_hashes(name)
    enrolled = EnrollResult(name=name, added=0)
    vectors, hashes, sources, boxes = [], [], [], []
    for item in group.faces:
        label = f"{Path(item.photo).name} face {item.face.index}"
        digest = image_sha256(item.photo)
        if digest in existing or digest in hashes:
            enrolled.skipped.append(label)
            continue
        try:
            check_quality(item.face, label, min_face, min_sharpness, max_yaw)
        except NeuralensError as exc:
            enrolled.warnings.append(f"skipped {exc}")
            continue
        vectors.append(item.face.embedding)
        hashes.append(digest)
        sources.append(Path(item.photo).name)
        boxes.append(item.face.box)
    if not vectors and not enrolled.skipped:
        raise NeuralensError(f"group {number}: no face good enough to enrol ({'; '.join(enrolled.warnings)})")
    enrolled.warnings += [f"{sources[i]}: {w}" for i, w in lookalikes(gallery, name, vectors)]
    if vectors:
        enrolled.name = gallery.add_embeddings(name, np.stack(vectors), hashes, fingerprint, sources, boxes)
        enrolled.added = len(vectors)
    else:
        enrolled.name = gallery.person(name).name
    return enrolled
