"""``neuralens classify train``, top to bottom: read the labelled folder, compute (or read back) the features,
split, train the head, optionally fine-tune the last block, evaluate on the validation part, save the model and
its report (JSON, confusion matrix, training curve, contact sheet of the mistakes)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .. import __version__, devices
from ..backbone import load_backbone
from ..errors import Interrupted, NeuralensError
from ..imageio import check_output_path, save_image
from ..labelled import LabelledFolder, read_labelled_folder, stratified_split
from ..options import OptionError, check
from .evaluation import Evaluation, confusion_image, curve_image, evaluation_of, mistakes_sheet
from .features import FeatureCache, extract
from .finetune import fine_tune
from .head import MIN_VAL_TO_STOP, HeadHistory, new_head, train_head
from .model import MODEL_SUFFIX, Classifier
from .options import ClassifyOptions

Log = Callable[[str], None]
Counter = Callable[[int, int], None]


@dataclass
class TrainReport:
    """What a training run did and measured; ``to_dict()`` is the report file."""

    dataset: Dict[str, Any]
    options: Dict[str, Any]
    layer: str
    train_images: int
    val_images: int
    train_accuracy: float
    history: HeadHistory
    fine_tune: List[dict] = field(default_factory=list)
    fine_tuned: bool = False
    validation: Optional[Evaluation] = None
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    cached_features: int = 0
    seconds: Dict[str, float] = field(default_factory=dict)
    files: Dict[str, str] = field(default_factory=dict)
    machine: Dict[str, Any] = field(default_factory=dict)
    command: Optional[str] = None

    @property
    def val_accuracy(self) -> Optional[float]:
        return self.validation.accuracy if self.validation is not None and len(self.validation.true) else None

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "options": self.options,
            "layer": self.layer,
            "train_images": self.train_images,
            "val_images": self.val_images,
            "train_accuracy": self.train_accuracy,
            "val_accuracy": self.val_accuracy,
            "history": self.history.to_dict(),
            "fine_tune": {"epochs": self.fine_tune, "kept": self.fine_tuned},
            "validation": self.validation.to_dict() if self.validation is not None else None,
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "cached_features": self.cached_features,
            "seconds": self.seconds,
            "files": self.files,
            "machine": self.machine,
            "command": self.command,
        }


def report_files(output: Union[str, os.PathLike]) -> Dict[str, Path]:
    """The files written beside a model OUTPUT.pt: OUTPUT.report.json, .confusion.png, .curve.png, .mistakes.jpg."""
    stem = str(Path(output).with_suffix(""))
    return {
        "report": Path(f"{stem}.report.json"),
        "confusion": Path(f"{stem}.confusion.png"),
        "curve": Path(f"{stem}.curve.png"),
        "mistakes": Path(f"{stem}.mistakes.jpg"),
    }


def check_model_output(output: Union[str, os.PathLike]) -> Path:
    """The model path, checked before any work: a ``.pt`` name in a writable folder."""
    path = Path(output)
    if path.suffix.lower() != MODEL_SUFFIX:
        raise NeuralensError(
            f"{path}: a classifier is saved as {MODEL_SUFFIX} (e.g. {path.with_suffix(MODEL_SUFFIX).name})"
        )
    check_output_path(path.with_suffix(".png"))  # the folder exists and is writable
    return path


def _options(options: Optional[ClassifyOptions], fields: Dict[str, Any]) -> ClassifyOptions:
    base = options or ClassifyOptions()
    unknown = set(fields) - set(vars(base))
    if unknown:
        raise NeuralensError(f"unknown classify option(s): {', '.join(sorted(unknown))}")
    merged = ClassifyOptions(**{**vars(base), **fields})
    return check(merged)


def _machine(device: torch.device) -> dict:
    return {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "neuralens": __version__,
    }


def _split(folder: LabelledFolder, options: ClassifyOptions) -> Tuple[np.ndarray, np.ndarray]:
    if folder.has_split:
        held = np.array([im.split == "val" for im in folder.images])
        return ~held, held
    return stratified_split(folder.labels(), options.val_split, options.seed, [im.sha256 for im in folder.images])


def train(
    folder: Union[str, os.PathLike],
    output: Optional[Union[str, os.PathLike]] = None,
    options: Optional[ClassifyOptions] = None,
    log: Optional[Log] = None,
    on_features: Optional[Counter] = None,
    on_epoch: Optional[Callable[[str, int, dict], None]] = None,
    command: Optional[str] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    **fields: Any,
) -> Classifier:
    """Train a classifier on ``folder`` (one sub-folder of photos per class, or train/ and val/ with one each).

    ``options`` (ClassifyOptions) and keyword ``fields`` (``head='mlp'``, ``augment=4`` ...) set the training;
    ``output`` (a ``.pt`` path) saves the model and writes its report files beside it (``report_files``).
    ``log(line)`` receives the dataset summary and warnings, ``on_features(done, total)`` the feature
    extraction's progress, ``on_epoch(stage, epoch, row)`` each epoch ('head' or 'fine-tune') with its losses
    and accuracies. ``should_stop()`` is asked after every photo and epoch; when it says True, training ends with
    ``Interrupted`` and nothing is saved (the web page's Cancel). Returns the Classifier; its ``report``
    attribute is the TrainReport."""
    started = time.perf_counter()
    on_features, on_epoch = _stoppable(on_features, should_stop), _stoppable(on_epoch, should_stop)
    options = _options(options, fields)
    say = log or (lambda line: None)
    output_path = check_model_output(output) if output is not None else None
    device = devices.pick_device(options.device)
    backbone = load_backbone(options.backbone, device)
    layer = options.layer or backbone.default_layer
    if layer not in backbone.layers:
        raise OptionError("layer", f"must be a layer of {backbone.name} ({', '.join(backbone.layers)}), got {layer!r}")
    data = read_labelled_folder(folder)
    say(_summary(data))
    front, block = backbone.split(layer)
    views = 1 + options.augment
    cache = FeatureCache.of(backbone, layer, options.cache)
    # The split comes first so that the augmented views are computed for training photos only (validation reads
    # the plain view): with a held-out half and --augment 4 that is 600 passes through the network, not 1000.
    train_mask, val_mask = _split(data, options)
    parts = [(np.flatnonzero(train_mask), views), (np.flatnonzero(val_mask), 1)]
    before = sum(cache.get(data.images[i].sha256, n) is not None for idx, n in parts for i in idx)
    # One dict per part: a file in both train/ and val/ (reported below as a leak) has all its views in the
    # first and only view 0 in the second; one shared dict let the validation part overwrite the training views.
    by_part: List[Dict[str, np.ndarray]] = []
    failed: List[Tuple[Path, str]] = []
    t0 = time.perf_counter()
    offset = 0
    for idx, n in parts:
        progress = (lambda done, total, at=offset: on_features(at + done, len(data.images))) if on_features else None
        found, bad = extract(
            nn.Sequential(front, block),
            backbone.input_size,
            [(data.images[i].path, data.images[i].sha256) for i in idx],
            n,
            cache,
            options.batch_images,
            device,
            progress,
        )
        by_part.append(found)
        failed += bad
        offset += len(idx)
    feature_seconds = time.perf_counter() - t0
    if failed:
        say(f"warning: skipped {len(failed)} unreadable file(s): " + "; ".join(f"{p} ({why})" for p, why in failed))
        gone = {p for p, _ in failed}
        keep = np.array([im.path not in gone for im in data.images])
        data, train_mask, val_mask = data.without(list(gone)), train_mask[keep], val_mask[keep]
        empty = [name for name, n in data.counts().items() if n == 0]
        if empty:
            raise NeuralensError(f"no readable photo left in class(es) {', '.join(empty)}")
        say("readable: " + ", ".join(f"{name} ({n})" for name, n in data.counts().items()))
    for line in data.warnings():
        say(f"warning: {line}")
    labels = data.labels()
    keys = [im.sha256 for im in data.images]
    train_idx, val_idx = np.flatnonzero(train_mask), np.flatnonzero(val_mask)
    train_features, val_features = by_part
    train_x = np.concatenate([train_features[keys[i]] for i in train_idx])
    train_y = np.repeat(labels[train_idx], views)
    val_x = np.stack([val_features[keys[i]][0] for i in val_idx]) if len(val_idx) else None
    val_y = labels[val_idx] if len(val_idx) else None
    say(f"training on {len(train_idx)} photos ({len(train_x)} views), validating on {len(val_idx)}")
    if not len(val_idx):
        say("warning: no validation photos (each class needs 2+); training runs every epoch, the report has no val")
    elif len(val_idx) < MIN_VAL_TO_STOP:
        say(f"note: {len(val_idx)} validation photos are too few to stop early on; training runs every epoch")

    t0 = time.perf_counter()
    head = new_head(train_x.shape[1], len(data.classes), options.head, options.hidden, options.seed)
    history = train_head(
        head,
        train_x,
        train_y,
        val_x,
        val_y,
        epochs=options.epochs,
        patience=options.patience,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        seed=options.seed,
        on_epoch=(lambda epoch, row: on_epoch("head", epoch, row)) if on_epoch else None,
    )
    head_seconds = time.perf_counter() - t0

    block_state, tune_rows, tune_seconds = None, [], 0.0
    if options.fine_tune:
        t0 = time.perf_counter()
        paths = [str(im.path) for im in data.images]
        block_state, tune_rows = fine_tune(
            front,
            block,
            head,
            [(paths[i], int(labels[i])) for i in train_idx],
            [(paths[i], int(labels[i])) for i in val_idx],
            backbone.input_size,
            options.fine_tune,
            options.fine_tune_learning_rate,
            options.seed,
            options.batch_images,
            device,
            (lambda epoch, row: on_epoch("fine-tune", epoch, row)) if on_epoch else None,
        )
        tune_seconds = time.perf_counter() - t0
        if block_state is None:
            say("fine-tuning did not lower the validation loss; the model keeps the pretrained block")

    classifier = Classifier(
        classes=list(data.classes),
        backbone=backbone.name,
        fingerprint=backbone.fingerprint,
        layer=layer,
        input_size=backbone.input_size,
        head=head.cpu().eval(),
        block_state=block_state,
        device=options.device,
    )
    sources = [str(im.path) for im in data.images]
    if block_state is None:
        train_probs = classifier.probabilities_of_features(np.stack([train_features[keys[i]][0] for i in train_idx]))
        val_probs = classifier.probabilities_of_features(val_x) if val_x is not None else None
    else:
        train_probs = classifier.probabilities([sources[i] for i in train_idx], options.batch_images)
        val_probs = (
            classifier.probabilities([sources[i] for i in val_idx], options.batch_images) if len(val_idx) else None
        )
    train_eval = evaluation_of(data.classes, labels[train_idx], train_probs, [sources[i] for i in train_idx])
    validation = (
        evaluation_of(data.classes, labels[val_idx], val_probs, [sources[i] for i in val_idx])
        if val_probs is not None
        else None
    )
    report = TrainReport(
        dataset=data.to_dict(),
        options=vars(options).copy(),
        layer=layer,
        train_images=int(len(train_idx)),
        val_images=int(len(val_idx)),
        train_accuracy=train_eval.accuracy,
        history=history,
        fine_tune=tune_rows,
        fine_tuned=block_state is not None,
        validation=validation,
        skipped=[(str(p), why) for p, why in failed],
        cached_features=int(before),
        seconds={
            "features": round(feature_seconds, 2),
            "head": round(head_seconds, 2),
            "fine_tune": round(tune_seconds, 2),
            "total": round(time.perf_counter() - started, 2),
        },
        machine=_machine(device),
        command=command,
    )
    classifier.info = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "train_images": report.train_images,
        "val_images": report.val_images,
        "train_accuracy": report.train_accuracy,
        "val_accuracy": report.val_accuracy,
        "counts": data.counts(),
        "options": report.options,
        "command": command,
    }
    classifier.report = report
    if output_path is not None:
        _write(classifier, report, history, output_path)
    return classifier


def _stoppable(callback: Optional[Callable], should_stop: Optional[Callable[[], bool]]) -> Optional[Callable]:
    """``callback`` that first raises Interrupted when ``should_stop()`` says so (``callback`` alone without it)."""
    if should_stop is None:
        return callback

    def call(*args: Any) -> None:
        if should_stop():
            raise Interrupted("training cancelled")
        if callback is not None:
            callback(*args)

    return call


def _summary(data: LabelledFolder) -> str:
    counts = data.counts()
    layout = " (train/ + val/)" if data.has_split else ""
    return f"{len(data.classes)} classes{layout}: " + ", ".join(f"{name} ({n})" for name, n in counts.items())


def _write(classifier: Classifier, report: TrainReport, history: HeadHistory, output: Path) -> None:
    files = report_files(output)
    report.files = {"model": str(output), **{k: str(v) for k, v in files.items()}}
    classifier.save(output)
    epochs = history.epochs + [
        {**row, "epoch": len(history.epochs) + row["epoch"], "train_accuracy": None} for row in report.fine_tune
    ]
    save_image(curve_image(epochs, f"{output.stem}"), files["curve"])
    if report.validation is not None:
        save_image(confusion_image(report.validation, f"{output.stem}: validation"), files["confusion"])
        sheet = mistakes_sheet(report.validation)
        if sheet is not None:
            save_image(sheet, files["mistakes"])
        else:
            report.files.pop("mistakes")
    else:
        report.files.pop("confusion")
        report.files.pop("mistakes")
    text = json.dumps(report.to_dict(), indent=1, default=str)
    tmp = files["report"].with_name(f".{files['report'].name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, files["report"])
