"""`neuralens faces enroll | verify | compare | identify | list | rename | remove | import | export | cluster |
evaluate | calibrate | train`.

A thin layer over ``neuralens.faces``: parse, call the API, print. Exit status: 0 on success (and for
verify/compare: same person), 1 when verify/compare say 'different people', 2 on a user error.

This module has ``register`` (every `faces` subcommand), the option helpers the commands share and the
gallery and recognition commands (enroll, verify, compare, identify, list, rename, remove, import, export,
cluster); the
evaluation, calibration and training commands are in ``cli_evaluate``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from ..errors import NeuralensError
from . import api, recognition
from .gallery import EmptyGallery, GalleryBase, gallery_target, open_gallery
from .heads import load_head
from .metric import EuclideanMetric, Metric
from .models import DETECTORS, Pipeline
from .recognition import MAX_YAW, MIN_FACE, MIN_SHARPNESS

DIFFERENT = 1  # exit status of verify/compare for 'not the same person', like grep's 'no match'


# --- shared options -----------------------------------------------------------------------------------
def _gallery_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gallery",
        metavar="PATH|URL",
        help="gallery file, or postgresql://... for the shared PostgreSQL gallery (default: $NEURALENS_GALLERY, "
        "else faces.sqlite3 in your data folder)",
    )


def _pipeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        default=None,
        help="face detector: hog (default, fast) or cnn (finds more faces, much slower on a CPU)",
    )
    parser.add_argument(
        "--jitter",
        type=int,
        default=None,
        metavar="N",
        help="encode N jittered copies of each face and average them (default 0)",
    )
    parser.add_argument(
        "--upsample",
        type=int,
        default=1,
        metavar="N",
        help="upsample the photo N times before detection to find smaller faces (default 1)",
    )


def _face_choice(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--largest", action="store_true", help="use the largest face when there are several")
    group.add_argument("--face", type=int, metavar="N", help="use face number N (1 = leftmost)")


def _head_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--head", metavar="FILE", help="a head trained with `neuralens faces train`")


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _open(args, create: bool = False) -> GalleryBase:
    return open_gallery(args.gallery, create=create)


def _existing_gallery(args) -> Optional[GalleryBase]:
    """The gallery when it exists (for its threshold and pipeline); None otherwise."""
    target = gallery_target(args.gallery)
    if isinstance(target, Path) and not target.exists():
        return None
    try:
        return open_gallery(target, create=False)
    except EmptyGallery:
        return None


def _shown(target) -> str:
    """A gallery target as messages show it: a file's path, a URL without its password."""
    if isinstance(target, str):
        from .postgres import redact  # noqa: PLC0415

        return redact(target)
    return str(target)


def _head(args) -> Optional[Metric]:
    """The trained head named by --head, as a metric; None without --head."""
    return load_head(args.head) if getattr(args, "head", None) else None


def _print_json(data) -> None:
    print(json.dumps(data, indent=2))


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _verdict(result: api.Comparison) -> str:
    return (
        f"same person: {'yes' if result.same else 'no'} (distance {result.distance:.3f}, threshold "
        f"{result.threshold:.3f}, confidence {result.confidence:.2f})"
    )


# --- commands -----------------------------------------------------------------------------------------
def cmd_enroll(args) -> int:
    """Enrol a person from one or more photos (or folders of them)."""
    from ..imageio import find_images  # noqa: PLC0415 -- imports torch

    photos = find_images(args.photos)
    with _open(args, create=True) as gallery:
        result = recognition.enroll(
            gallery,
            args.name,
            photos,
            largest=args.largest,
            face=args.face,
            detector=args.detector,
            jitter=args.jitter,
            upsample=args.upsample,
            min_face=args.min_face,
            min_sharpness=args.min_sharpness,
            max_yaw=args.max_yaw,
        )
        for warning in result.warnings:
            _warn(warning)
        if args.json:
            _print_json({**result.to_dict(), "gallery": str(gallery.path)})
            return 0
        skipped = ""
        if result.skipped:
            skipped = f" ({len(result.skipped)} photo(s) already enrolled: {', '.join(result.skipped)})"
        print(f"enrolled {result.name}: {result.added} embedding(s) added{skipped} in {gallery.path}")
    return 0


