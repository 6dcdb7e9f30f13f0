"""The classifier part of the API: classes of photos, training on them (a job), predictions, the model file.

One project per server, like the style results and the faces gallery: the server is a single user's tool
(loopback, or one shared token), so there is nothing to tell browser sessions apart by, and a page reloaded or
opened twice sees the same classes, training and model. ``curl`` needs no cookie either.

The web layer stays thin. It keeps the project's photos in the server's workspace (under the style jobs'
results root, made and cleaned up by ``workspace``): each class a folder named by a server-made id, each photo
the uploaded bytes (checked as an image by ``uploads``) under the hash of its content, a small thumbnail beside
them for the page. Training copies that layout, with the class names as folder names, into the job's own
folder (hard links: no bytes copied) and hands it to ``neuralens.classify.train`` on a ``JobManager`` worker:
the same bounded queue, cancel and versioned snapshots as style jobs. Edits made while a model trains do not
touch what it trains on. The options form is generated from ``ClassifyOptions``' specs (``web_fields``), with
this server's caps on the few that cost time or memory (``SERVER_MAXIMUM``), so defaults and limits have one
source; the refusals (one class, an empty class) are the library's own messages.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import math
import os
import shutil
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Dict, List, Literal, Optional, Tuple

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, UploadFile
from fastapi.responses import FileResponse
from PIL import Image
from pydantic import BaseModel, Field
from starlette.responses import Response

from .. import classify
from ..classify import Classifier, ClassifyOptions
from ..errors import Interrupted, NeuralensError
from ..faces.names import REFUSED_CATEGORIES, name_key
from ..labelled import read_labelled_folder
from ..options import Spec, specs, web_fields
from .jobs import CANCELLED, DONE, FAILED, FINISHED, QUEUED, RUNNING, JobManager, status_fields
from .live import digest
from .security import error_responses
from .shapes import Deleted, JobStatusOut, OptionField
from .uploads import FORMATS, UploadError, decode_image, read_limited

# Limits of the one project (the server's disk and the page's patience), reported by GET /api/classify.
MAX_CLASSES = 50
MAX_PHOTOS = 2000
MAX_PROJECT_BYTES = 1_000_000_000
MAX_CLASS_NAME = 60  # characters; at 4 UTF-8 bytes each still under the 255-byte file name limit
THUMBNAIL_SIDE = 128
# The options the server sets itself (where the backbone runs is the server's --device).
SERVER_SET = ("device",)
# This server's caps on options that cost time or memory without a limit of their own (fine-tuning trains
# the backbone's last block on every photo, once per epoch). They become the form's maximum, so the schema
# and the page know them.
SERVER_MAXIMUM: Dict[str, float] = {
    "epochs": 5000,
    "hidden": 4096,
    "fine_tune": 20,
    "batch_images": 64,
    "batch_size": 4096,
}
SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
NONE_WORD = "none"  # as the style form: a nullable choice sent as text
CLASS_ID = Path(pattern=r"^[0-9a-f]{12}$", description="a class id as listed by GET /api/classify")
PHOTO_ID = Path(pattern=r"^[0-9a-f]{32}$", description="a photo id (32 hex digits of its SHA-256)")
JOB_ID = Path(pattern=r"^[0-9a-f]{32}$", description="a training id as returned by POST /api/classify/train")

WEB_SPECS: Dict[str, Spec] = {
    name: spec for name, spec in specs(ClassifyOptions).items() if spec.web is True and name not in SERVER_SET
}
DEFAULTS: Dict[str, Any] = {f.name: f.default for f in dataclasses.fields(ClassifyOptions)}


# --- the options form ------------------------------------------------------------------------------------
def option_fields() -> List[dict]:
    """The training options as the page builds its form from them: ``web_fields(ClassifyOptions)`` less what
    the server sets, with this server's caps as maxima."""
    fields = []
    for item in web_fields(ClassifyOptions):
        if item["name"] in SERVER_SET:
            continue
        cap = SERVER_MAXIMUM.get(item["name"])
        if cap is not None:
            item = {**item, "maximum": cap if item["maximum"] is None else min(cap, item["maximum"])}
        fields.append(item)
    return fields


