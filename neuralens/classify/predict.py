"""Using a trained classifier on files: evaluate it on a labelled folder, predict the label of images or a folder
(a CSV for many). Features go through the same cache as training (keyed by file content), so evaluating the
training photos again reads them back."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import NeuralensError
from ..imageio import find_images
from ..labelled import file_sha256, read_labelled_folder
from .evaluation import Evaluation, evaluation_of
from .model import Classifier, Prediction

Counter = Callable[[int, int], None]
PathLike = Union[str, os.PathLike]


def evaluate(
    classifier: Classifier,
    folder: PathLike,
    cache: Optional[PathLike] = None,
    batch_images: int = 16,
    on_features: Optional[Counter] = None,
) -> Tuple[Evaluation, List[Tuple[Path, str]]]:
    """The classifier's metrics on a labelled folder (one sub-folder per class; any subset of its classes).
    Returns (Evaluation, [(path, reason) of unreadable files]). NeuralensError for a class it does not know."""
    data = read_labelled_folder(folder, min_classes=1)
    unknown = [name for name in data.classes if name not in classifier.classes]
    if unknown:
        raise NeuralensError(
            f"{folder}: class(es) {', '.join(unknown)} are not the model's (it knows {', '.join(classifier.classes)})"
        )
    features, failed = classifier.features(
        [(im.path, im.sha256) for im in data.images], cache, batch_images, on_features
    )
    kept = [im for im in data.images if im.sha256 in features]
    if not kept:
        raise NeuralensError(f"{folder}: no readable photo")
    index = {name: i for i, name in enumerate(classifier.classes)}
    probs = classifier.probabilities_of_features(np.stack([features[im.sha256][0] for im in kept]))
    evaluation = evaluation_of(
        classifier.classes, [index[im.label] for im in kept], probs, [str(im.path) for im in kept]
    )
    return evaluation, failed


def predict_files(
    classifier: Classifier,
    sources: Union[PathLike, Sequence[PathLike]],
    top_k: int = 1,
    cache: Optional[PathLike] = None,
    batch_images: int = 16,
    on_features: Optional[Counter] = None,
) -> Tuple[List[Prediction], List[Tuple[Path, str]]]:
    """Predictions for image files, folders or patterns (``find_images``). Returns (one Prediction per readable
    image, in the order found; [(path, reason) of unreadable ones]). NeuralensError when none is readable."""
    paths = find_images(sources)
    items = []
    failed: List[Tuple[Path, str]] = []
    for path in paths:
        try:
            items.append((path, file_sha256(path)))
        except NeuralensError as exc:
            failed.append((path, str(exc).removeprefix(f"{path}: ")))
    features, unreadable = classifier.features(items, cache, batch_images, on_features)
    if not features:
        path, why = (failed + unreadable)[0]
        more = f" (and {len(failed + unreadable) - 1} more)" if len(failed + unreadable) > 1 else ""
        raise NeuralensError(f"{path}: {why}{more}; nothing to predict")
    predictions = [
        classifier.prediction(classifier.probabilities_of_features(features[key])[0], top_k, str(path))
        for path, key in items
        if key in features
    ]
    return predictions, failed + unreadable


def predictions_csv(predictions: Sequence[Prediction], top_k: int = 1) -> str:
    """CSV text: file, label, probability, then label_2, probability_2 ... up to ``top_k``."""
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["file", "label", "probability"]
    for k in range(2, top_k + 1):
        header += [f"label_{k}", f"probability_{k}"]
    writer.writerow(header)
    for p in predictions:
        row: List[object] = [p.source, p.label, f"{p.probability:.6f}"]
        for name, prob in p.top[1:top_k]:
            row += [name, f"{prob:.6f}"]
        writer.writerow(row)
    return out.getvalue()