def cmd_verify(args) -> int:
    """Is the face in PHOTO the enrolled person NAME?"""
    with _open(args) as gallery:
        result = recognition.verify(
            gallery,
            args.photo,
            args.name,
            metric=_head(args),
            largest=args.largest,
            face=args.face,
            detector=args.detector,
            jitter=args.jitter,
            upsample=args.upsample,
        )
    if args.json:
        _print_json(result.to_dict())
    else:
        print(f"{args.photo} as {result.details['name']}: {_verdict(result)}")
    return 0 if result.same else DIFFERENT


def cmd_compare(args) -> int:
    """Do two photos show the same person?"""
    metric, pipeline = _evaluation_setup(args)
    result = recognition.compare(
        args.photo_a,
        args.photo_b,
        threshold=args.threshold,
        detector=pipeline.detector,
        jitter=pipeline.jitter,
        largest=args.largest,
        metric=metric,
    )
    if args.json:
        _print_json(result.to_dict())
    else:
        print(_verdict(result))
    return 0 if result.same else DIFFERENT


def cmd_identify(args) -> int:
    """Who is in PHOTO?"""
    from ..imageio import check_output_path, save_image  # noqa: PLC0415 -- imports torch
    from .draw import annotate  # noqa: PLC0415

    if args.output:
        check_output_path(args.output)
    with _open(args) as gallery:
        matches = recognition.identify(
            gallery, args.photo, metric=_head(args), detector=args.detector, jitter=args.jitter, upsample=args.upsample
        )
    if not matches:
        raise NeuralensError(f"{args.photo}: no face found")
    if args.output:
        save_image(annotate(args.photo, matches), args.output)
    if args.json:
        _print_json({"faces": [m.to_dict() for m in matches], "annotated": args.output})
        return 0
    for m in matches:
        left, top, right, bottom = m.face.box
        where = f"face {m.face.index} at ({left},{top})-({right},{bottom})"
        if m.name:
            print(f"{where}: {m.name} (distance {m.distance:.3f}, confidence {m.confidence:.2f})")
        else:
            print(f"{where}: unknown (nearest {m.nearest} at {m.distance:.3f} > threshold {m.threshold:.3f})")
    if args.output:
        print(f"annotated image written to {args.output}")
    return 0


def cmd_list(args) -> int:
    """Everyone enrolled."""
    gallery = _existing_gallery(args)
    if gallery is None:
        path, people, threshold = _shown(gallery_target(args.gallery)), [], None
    else:
        path, people, threshold = gallery.path, gallery.persons(), gallery.threshold
        gallery.close()
    if args.json:
        _print_json(
            {
                "gallery": str(path),
                "threshold": threshold or api.DEFAULT_THRESHOLD,
                "persons": [p.to_dict() for p in people],
            }
        )
    elif not people:
        print(f"nobody enrolled yet in {path}")
    else:
        width = max(len(p.name) for p in people)
        for p in people:
            print(f"{p.name:<{width}}  {p.embeddings} embedding(s)  enrolled {p.created}")
    return 0


def cmd_rename(args) -> int:
    """Rename an enrolled person."""
    with _open(args) as gallery:
        old = gallery.person(args.old).name
        new = gallery.rename(args.old, args.new)
    print(f"renamed {old} to {new}")
    return 0


def cmd_remove(args) -> int:
    """Remove a person for good."""
    with _open(args) as gallery:
        name = gallery.person(args.name).name
        count = gallery.remove(args.name)
    if isinstance(gallery.path, Path):
        print(f"removed {name} ({count} embedding(s)); the gallery file has been scrubbed of them")
    else:  # PostgreSQL: see docs/faces.md on what VACUUM, WAL and backups keep
        print(f"removed {name} ({count} embedding(s)) from {gallery.path}")
    return 0


def cmd_import(args) -> int:
    """Bulk import of names and embeddings from an .npz, CSV or JSON Lines file."""
    from .bulk import import_file  # noqa: PLC0415

    with _open(args, create=True) as gallery:
        result = import_file(gallery, args.file)
        for warning in result.warnings:
            _warn(warning)
        if args.json:
            _print_json({**result.to_dict(), "gallery": str(gallery.path)})
            return 0
        skipped = f", {result.skipped} already stored" if result.skipped else ""
        print(
            f"imported {result.added} embedding(s) of {result.people} people ({result.new_people} new{skipped}) "
            f"into {gallery.path} in {result.store_seconds + result.index_seconds:.1f} s"
        )
    return 0