def _form_parameter(name: str, spec: Spec) -> inspect.Parameter:
    if spec.choices is not None:
        kind: Any = Literal[tuple(NONE_WORD if c is None else c for c in spec.choices)]
    else:
        kind = {"int": int, "float": float, "bool": bool}.get(spec.kind, str)
    limits = {
        key: value
        for key, value in (("ge", spec.minimum), ("le", spec.maximum), ("gt", spec.above))
        if value is not None and spec.kind in ("int", "float")
    }
    if name in SERVER_MAXIMUM:
        limits["le"] = min(SERVER_MAXIMUM[name], limits.get("le", SERVER_MAXIMUM[name]))
    if spec.kind == "float":
        limits["allow_inf_nan"] = False
    description = spec.help + (f" (empty: {spec.none_help})" if spec.nullable and spec.none_help else "")
    default = Form(DEFAULTS[name], description=description, **limits)
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Optional[kind] if spec.nullable else kind,
    )


def options_form():
    """A FastAPI dependency whose parameters are the training options as form fields; returns ClassifyOptions
    (checked: an OptionError names the field) with the server's device."""

    def read(**values: Any) -> Dict[str, Any]:
        return values

    read.__signature__ = inspect.Signature([_form_parameter(name, spec) for name, spec in WEB_SPECS.items()])
    return read


# --- the project: classes and photos on disk ---------------------------------------------------------------
@dataclass
class PhotoClass:
    """One class: its name (shown, and the label the model learns) and its photos (id -> file suffix)."""

    id: str
    name: str
    photos: OrderedDict[str, str] = field(default_factory=OrderedDict)
    created: float = field(default_factory=time.time)


class BadName(NeuralensError):
    """A name that cannot be a class name (the API answers 400)."""


def class_name(name: str) -> str:
    """A class name as stored: NFC, stripped. NeuralensError (one line) when it cannot be one: empty, too long,
    with control or invisible characters, or unusable as a folder name (a slash, a leading dot)."""
    name = unicodedata.normalize("NFC", name or "").strip()
    if not name:
        raise BadName("a class name cannot be empty")
    if len(name) > MAX_CLASS_NAME:
        raise BadName(f"class name {name[:40]!r}...: at most {MAX_CLASS_NAME} characters")
    bad = next((ch for ch in name if unicodedata.category(ch) in REFUSED_CATEGORIES or ch in "/\\"), None)
    if bad is not None:
        raise BadName(
            f"class name {name[:40]!r}: U+{ord(bad):04X} is not allowed (no slashes, control or invisible characters)"
        )
    if name.startswith("."):
        raise BadName(f"class name {name[:40]!r}: cannot start with a dot")
    return name


