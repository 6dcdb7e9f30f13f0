"""Trainable heads on top of the frozen dlib encoder, and their storage.

(a) A Siamese projection head f(x) = W x + b trained with the triplet loss
    max(0, ||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + margin), with batch-hard mining (for every anchor in a
    batch: its farthest same-person and its nearest other-person embedding).
(b) A binary classification head: logistic regression on |f(x1) - f(x2)| and chi-square features of a pair.

The trained heads are metrics (``neuralens.faces.metric``: ``ProjectionMetric``, ``ClassifierMetric``),
saved together as JSON numbers by ``neuralens.faces.heads`` and applied with numpy at search time.
"""

from __future__ import annotations

import datetime as _dt
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..errors import NeuralensError
from ..labelled import read_labelled_folder, stratified_split
from ..optim import Adam, one_thread
from . import api, metrics
from .heads import HEAD_FORMAT, HEAD_KINDS, TrainedHeads, load_head
from .metric import FEATURES, ClassifierMetric, EuclideanMetric, Metric, ProjectionMetric, pair_features
from .models import EMBEDDING_DIM, ENCODER_KEYS, Pipeline

__all__ = [
    "Adam",
    "FEATURES",
    "HEAD_FORMAT",
    "HEAD_KINDS",
    "ProjectionHead",
    "TrainedHeads",
    "batch_hard_mining",
    "batch_hard_triplet_loss",
    "load_dataset",
    "load_head",
    "make_pairs",
    "pair_features",
    "split_dataset",
    "squared_distances",
    "train",
    "train_classifier",
    "train_heads",
    "train_projection",
    "triplet_loss",
]


# --- losses and mining --------------------------------------------------------------------------------
def triplet_loss(
    anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.2
) -> torch.Tensor:
    """Mean over triplets of max(0, ||a - p||^2 - ||a - n||^2 + margin). Takes three (n, d) tensors."""
    pos = (anchor - positive).pow(2).sum(dim=1)
    neg = (anchor - negative).pow(2).sum(dim=1)
    return torch.clamp(pos - neg + margin, min=0.0).mean()


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """All pairwise squared Euclidean distances of the rows of ``x``: an (n, n) tensor."""
    diff = x[:, None, :] - x[None, :, :]
    return diff.pow(2).sum(dim=2)


