"""How good a classifier is on labelled photos: accuracy, per-class precision and recall, the confusion matrix and
the misclassified photos, with pictures of each (confusion matrix, training curve, contact sheet of mistakes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..imageio import load_image
from ..visualize.charts import line_chart
from ..visualize.sheets import contact_sheet, font, text_size

MAX_MISTAKES_SHOWN = 48
CURVE_COLOURS = {
    "train accuracy": (31, 119, 180),
    "val accuracy": (214, 39, 40),
    "train loss": (140, 180, 220),
    "val loss": (240, 150, 150),
}


@dataclass
class Evaluation:
    """Predictions of a classifier on labelled images. ``true``/``predicted``: class indices (n,);
    ``probabilities``: (n, K); ``sources``: the image paths as given."""

    classes: List[str]
    true: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray
    sources: List[str]

    @property
    def accuracy(self) -> float:
        return float((self.true == self.predicted).mean()) if len(self.true) else float("nan")

    def confusion(self) -> np.ndarray:
        """(K, K) counts: row = true class, column = predicted class."""
        k = len(self.classes)
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (self.true, self.predicted), 1)
        return matrix

    def per_class(self) -> List[Dict[str, object]]:
        """Per class: precision, recall, F1 (None where undefined: nothing predicted / no such photo), support."""
        matrix = self.confusion()
        out = []
        for i, name in enumerate(self.classes):
            hit, predicted, support = int(matrix[i, i]), int(matrix[:, i].sum()), int(matrix[i].sum())
            precision = hit / predicted if predicted else None
            recall = hit / support if support else None
            f1 = (
                2 * precision * recall / (precision + recall)
                if precision is not None and recall is not None and precision + recall > 0
                else None
            )
            out.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": support})
        return out

    def mistakes(self) -> List[Dict[str, object]]:
        """The misclassified images, most confident mistakes first."""
        wrong = np.flatnonzero(self.true != self.predicted)
        rows = [
            {
                "source": self.sources[i],
                "true": self.classes[self.true[i]],
                "predicted": self.classes[self.predicted[i]],
                "probability": float(self.probabilities[i, self.predicted[i]]),
            }
            for i in wrong
        ]
        return sorted(rows, key=lambda r: -r["probability"])

    def to_dict(self) -> dict:
        return {
            "images": int(len(self.true)),
            "accuracy": self.accuracy,
            "classes": list(self.classes),
            "per_class": self.per_class(),
            "confusion": self.confusion().tolist(),
            "mistakes": self.mistakes(),
        }


def evaluation_of(
    classes: Sequence[str], true: Sequence[int], probabilities: np.ndarray, sources: Sequence[str]
) -> Evaluation:
    """An Evaluation from true class indices and predicted probabilities (n, K)."""
    probabilities = np.asarray(probabilities, dtype=np.float32).reshape(len(true), len(classes))
    return Evaluation(
        list(classes),
        np.asarray(true, dtype=np.int64),
        probabilities.argmax(axis=1) if len(true) else np.zeros(0, np.int64),
        probabilities,
        [str(s) for s in sources],
    )


def confusion_image(evaluation: Evaluation, title: str = "confusion matrix") -> Image.Image:
    """The confusion matrix as a picture: rows true, columns predicted, cells shaded by the row's fraction."""
    matrix = evaluation.confusion()
    names = evaluation.classes
    cell = max(36, max(text_size(str(int(matrix.max(initial=0))), 12)[0] + 12, 36))
    label_w = max(text_size(n, 12)[0] for n in names) + 12
    label_h = label_w  # column names are drawn rotated
    top = 28 + label_h
    k = len(names)
    heading = f"{title} (rows: true, columns: predicted)"
    width = max(label_w + k * cell + 40, text_size(heading, 13)[0] + 16)
    image = Image.new("RGB", (width, top + k * cell + 40), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 6), heading, fill="black", font=font(13))
    for j, name in enumerate(names):
        w, h = text_size(name, 12)
        tile = Image.new("RGB", (w + 4, h + 4), "white")
        ImageDraw.Draw(tile).text((2, 0), name, fill="black", font=font(12))
        tile = tile.rotate(90, expand=True)
        image.paste(tile, (label_w + j * cell + (cell - tile.width) // 2, top - tile.height - 4))
    for i, name in enumerate(names):
        y = top + i * cell
        draw.text((6, y + cell // 2 - 7), name, fill="black", font=font(12))
        total = max(1, int(matrix[i].sum()))
        for j in range(k):
            x = label_w + j * cell
            share = matrix[i, j] / total
            good = i == j
            shade = (
                (int(255 - 180 * share), int(255 - 90 * share), int(255 - 180 * share))
                if good
                else (255, int(255 - 170 * share), int(255 - 170 * share))
            )
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=shade, outline=(200, 200, 200))
            text = str(int(matrix[i, j]))
            tw, th = text_size(text, 12)
            draw.text((x + (cell - tw) / 2, y + (cell - th) / 2 - 1), text, fill="black", font=font(12))
    return image


def curve_image(epochs: Sequence[Dict[str, Optional[float]]], title: str = "training") -> Image.Image:
    """Accuracy (and loss, scaled to its first value) per epoch of training and validation."""
    series = {
        "train accuracy": [(r["epoch"], r["train_accuracy"]) for r in epochs],
        "val accuracy": [(r["epoch"], r["val_accuracy"]) for r in epochs if r.get("val_accuracy") is not None],
    }
    first = next((r["train_loss"] for r in epochs if r.get("train_loss")), None)
    if first:
        series["train loss"] = [(r["epoch"], min(1.0, r["train_loss"] / first)) for r in epochs]
        series["val loss"] = [
            (r["epoch"], min(1.0, r["val_loss"] / first)) for r in epochs if r.get("val_loss") is not None
        ]
    return line_chart(
        series, CURVE_COLOURS, f"{title}: accuracy, and loss / first loss", "epoch", y_range=(-0.02, 1.02)
    )


def mistakes_sheet(evaluation: Evaluation, tile: int = 128) -> Optional[Image.Image]:
    """A contact sheet of the misclassified images (most confident first, at most MAX_MISTAKES_SHOWN), each
    captioned 'predicted (p) / true'; None when there is no mistake."""
    rows = evaluation.mistakes()[:MAX_MISTAKES_SHOWN]
    if not rows:
        return None
    tiles, captions = [], []
    for row in rows:
        try:
            image = load_image(row["source"])
            image.thumbnail((tile, tile))
        except Exception:  # a file gone since: keep its slot, say so
            image = None
        tiles.append(image)
        captions.append(f"{row['predicted']} ({row['probability']:.2f})\ntrue: {row['true']}")
    title = f"misclassified: {len(evaluation.mistakes())} of {len(evaluation.true)}"
    return contact_sheet(tiles, captions, columns=min(8, len(tiles)), title=title, tile_size=(tile, tile))