class Project:
    """The classes and photos of this server, kept under ``root`` (``photos/<class id>/<photo id>.<ext>`` and
    ``thumbs/<photo id>.jpg``), and the latest trained model. Thread-safe (routes run in the threadpool)."""

    def __init__(self, root: FilePath):
        self.root = root
        self.photos_root = root / "photos"
        self.thumbs = root / "thumbs"
        self.photos_root.mkdir(parents=True, exist_ok=True)
        self.thumbs.mkdir(exist_ok=True)
        self.classes: OrderedDict[str, PhotoClass] = OrderedDict()
        self.bytes = 0
        self.lock = threading.RLock()
        self.model: Optional[Tuple[str, Classifier, FilePath]] = None  # (job id, classifier, file)

    def find(self, class_id: str) -> PhotoClass:
        with self.lock:
            found = self.classes.get(class_id)
        if found is None:
            raise HTTPException(404, f"no class {class_id} (GET /api/classify lists them)")
        return found

    def _check_unique(self, name: str, other_than: Optional[str] = None) -> None:
        key = name_key(name)  # "Cats" and "cats" would be one folder on macOS and Windows: one class
        for entry in self.classes.values():
            if entry.id != other_than and name_key(entry.name) == key:
                raise HTTPException(409, f"there is already a class called {entry.name!r}")

    def add_class(self, name: str) -> PhotoClass:
        name = class_name(name)
        with self.lock:
            if len(self.classes) >= MAX_CLASSES:
                raise NeuralensError(f"this server keeps at most {MAX_CLASSES} classes; delete one first")
            self._check_unique(name)
            entry = PhotoClass(uuid.uuid4().hex[:12], name)
            (self.photos_root / entry.id).mkdir()
            self.classes[entry.id] = entry
            return entry

    def rename(self, class_id: str, name: str) -> PhotoClass:
        name = class_name(name)
        with self.lock:
            entry = self.find(class_id)
            self._check_unique(name, other_than=class_id)
            entry.name = name
            return entry

    def photo_path(self, entry: PhotoClass, photo_id: str) -> FilePath:
        return self.photos_root / entry.id / f"{photo_id}{entry.photos[photo_id]}"

    def _in_use(self, photo_id: str) -> bool:
        return any(photo_id in entry.photos for entry in self.classes.values())

    def _forget(self, entry: PhotoClass, photo_id: str) -> None:
        path = self.photo_path(entry, photo_id)
        self.bytes -= path.stat().st_size if path.exists() else 0
        path.unlink(missing_ok=True)
        del entry.photos[photo_id]
        if not self._in_use(photo_id):
            (self.thumbs / f"{photo_id}.jpg").unlink(missing_ok=True)

    def delete_class(self, class_id: str) -> PhotoClass:
        with self.lock:
            entry = self.find(class_id)
            for photo_id in list(entry.photos):
                self._forget(entry, photo_id)
            del self.classes[class_id]
            shutil.rmtree(self.photos_root / class_id, ignore_errors=True)
            return entry

    def delete_photo(self, class_id: str, photo_id: str) -> None:
        with self.lock:
            entry = self.find(class_id)
            if photo_id not in entry.photos:
                raise HTTPException(404, f"class {entry.name!r} has no photo {photo_id}")
            self._forget(entry, photo_id)

    def add_photos(self, class_id: str, uploads: List[Tuple[bytes, Image.Image, str]]) -> Tuple[List[str], List[str]]:
        """Store checked uploads (bytes, decoded image, format) in a class; returns (ids added, ids it had)."""
        with self.lock:
            entry = self.find(class_id)
            total = sum(len(e.photos) for e in self.classes.values())
            if total + len(uploads) > MAX_PHOTOS:
                raise NeuralensError(f"this server keeps at most {MAX_PHOTOS} photos ({total} now); delete some first")
            size = sum(len(data) for data, _, _ in uploads)
            if self.bytes + size > MAX_PROJECT_BYTES:
                raise UploadError(
                    f"the classes would hold more than this server's {MAX_PROJECT_BYTES // 1_000_000} MB of photos",
                    413,
                )
            added, had = [], []
            for data, image, kind in uploads:
                photo_id = digest(data)
                if photo_id in entry.photos:
                    had.append(photo_id)
                    continue
                entry.photos[photo_id] = SUFFIXES[kind]
                # The uploaded bytes as they came (a server-made name): the model sees what the user chose.
                path = self.photo_path(entry, photo_id)
                path.write_bytes(data)
                self.bytes += len(data)
                thumb = self.thumbs / f"{photo_id}.jpg"
                if not thumb.exists():
                    small = image.copy()
                    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
                    small.save(thumb, format="JPEG", quality=85)
                added.append(photo_id)
            return added, had

    def thumbnail(self, photo_id: str) -> FilePath:
        path = self.thumbs / f"{photo_id}.jpg"
        with self.lock:
            if not self._in_use(photo_id) or not path.is_file():
                raise HTTPException(404, f"no photo {photo_id}")
        return path

    def snapshot(self, folder: FilePath) -> None:
        """The classes as ``neuralens.classify.train`` reads them: ``folder/<class name>/<photo>`` (hard links
        where the file system allows, else copies), so later edits do not change what a training sees."""
        with self.lock:
            for entry in self.classes.values():
                target = folder / entry.name
                target.mkdir(parents=True)
                for photo_id in entry.photos:
                    source = self.photo_path(entry, photo_id)
                    try:
                        os.link(source, target / source.name)
                    except OSError:
                        shutil.copyfile(source, target / source.name)

    def to_dict(self) -> dict:
        with self.lock:
            return {
                "classes": [
                    {
                        "id": entry.id,
                        "name": entry.name,
                        "count": len(entry.photos),
                        "photos": [
                            {"id": photo_id, "thumbnail": f"/api/classify/photos/{photo_id}/thumbnail"}
                            for photo_id in entry.photos
                        ],
                    }
                    for entry in self.classes.values()
                ],
                "photos": sum(len(e.photos) for e in self.classes.values()),
                "bytes": self.bytes,
            }