def batch_hard_mining(
    embeddings: torch.Tensor, labels: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For every anchor: the index of its hardest positive (the farthest other embedding with the same
    label) and hardest negative (the nearest with another label). Returns (positive_index,
    negative_index, valid), ``valid`` False for anchors with no positive or no negative."""
    d = squared_distances(embeddings.detach())
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=embeddings.device)
    positive_mask = same & ~eye
    negative_mask = ~same
    positive = torch.where(positive_mask, d, torch.full_like(d, -1.0)).argmax(dim=1)
    negative = torch.where(negative_mask, d, torch.full_like(d, float("inf"))).argmin(dim=1)
    valid = positive_mask.any(dim=1) & negative_mask.any(dim=1)
    return positive, negative, valid


def batch_hard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """The triplet loss over the batch-hard triplets of a batch (zero when there is none)."""
    positive, negative, valid = batch_hard_mining(embeddings, labels)
    if not valid.any():
        return embeddings.sum() * 0.0
    anchor = embeddings[valid]
    return triplet_loss(anchor, embeddings[positive[valid]], embeddings[negative[valid]], margin)


# --- training -----------------------------------------------------------------------------------------
class ProjectionHead(nn.Module):
    """A linear map 128 -> 128, started at the identity so training begins from the pretrained metric."""

    def __init__(self, dim: int = EMBEDDING_DIM):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(dim))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def _pk_batches(labels: np.ndarray, people: int, per_person: int, rng: np.random.Generator) -> List[np.ndarray]:
    """One epoch of P x K batches: ``people`` identities with ``per_person`` images each (drawn with
    replacement when someone has fewer), so every batch has positives and negatives to mine."""
    groups = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    groups = [g for g in groups if len(g) >= 2]
    order = rng.permutation(len(groups))
    batches = []
    for start in range(0, len(order), people):
        chosen = order[start : start + people]
        if len(chosen) < 2:
            continue
        batches.append(
            np.concatenate([rng.choice(groups[i], per_person, replace=len(groups[i]) < per_person) for i in chosen])
        )
    return batches


def train_projection(
    embeddings: np.ndarray,
    labels: Sequence,
    steps: int = 300,
    margin: float = 0.2,
    lr: float = 1e-3,
    people: int = 16,
    per_person: int = 4,
    stay_close: float = 1e-3,
    seed: int = 0,
) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
    """Train the projection head with batch-hard triplet loss (Adam, P x K batches). ``stay_close``
    penalises drifting from the identity, which keeps the pretrained metric's knowledge on small data.
    Returns (weight, bias, {'loss_before', 'loss_after'} measured on all of ``embeddings``)."""
    with one_thread():
        return _train_projection(embeddings, labels, steps, margin, lr, people, per_person, stay_close, seed)


def _train_projection(embeddings, labels, steps, margin, lr, people, per_person, stay_close, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if sum(1 for label in np.unique(labels) if (labels == label).sum() >= 2) < 2:
        raise NeuralensError("training needs at least two people with two or more photos each")
    x_all = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
    y_all = torch.from_numpy(np.unique(labels, return_inverse=True)[1])
    head = ProjectionHead(x_all.shape[1])
    optimiser = Adam(head.parameters(), lr=lr)
    identity = torch.eye(x_all.shape[1])
    with torch.no_grad():
        before = float(batch_hard_triplet_loss(head(x_all), y_all, margin))
    done = 0
    while done < steps:
        for batch in _pk_batches(labels, people, per_person, rng):
            index = torch.from_numpy(batch)
            loss = batch_hard_triplet_loss(head(x_all[index]), y_all[index], margin)
            loss = loss + stay_close * (head.linear.weight - identity).pow(2).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            done += 1
            if done >= steps:
                break
    with torch.no_grad():
        after = float(batch_hard_triplet_loss(head(x_all), y_all, margin))
    return (
        head.linear.weight.detach().numpy().copy(),
        head.linear.bias.detach().numpy().copy(),
        {"loss_before": before, "loss_after": after},
    )


def make_pairs(labels: Sequence, max_pairs: int = 20000, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, and whether they share a label: every pair when there are at most
    ``max_pairs``, else all same pairs (up to half) and a random sample of different ones."""
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng(seed)
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        same_i, same_j = [], []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            a, b = np.triu_indices(len(members), k=1)
            same_i.append(members[a])
            same_j.append(members[b])
        si, sj = np.concatenate(same_i), np.concatenate(same_j)
        if len(si) > max_pairs // 2:
            keep = rng.choice(len(si), max_pairs // 2, replace=False)
            si, sj = si[keep], sj[keep]
        di, dj = rng.integers(0, n, size=(2, 4 * max_pairs))
        keep = labels[di] != labels[dj]
        di, dj = np.minimum(di, dj)[keep], np.maximum(di, dj)[keep]
        pairs = np.unique(np.stack([di, dj], axis=1), axis=0)[: max_pairs - len(si)]
        i, j = np.concatenate([si, pairs[:, 0]]), np.concatenate([sj, pairs[:, 1]])
    return np.stack([i, j], axis=1), labels[i] == labels[j]


def train_classifier(
    embeddings: np.ndarray,
    labels: Sequence,
    steps: int = 500,
    lr: float = 0.05,
    weight_decay: float = 1e-4,
    seed: int = 0,
    features: str = "both",
) -> Tuple[np.ndarray, float, Dict[str, float]]:
    """Fit the logistic-regression head on the pair features (``features``: 'both', 'abs' or 'chi2';
    see ``pair_features``) of all (or sampled) pairs, same and different pairs weighted equally.
    Returns (weight (256,) or (128,), bias, {'loss_before', 'loss_after'})."""
    with one_thread():
        return _train_classifier(embeddings, labels, steps, lr, weight_decay, seed, features)


def _train_classifier(embeddings, labels, steps, lr, weight_decay, seed, features):
    torch.manual_seed(seed)
    x = np.asarray(embeddings, dtype=np.float32)
    pairs, same = make_pairs(labels, seed=seed)
    if same.all() or not same.any():
        raise NeuralensError("training the classifier needs both same-person and different-person pairs")
    features = torch.from_numpy(pair_features(x[pairs[:, 0]], x[pairs[:, 1]], features))
    target = torch.from_numpy(same.astype(np.float32))
    model = nn.Linear(features.shape[1], 1)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((~same).sum() / same.sum(), dtype=torch.float32))
    optimiser = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.no_grad():
        before = float(loss_fn(model(features)[:, 0], target))
    for _ in range(steps):
        loss = loss_fn(model(features)[:, 0], target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = float(loss_fn(model(features)[:, 0], target))
    return (
        model.weight.detach().numpy()[0].copy(),
        float(model.bias.detach()),
        {"loss_before": before, "loss_after": after},
    )


# --- datasets and the whole procedure -----------------------------------------------------------------
def load_dataset(
    folder,
    pipeline: Optional[Pipeline] = None,
    upsample: int = 1,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Tuple[np.ndarray, np.ndarray, List[str], int]:
    """Embeddings of a folder with one sub-folder of photos per person (the central face of each photo).
    Returns (embeddings (n, 128), labels (n,) of person names, the image paths, photos without a face)."""
    data = read_labelled_folder(folder, min_classes=1, empty="skip", noun="person")
    files = [(im.label, im.path) for im in data.images]
    found, seconds = metrics.embed_images([path for _, path in files], pipeline or Pipeline(), upsample, progress)
    kept = [(name, path) for name, path in files if found[path] is not None]
    if not kept:
        raise NeuralensError(f"{data.root}: no face found in any photo")
    vectors = np.stack([found[path] for _, path in kept])
    return vectors, np.array([name for name, _ in kept]), [str(p) for _, p in kept], len(files) - len(kept)


def split_dataset(
    labels: Sequence, test_fraction: float = 0.25, by: str = "people", seed: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """Held-out split. ``by='people'`` holds out whole identities (the honest test for people never
    seen in training); ``by='images'`` holds out some photos of every person with 3+ photos.
    Returns boolean masks (train, test)."""
    labels = np.asarray(labels)
    if not 0 < test_fraction < 1:
        raise NeuralensError(f"the test fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    names, counts = np.unique(labels, return_counts=True)
    if by == "people":
        usable = names[counts >= 2]
        if len(usable) < 4:
            raise NeuralensError(
                f"holding out people needs at least 4 people with 2+ photos (found {len(usable)}); use --split images"
            )
        held = rng.permutation(usable)[: max(2, int(round(test_fraction * len(usable))))]
        test = np.isin(labels, held)
    elif by == "images":  # the split classify uses; two photos of everyone stay in training
        test = stratified_split(labels, test_fraction, seed, keep=2)[1]
    else:
        raise NeuralensError(f"unknown split '{by}' (choose people or images)")
    return ~test, test


def _pair_metrics(metric: Metric, x: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """verification_metrics of ``metric`` on every pair of ``x``."""
    pairs, same = make_pairs(labels)
    d = metric.pair_distances(x[pairs[:, 0]], x[pairs[:, 1]])
    return metrics.verification_metrics(d, same, threshold)


def _calibrate(metric: Metric, x: np.ndarray, labels: np.ndarray) -> None:
    """Set the head's threshold (best accuracy on the training pairs) and confidence fit."""
    pairs, same = make_pairs(labels)
    d = metric.pair_distances(x[pairs[:, 0]], x[pairs[:, 1]])
    metric.threshold, _ = metrics.best_threshold(d, same)
    metric.confidence_fit = metrics.fit_logistic(d, same)


def train_heads(
    train_x: np.ndarray,
    train_y: Sequence,
    test_x: np.ndarray,
    test_y: Sequence,
    fingerprint: Dict[str, object],
    use: str = "best",
    steps: int = 300,
    margin: float = 0.2,
    seed: int = 0,
    threshold: float = api.DEFAULT_THRESHOLD,
    features: str = "both",
) -> Tuple[TrainedHeads, dict]:
    """Train both heads on (train_x, train_y) (the classifier on ``features``), each with its threshold
    and confidence fit chosen on the training pairs; measure the raw encoder (at ``threshold``) and each
    head on every held-out pair. ``use`` picks the head the file applies: 'best' (higher held-out
    accuracy at its own threshold), 'projection' or 'classifier'. Returns (``TrainedHeads``, report
    {'before', 'projection', 'classifier', 'use', 'features', 'losses', sizes})."""
    if use not in ("best",) + HEAD_KINDS:
        raise NeuralensError(f"unknown head '{use}' (choose best, projection or classifier)")
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    weight, bias, projection_losses = train_projection(train_x, train_y, steps=steps, margin=margin, seed=seed)
    c_weight, c_bias, classifier_losses = train_classifier(train_x, train_y, seed=seed, features=features)
    pipeline = {k: fingerprint.get(k) for k in ENCODER_KEYS}
    heads = TrainedHeads(
        projection=ProjectionMetric(weight, bias, 0.0, pipeline=pipeline),
        classifier=ClassifierMetric(c_weight, c_bias, 0.0, features=features, pipeline=pipeline),
    )
    for kind in HEAD_KINDS:
        _calibrate(heads[kind], train_x, train_y)
    report = {
        "train_images": int(len(train_y)),
        "test_images": int(len(test_y)),
        "train_people": int(len(np.unique(train_y))),
        "test_people": int(len(np.unique(test_y))),
        "before": _pair_metrics(EuclideanMetric(threshold), test_x, test_y, threshold),
        **{kind: _pair_metrics(heads[kind], test_x, test_y, heads[kind].threshold) for kind in HEAD_KINDS},
        "features": features,
        "losses": {"projection": projection_losses, "classifier": classifier_losses},
    }
    if use == "best":
        use = max(HEAD_KINDS, key=lambda k: (report[k]["accuracy"], report[k]["roc_auc"]))
    report["use"] = heads.use = use
    heads.info = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "report": report}
    return heads, report


def train(
    dataset,
    output,
    split: str = "people",
    test_fraction: float = 0.25,
    use: str = "best",
    steps: int = 300,
    margin: float = 0.2,
    seed: int = 0,
    pipeline: Optional[Pipeline] = None,
    upsample: int = 1,
    progress: Optional[Callable[[int, int], None]] = None,
    features: str = "both",
) -> dict:
    """The whole ``neuralens faces train``: embed a folder-per-person dataset with the frozen encoder,
    split it, train both heads, report metrics before/after on the held-out part and save the chosen
    heads to ``output`` (a JSON file for ``load_head``). Returns the report (with 'no_face', 'output')."""
    pipeline = pipeline or Pipeline()
    pair_features(np.zeros((1, EMBEDDING_DIM)), np.zeros((1, EMBEDDING_DIM)), features)  # check the name early
    x, y, _, no_face = load_dataset(dataset, pipeline, upsample, progress)
    train_mask, test_mask = split_dataset(y, test_fraction, split, seed)
    held_out = y[test_mask]
    if len(np.unique(held_out)) < 2 or not any((held_out == n).sum() >= 2 for n in np.unique(held_out)):
        raise NeuralensError(
            "the held-out part needs two people and someone with two photos; add photos or raise --test-fraction"
        )
    heads, report = train_heads(
        x[train_mask],
        y[train_mask],
        x[test_mask],
        y[test_mask],
        pipeline.fingerprint(),
        use=use,
        steps=steps,
        margin=margin,
        seed=seed,
        features=features,
    )
    report["no_face"] = no_face
    report["output"] = str(heads.save(output))
    return report