def cmd_export(args) -> int:
    """Write every embedding with its name to an .npz, CSV or JSON Lines file."""
    from .bulk import export_file, file_format  # noqa: PLC0415

    file_format(args.output)  # an unknown extension is refused before the gallery is opened
    with _open(args) as gallery:
        result = export_file(gallery, args.output)
    if args.json:
        _print_json(result.to_dict())
    else:
        print(f"exported {result.embeddings} embedding(s) of {result.people} people to {result.path}")
    return 0


def cmd_cluster(args) -> int:
    """Group the faces of a folder of photos by person; write a report; name groups."""
    from ..imageio import find_images  # noqa: PLC0415 -- imports torch
    from .cluster import cluster, enroll_group, write_report  # noqa: PLC0415

    if args.output:  # checked before the slow part, so a long run never ends with nowhere to write
        if Path(args.output).suffix.lower() not in (".html", ".htm"):
            raise NeuralensError(f"{args.output}: the report is an HTML page (.html)")
        if not Path(args.output).parent.is_dir():
            raise NeuralensError(f"{args.output}: the folder {Path(args.output).parent} does not exist")
    naming = [(_group_number(number), name) for number, name in args.enroll_cluster or []]
    find = _queue_finder(args)
    photos = find_images(args.photos, recursive=args.recursive)
    gallery = _open(args, create=True) if naming else _existing_gallery(args)
    try:
        result = cluster(
            photos,
            args.threshold,
            gallery,
            detector=args.detector,
            jitter=args.jitter,
            upsample=args.upsample,
            find=find,
        )
        if args.output:
            write_report(result, args.output)
        enrolled = [
            enroll_group(gallery, result, number, name, detector=args.detector, jitter=args.jitter)
            for number, name in naming
        ]
    finally:
        if gallery is not None:
            gallery.close()
    for item in enrolled:
        for warning in item.warnings:
            _warn(warning)
    if args.json:
        _print_json({**result.to_dict(), "enrolled": [e.to_dict() for e in enrolled]})
        return 0
    print(f"{result.faces} face(s) in {result.photos} photo(s): {len(result.groups)} group(s)")
    for group in result.groups:
        shown = ", ".join(Path(p).name for p in group.photos[:6]) + (" ..." if len(group.photos) > 6 else "")
        print(f"  group {group.id}: {len(group.faces)} face(s) in {shown}")
    if result.without_faces:
        print(f"no face in {len(result.without_faces)} photo(s)")
    if result.report:
        print(f"report with contact sheets written to {result.report}")
    for item in enrolled:
        print(f"enrolled {item.name}: {item.added} embedding(s) added")
    return 0


def _queue_finder(args):
    """With --broker, the faces are found by the queue's workers (``find`` for ``cluster``); None otherwise."""
    from ..distributed.options import QueueOptions  # noqa: PLC0415 -- the options only: no Celery, no Redis

    queue = QueueOptions(args.broker, args.storage).validate()
    if queue.broker is None:
        return None
    import functools  # noqa: PLC0415

    from ..distributed.client import find_faces_on_queue  # noqa: PLC0415 -- Celery and Redis only when asked

    return functools.partial(find_faces_on_queue, queue)


def _group_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise NeuralensError(f"--enroll-cluster: the group must be a number, got '{text}'") from None


def _evaluation_setup(args):
    """The metric and pipeline for compare/evaluate/calibrate/train: --head, else the gallery's Euclidean
    metric (its calibrated threshold) when the gallery exists, else the defaults; the pipeline likewise."""
    gallery = _existing_gallery(args)
    if gallery is None:
        metric, pipeline = EuclideanMetric(), Pipeline(detector=args.detector or "hog", jitter=args.jitter or 0)
    else:
        with gallery:
            metric, pipeline = gallery.metric(), gallery.default_pipeline(args.detector, args.jitter)
    return _head(args) or metric, pipeline