# --- training jobs ----------------------------------------------------------------------------------------
@dataclass
class TrainingJob:
    """One training of the project's classes, with what the API reports about it (the fields ``JobManager``
    handles: id, folder, status, created/started/finished, version, cancel_requested)."""

    id: str
    folder: FilePath
    options: ClassifyOptions
    classes: List[str]
    status: str = QUEUED
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    finished: Optional[float] = None
    stage: Optional[str] = None  # features, head, fine-tune, saving
    features: Dict[str, int] = field(default_factory=dict)  # done, total
    epochs: List[dict] = field(default_factory=list)  # each epoch's row, with its stage
    log: List[str] = field(default_factory=list)  # the library's summary and warnings
    error: Optional[str] = None
    result: Optional[dict] = None
    version: int = 0
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def data(self) -> FilePath:
        return self.folder / "data"

    @property
    def model_path(self) -> FilePath:
        return self.folder / "model.pt"

    def to_dict(self) -> dict:
        base = f"/api/classify/jobs/{self.id}"
        return {
            **status_fields(self),
            "elapsed": round((self.finished or time.time()) - self.started, 3) if self.started else None,
            "classes": list(self.classes),
            "options": dataclasses.asdict(self.options),
            "stage": self.stage,
            "features": dict(self.features),
            "epochs": [dict(row) for row in self.epochs],
            "log": list(self.log),
            "error": self.error,
            "result": self.result,
            "urls": {
                "self": base,
                "cancel": f"{base}/cancel",
                "model": "/api/classify/model" if self.status == DONE else None,
            },
        }


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (JSON has neither; a loss on no photos is
    NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def web_result(classifier: Classifier) -> dict:
    """What the page shows of a finished training, from the library's report: the server's file paths
    become photo ids (the page has their thumbnails)."""
    report = classifier.report.to_dict()
    validation = report["validation"]
    if validation is not None:
        validation = {
            **validation,
            "mistakes": [{**m, "source": None, "photo": FilePath(m["source"]).stem} for m in validation["mistakes"]],
        }
    return finite(
        {
            "classes": list(classifier.classes),
            "train_images": report["train_images"],
            "val_images": report["val_images"],
            "train_accuracy": report["train_accuracy"],
            "accuracy": report["val_accuracy"],
            "validation": validation,
            "best_epoch": report["history"]["best_epoch"],
            "stopped_early": report["history"]["stopped_early"],
            "fine_tuned": report["fine_tune"]["kept"],
            "seconds": report["seconds"],
        }
    )


class TrainingManager(JobManager):
    """``JobManager``'s queue, workers, cancel and snapshots, running ``neuralens.classify.train`` on the
    job's folder. Its root is inside the style jobs' root, which the server removes when it stops."""

    def __init__(self, root: FilePath, project: Project, max_queue: int, train: Optional[Any] = None):
        super().__init__(workers=1, max_queue=max_queue, root=root)
        self.project = project
        self.train = train or classify.train  # or distributed.web.QueueTrainer: on the job queue

    def submit_training(self, options: ClassifyOptions) -> TrainingJob:
        """Snapshot the classes into a new job folder, check them as the library does, and queue the job.
        Raises QueueFull, or the library's NeuralensError for classes it would refuse (one class, an empty one)."""
        self.start()
        self._check_free()
        job_id = uuid.uuid4().hex
        job = TrainingJob(job_id, self.root / job_id, options, [])
        job.data.mkdir(parents=True)
        try:
            self.project.snapshot(job.data)
            try:
                folder = read_labelled_folder(job.data)
            except NeuralensError as exc:
                # The library's message, without the server's folder in front of it.
                raise NeuralensError(
                    str(exc).replace(f"{job.data}: ", "").replace(str(job.data), "the classes")
                ) from None
            job.classes = list(folder.classes)
            with self._changed:
                self._check_free()  # again: another request may have queued one meanwhile
                self._jobs[job_id] = job
                self._waiting.append(job)
                self._touch(job)
        except BaseException:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise
        return job

    def _check_free(self) -> None:
        """Raise unless a training may be queued now: one at a time (the project has one set of classes)."""
        with self._changed:
            if self._closing:
                raise NeuralensError("the server is shutting down")
            self.ensure_room()
            if any(job.status in (QUEUED, RUNNING) for job in self._jobs.values()):
                raise HTTPException(409, "a training is already queued or running; wait for it or cancel it")

    def _run(self, job: TrainingJob) -> None:
        def on_features(done: int, total: int) -> None:
            with self._changed:
                job.stage, job.features = "features", {"done": done, "total": total}
                self._touch(job)

        def on_epoch(stage: str, epoch: int, row: dict) -> None:
            with self._changed:
                job.stage = stage
                job.epochs.append(finite({"stage": stage, **row}))
                self._touch(job)

        def log(line: str) -> None:
            with self._changed:
                job.log.append(line.replace(str(job.data), "the classes"))
                self._touch(job)

        try:
            classifier = self.train(
                job.data,
                job.model_path,
                job.options,
                log=log,
                on_features=on_features,
                on_epoch=on_epoch,
                should_stop=job.cancel_requested.is_set,
            )
            with self._changed:
                job.result = web_result(classifier)
                job.status, job.stage = DONE, None
                # On the job queue, epochs that went by between two looks arrive at the end: put them in place.
                job.epochs.sort(key=lambda row: (row["stage"] == "fine-tune", row["epoch"]))
            with self.project.lock:
                previous = self.project.model
                self.project.model = (job.id, classifier, job.model_path)
            if previous is not None:
                shutil.rmtree(self.root / previous[0], ignore_errors=True)  # one model kept: the latest
        except Interrupted:  # should_stop() said so: the page's Cancel
            with self._changed:
                job.status = CANCELLED
        except NeuralensError as exc:
            self._fail(job, str(exc).replace(str(job.data), "the classes"))
        except MemoryError:
            self._fail(job, "out of memory; try fewer photos or a smaller batch_images")
        except Exception as exc:  # noqa: BLE001 -- one bad job must not kill the worker thread
            self._fail(job, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(job.data, ignore_errors=True)  # the snapshot: only the model and its report stay
            with self._changed:
                job.finished = time.time()
                self._touch(job)
            if job.status != DONE:
                shutil.rmtree(job.folder, ignore_errors=True)

    def _fail(self, job, message: str) -> None:
        with self._changed:
            job.status, job.error = FAILED, message


# --- the API's shapes -------------------------------------------------------------------------------------
class PhotoOut(BaseModel):
    id: str = Field(..., description="32 hex digits of the photo's SHA-256")
    thumbnail: str = Field(..., description="URL of a small JPEG of it")


class ClassOut(BaseModel):
    id: str
    name: str
    count: int
    photos: List[PhotoOut]


class JobUrls(BaseModel):
    self_: str = Field(..., alias="self")
    cancel: str
    model: Optional[str] = Field(..., description="the model file (null unless the training is done)")


class TrainingOut(JobStatusOut):
    """A training as the API reports it."""

    elapsed: Optional[float]
    classes: List[str] = Field(..., description="the classes in the model's order")
    options: Dict[str, Any] = Field(..., description="the ClassifyOptions used")
    stage: Optional[str] = Field(..., description="features, head or fine-tune while running")
    features: Dict[str, int] = Field(..., description="done and total photos of the feature extraction")
    epochs: List[Dict[str, Any]] = Field(
        ..., description="each epoch: stage, epoch, train_loss, train_accuracy, val_loss, val_accuracy"
    )
    log: List[str] = Field(..., description="the dataset summary and warnings")
    error: Optional[str]
    result: Optional[Dict[str, Any]] = Field(
        ...,
        description="when done: accuracy (validation), train_accuracy, validation (per_class precision and "
        "recall, confusion matrix: rows true, columns predicted, mistakes), best_epoch, seconds",
    )
    urls: JobUrls


class ModelOut(BaseModel):
    job: str
    classes: List[str]
    backbone: str
    layer: str
    accuracy: Optional[float]
    url: str


class Limits(BaseModel):
    max_classes: int
    max_photos: int
    max_bytes: int
    max_files: int = Field(..., description="photos per upload request")
    max_upload_bytes: int


class ProjectOut(BaseModel):
    classes: List[ClassOut]
    photos: int
    bytes: int
    limits: Limits
    options: List[OptionField]
    training: Optional[TrainingOut] = Field(..., description="the latest training (null before the first)")
    model: Optional[ModelOut] = Field(..., description="the latest trained model (null before one is done)")


class Added(BaseModel):
    added: int
    duplicates: int = Field(..., description="photos the class already had (same bytes): not added twice")
    class_: ClassOut = Field(..., alias="class")


class Label(BaseModel):
    label: str
    probability: float


class PredictionOut(BaseModel):
    label: str
    probability: float
    top: List[Label]
    model: str = Field(..., description="the training the model came from")
    seconds: float


def register(api: APIRouter, config, root: FilePath, train: Optional[Any] = None) -> TrainingManager:
    """Add the /classify routes to ``api``, with the project under ``root``; returns the training manager (the
    app starts and stops it with the style jobs' one). ``train`` runs the trainings (None: ``classify.train``
    in this process)."""
    project = Project(root / "project")
    manager = TrainingManager(root / "trainings", project, config.max_queue, train)
    limits = (config.max_upload_bytes, config.max_pixels)

    def latest() -> Optional[TrainingJob]:
        jobs = manager.list()
        return jobs[0] if jobs else None

    def describe_class(entry: PhotoClass) -> dict:
        return next(c for c in project.to_dict()["classes"] if c["id"] == entry.id)

    def model_info() -> Optional[dict]:
        with project.lock:
            model = project.model
        if model is None:
            return None
        job = manager.get(model[0])
        accuracy = job.result["accuracy"] if job is not None and job.result else None
        classifier = model[1]
        return {
            "job": model[0],
            "classes": list(classifier.classes),
            "backbone": classifier.backbone,
            "layer": classifier.layer,
            "accuracy": accuracy,
            "url": "/api/classify/model",
        }

    not_found = error_responses(404, e404="no class with this id")

    @api.get(
        "/classify",
        summary="The classes, their photos, the latest training and model, the training options",
        response_model=ProjectOut,
        description="`options`: every option of `POST /api/classify/train` with its kind, default, limits, "
        "choices and help (the page builds its settings from these).",
    )
    def state() -> dict:
        job = latest()
        return {
            **project.to_dict(),
            "limits": {
                "max_classes": MAX_CLASSES,
                "max_photos": MAX_PHOTOS,
                "max_bytes": MAX_PROJECT_BYTES,
                "max_files": config.max_files,
                "max_upload_bytes": config.max_upload_bytes,
            },
            "options": option_fields(),
            "training": manager.snapshot(job) if job is not None else None,
            "model": model_info(),
        }

    @api.post(
        "/classify/classes",
        status_code=201,
        summary="Add a class",
        response_model=ClassOut,
        responses=error_responses(
            400,
            409,
            422,
            e400="no name, or one that cannot be a class name (empty, control characters, a slash, a leading dot)",
            e409="a class of that name exists (names are compared ignoring case)",
            e422="the server's limit of classes is reached",
        ),
    )
    def add_class(
        name: str = Form(..., min_length=1, max_length=200, description="the class's name: its label"),
    ) -> dict:
        try:
            entry = project.add_class(name)
        except BadName as exc:
            raise HTTPException(400, str(exc)) from None
        return describe_class(entry)

    @api.patch(
        "/classify/classes/{class_id}",
        summary="Rename a class",
        response_model=ClassOut,
        responses=error_responses(
            400, 404, 409, e404="no class with this id", e409="another class has that name (ignoring case)"
        ),
    )
    def rename_class(
        class_id: str = CLASS_ID,
        name: str = Form(..., min_length=1, max_length=200, description="the new name"),
    ) -> dict:
        try:
            entry = project.rename(class_id, name)
        except BadName as exc:
            raise HTTPException(400, str(exc)) from None
        return describe_class(entry)

    @api.delete(
        "/classify/classes/{class_id}",
        summary="Delete a class and its photos",
        response_model=Deleted,
        responses=not_found,
    )
    def delete_class(class_id: str = CLASS_ID) -> dict:
        return {"deleted": project.delete_class(class_id).name}

    @api.post(
        "/classify/classes/{class_id}/photos",
        summary="Add photos to a class",
        response_model=Added,
        description="Multipart form: one or more `photo` uploads (at most the server's max_files per request). "
        "Every file is checked first (size, pixels, that it is an image); one bad file refuses the request "
        "and nothing is added.",
        responses=error_responses(
            400,
            404,
            413,
            415,
            422,
            e400="no photo, or too many in one request",
            e404="no class with this id",
            e422="the server's limit of photos is reached",
        ),
    )
    def add_photos(class_id: str = CLASS_ID, photo: List[UploadFile] = File(..., description="photos")) -> dict:
        project.find(class_id)  # an unknown class before reading any upload
        if not photo:
            raise HTTPException(400, "give at least one 'photo' upload")
        if len(photo) > config.max_files:
            raise HTTPException(400, f"too many photos in one request: at most {config.max_files}")
        uploads = []
        for number, upload in enumerate(photo, start=1):
            shown = f"photo {number}" + (f" ({upload.filename[:60]})" if upload.filename else "")
            data = read_limited(upload.file, shown, limits[0])
            image = decode_image(data, shown, limits[1])
            with Image.open(io.BytesIO(data), formats=FORMATS) as header:  # the format: from the bytes
                kind = header.format
            uploads.append((data, image, kind))
        added, had = project.add_photos(class_id, uploads)
        return {"added": len(added), "duplicates": len(had), "class": describe_class(project.find(class_id))}

    @api.delete(
        "/classify/classes/{class_id}/photos/{photo_id}",
        summary="Remove a photo from a class",
        response_model=Deleted,
        responses=error_responses(404, e404="no such class, or no such photo in it"),
    )
    def delete_photo(class_id: str = CLASS_ID, photo_id: str = PHOTO_ID) -> dict:
        project.delete_photo(class_id, photo_id)
        return {"deleted": photo_id}

    @api.get(
        "/classify/photos/{photo_id}/thumbnail",
        summary="A photo's thumbnail (JPEG)",
        response_class=FileResponse,
        responses={
            200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}, "description": "JPEG"},
            **error_responses(404, e404="no photo with this id"),
        },
    )
    def thumbnail(photo_id: str = PHOTO_ID) -> FileResponse:
        return FileResponse(project.thumbnail(photo_id), media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    @api.post(
        "/classify/train",
        status_code=202,
        summary="Train a classifier on the classes",
        response_model=TrainingOut,
        description="Form fields: the options of `neuralens classify train` (the same defaults). Answers 202 "
        "with the training; follow it with GET /api/classify/jobs/{job_id}. The classes are copied as they "
        "are now: later changes do not reach this training.",
        responses=error_responses(
            400,
            409,
            422,
            429,
            e409="a training is already queued or running",
            e422="classes the library refuses (fewer than two, an empty one) or a bad option value",
            e429="the queue is full: retry later (see Retry-After)",
        ),
    )
    def train(values: Dict[str, Any] = Depends(options_form())) -> dict:
        parsed = {
            name: None if value == NONE_WORD and WEB_SPECS[name].nullable else value for name, value in values.items()
        }
        options = ClassifyOptions(**parsed, device=config.device).validate()
        return manager.snapshot(manager.submit_training(options))

    def find_job(job_id: str) -> TrainingJob:
        job = manager.get(job_id)
        if job is None:
            raise HTTPException(404, f"no training {job_id} (trainings are forgotten when the server stops)")
        return job

    job_not_found = error_responses(404, e404="no training with this id")

    @api.get(
        "/classify/jobs/{job_id}",
        summary="A training's status and progress",
        response_model=TrainingOut,
        responses=job_not_found,
    )
    def training(job_id: str = JOB_ID) -> dict:
        return manager.snapshot(find_job(job_id))

    @api.post(
        "/classify/jobs/{job_id}/cancel",
        summary="Cancel a training",
        description="A waiting training is dropped; a running one stops at its next photo or epoch, without a model.",
        response_model=TrainingOut,
        responses=job_not_found,
    )
    def cancel(job_id: str = JOB_ID) -> dict:
        job = find_job(job_id)
        if job.status not in FINISHED:
            manager.cancel(job)
        return manager.snapshot(job)

    def current_model() -> Tuple[str, Classifier, FilePath]:
        with project.lock:
            model = project.model
        if model is None:
            raise HTTPException(409, "no trained model yet: add two classes of photos and train first")
        return model

    no_model = error_responses(409, e409="no trained model yet")

    @api.post(
        "/classify/predict",
        summary="The label of a photo, by the latest trained model",
        response_model=PredictionOut,
        responses={**error_responses(400, 413, 415, 422), **no_model},
    )
    def predict(
        photo: UploadFile = File(..., description="the photo to label"),
        top_k: Optional[int] = Form(
            None, ge=1, le=MAX_CLASSES, description="how many of the best labels to list (empty: every class)"
        ),
    ) -> dict:
        job_id, classifier, _ = current_model()
        image = decode_image(read_limited(photo.file, "photo", limits[0]), "photo", limits[1])
        started = time.perf_counter()
        prediction = classifier.predict(image, top_k or len(classifier.classes))
        answer = prediction.to_dict()
        answer.pop("source", None)
        return {**answer, "model": job_id, "seconds": round(time.perf_counter() - started, 4)}

    @api.get(
        "/classify/model",
        summary="Download the latest trained model (a neuralens classifier file)",
        response_class=FileResponse,
        responses={
            200: {
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                "description": "the model file (`neuralens classify predict MODEL IMAGE` reads it)",
            },
            **no_model,
        },
    )
    def model_file() -> Response:
        job_id, _, path = current_model()
        return FileResponse(path, media_type="application/octet-stream", filename=f"classifier-{job_id[:8]}.pt")

    return manager