# --- wiring -------------------------------------------------------------------------------------------
def register(subparsers) -> None:
    """Add `neuralens faces ...`."""
    faces = subparsers.add_parser(
        "faces",
        help="face verification and recognition",
        description="Face verification (1:1) and identification (1:K) from one photo per person. See docs/faces.md.",
    )
    faces.set_defaults(func=lambda args: (faces.print_help(), 2)[1])
    sub = faces.add_subparsers(dest="faces_command", metavar="COMMAND")

    p = sub.add_parser("enroll", help="add a person from one or more photos")
    p.add_argument("name", help="the person's name")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="photo(s) of the person, or folders of them")
    _face_choice(p)
    p.add_argument(
        "--min-face",
        type=int,
        default=MIN_FACE,
        metavar="PX",
        help=f"smallest accepted face, in pixels (default {MIN_FACE})",
    )
    p.add_argument(
        "--min-sharpness",
        type=float,
        default=MIN_SHARPNESS,
        metavar="X",
        help=f"least accepted sharpness (variance of the Laplacian; default {MIN_SHARPNESS:g})",
    )
    p.add_argument(
        "--max-yaw",
        type=float,
        default=MAX_YAW,
        metavar="X",
        help=f"most accepted head turn (nose offset / eye distance; default {MAX_YAW:g})",
    )
    _pipeline_options(p), _gallery_option(p), _json_option(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("verify", help="is the person in PHOTO the enrolled NAME? (exit 0 yes, 1 no)")
    p.add_argument("photo", metavar="PHOTO")
    p.add_argument("--as", dest="name", required=True, metavar="NAME", help="the enrolled person to check against")
    _face_choice(p), _head_option(p), _pipeline_options(p), _gallery_option(p), _json_option(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compare", help="do two photos show the same person? (exit 0 yes, 1 no)")
    p.add_argument("photo_a", metavar="PHOTO_A")
    p.add_argument("photo_b", metavar="PHOTO_B")
    p.add_argument("--largest", action="store_true", help="use the largest face when there are several")
    p.add_argument("--threshold", type=float, help="distance threshold (default: the gallery's, else 0.6)")
    _head_option(p), _pipeline_options(p), _gallery_option(p), _json_option(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("identify", help="name every face in PHOTO")
    p.add_argument("photo", metavar="PHOTO")
    p.add_argument("-o", "--output", metavar="IMAGE", help="write a copy with boxes and names")
    _head_option(p), _pipeline_options(p), _gallery_option(p), _json_option(p)
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("list", help="list enrolled people")
    _gallery_option(p), _json_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("rename", help="rename an enrolled person")
    p.add_argument("old", metavar="NAME")
    p.add_argument("new", metavar="NEW_NAME")
    _gallery_option(p)
    p.set_defaults(func=cmd_rename)

    p = sub.add_parser("remove", help="delete a person and their embeddings for good")
    p.add_argument("name", metavar="NAME")
    _gallery_option(p)
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("import", help="add names and embeddings from an .npz, CSV or JSON Lines file")
    p.add_argument("file", metavar="FILE", help="names + 128-d embeddings (.npz, .csv, .jsonl); see docs/faces.md")
    _gallery_option(p), _json_option(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write every embedding with its name to an .npz, CSV or JSON Lines file")
    p.add_argument(
        "gallery",
        nargs="?",
        metavar="GALLERY",
        help="gallery file or postgresql:// URL (default: $NEURALENS_GALLERY, else the default)",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write (.npz, .csv, .jsonl)")
    _json_option(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("cluster", help="group the faces of a folder of photos by person; name a group to enrol it")
    p.add_argument("photos", nargs="+", metavar="PHOTOS", help="folder(s) or photo files")
    p.add_argument("-o", "--output", metavar="REPORT.html", help="write an HTML report with a contact sheet per group")
    p.add_argument("--recursive", action="store_true", help="also take the photos in sub-folders")
    p.add_argument(
        "--threshold", type=float, help="link faces closer than this (default: the gallery's threshold, else 0.6)"
    )
    p.add_argument(
        "--enroll-cluster",
        nargs=2,
        action="append",
        metavar=("ID", "NAME"),
        help="enrol group ID as NAME in the gallery (may be given several times)",
    )
    _pipeline_options(p), _gallery_option(p), _json_option(p)
    from .. import options as option_specs  # noqa: PLC0415
    from ..distributed.options import QueueOptions  # noqa: PLC0415 -- the options only: no Celery, no Redis

    option_specs.add_arguments(
        p.add_argument_group("on a job queue: faces found by `neuralens worker` processes (docs/scale-out.md)"),
        QueueOptions,
    )
    p.set_defaults(func=cmd_cluster)

    from . import cli_evaluate  # noqa: PLC0415 -- it imports this module's helpers

    cli_evaluate.add_commands(sub)
