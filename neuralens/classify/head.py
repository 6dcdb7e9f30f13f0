"""The classifier on top of the features, and how it is trained.

The head centres the features and scales them to unit spread (from the training features, stored in the head,
so a model file applies itself), then either a linear layer (logistic regression) or one hidden ReLU layer with dropout.
Training is Adam on the class-balanced cross-entropy (each class weighs the same whatever its photo count),
with early stopping on the validation loss: the weights of the best epoch are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NeuralensError
from ..optim import Adam, one_thread

# An epoch counts as better only when it lowers the monitored loss by this much: on separable classes the
# loss shrinks towards 0 forever by ever smaller steps, and a 1e-6 threshold let all 300 epochs run (measured:
# an MLP on 100 faces, 12 s from the cache instead of under 10).
MIN_IMPROVEMENT = 1e-4
# Below this many validation photos, the validation loss is too noisy to stop on (measured: with 2, the best
# epoch was the first, before the head fit its 9 training photos), so training runs every epoch.
MIN_VAL_TO_STOP = 10


class Head(nn.Module):
    """Centre and scale the features, then ``linear`` (C -> K) or ``mlp`` (C -> hidden -> K, ReLU, dropout 0.2). Returns logits."""

    def __init__(self, channels: int, classes: int, kind: str = "linear", hidden: int = 256):
        super().__init__()
        self.kind, self.hidden = kind, hidden
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("scale", torch.ones(channels))
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(channels, classes))
        elif kind == "mlp":
            self.net = nn.Sequential(
                nn.Linear(channels, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, classes)
            )
        else:
            raise NeuralensError(f"unknown head '{kind}' (choose linear or mlp)")

    def set_standardisation(self, features: torch.Tensor) -> None:
        """Centre each feature on its training mean and divide all by one spread (the root-mean-square of the
        centred training features, (B, C)). One spread, not one per feature: pooled ReLU features are sparse, and
        a feature that is nearly constant on a few hundred photos got a huge factor per feature (measured: a
        validation loss of 348 after one epoch on 7 photos)."""
        with torch.no_grad():
            mean = features.mean(dim=0)
            spread = (features - mean).pow(2).mean().sqrt().clamp_min(1e-6)
            self.mean.copy_(mean)
            self.scale.fill_(float(1.0 / spread))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) * self.scale)


def new_head(channels: int, classes: int, kind: str = "linear", hidden: int = 256, seed: int = 0) -> Head:
    """A Head whose first weights depend only on ``seed`` (torch's global generator is reseeded here)."""
    torch.manual_seed(seed)
    return Head(channels, classes, kind, hidden)


@dataclass
class HeadHistory:
    """Per epoch: training loss and accuracy, validation loss and accuracy (None without validation)."""

    epochs: List[Dict[str, Optional[float]]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "stopped_early": self.stopped_early, "epochs": self.epochs}


def class_weights(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Weights that make every class count the same in the loss: n / (K * count) (0 for an absent class)."""
    counts = torch.bincount(labels, minlength=classes).float()
    return torch.where(counts > 0, len(labels) / (classes * counts.clamp_min(1)), torch.zeros_like(counts))


def evaluate_head(head: nn.Module, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> Dict[str, float]:
    """{'loss': weighted cross-entropy, 'accuracy'} of ``head`` on (x, y), in eval mode."""
    head.eval()
    with torch.no_grad():
        logits = head(x)
        loss = F.cross_entropy(logits, y, weight=weights)
        accuracy = (logits.argmax(dim=1) == y).float().mean()
    return {"loss": float(loss), "accuracy": float(accuracy)}


def train_head(
    head: Head,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: Optional[np.ndarray] = None,
    val_y: Optional[np.ndarray] = None,
    epochs: int = 300,
    patience: int = 30,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    on_epoch: Optional[Callable[[int, Dict[str, Optional[float]]], None]] = None,
) -> HeadHistory:
    """Train ``head`` in place on features ``train_x`` (n, C) with class indices ``train_y`` (n,). With a
    validation set of at least MIN_VAL_TO_STOP features, stop after ``patience`` epochs without a lower
    validation loss and keep the best epoch's weights; otherwise run all ``epochs`` and keep the lowest training
    loss's. ``on_epoch(epoch, row)`` sees each epoch's numbers (the CLI's
    progress bar, the web page's curve). Returns the HeadHistory."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout; the head's first weights are seeded where it is built (``new_head``)
    x, y = torch.from_numpy(np.asarray(train_x, np.float32)), torch.from_numpy(np.asarray(train_y, np.int64))
    has_val = val_x is not None and val_y is not None and len(val_y) > 0
    stop_on_val = has_val and len(val_y) >= MIN_VAL_TO_STOP
    vx = torch.from_numpy(np.asarray(val_x, np.float32)) if has_val else None
    vy = torch.from_numpy(np.asarray(val_y, np.int64)) if has_val else None
    classes = head.net[-1].out_features
    weights = class_weights(y, classes)
    head.set_standardisation(x)
    decay = [p for n, p in head.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in head.named_parameters() if not n.endswith("weight")]
    optimiser = Adam(decay, lr=learning_rate, weight_decay=weight_decay)
    bias_optimiser = Adam(rest, lr=learning_rate)
    history = HeadHistory()
    best_loss, best_state, since_best = math.inf, None, 0
    with one_thread():  # a 512 x K matrix: threads cost more than they give
        for epoch in range(1, epochs + 1):
            head.train()
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), batch_size):
                batch = order[start : start + batch_size]
                loss = F.cross_entropy(head(x[batch]), y[batch], weight=weights)
                optimiser.zero_grad()
                bias_optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                bias_optimiser.step()
            train = evaluate_head(head, x, y, weights)
            row: Dict[str, Optional[float]] = {
                "epoch": epoch,
                "train_loss": train["loss"],
                "train_accuracy": train["accuracy"],
                "val_loss": None,
                "val_accuracy": None,
            }
            monitored = train["loss"]
            if has_val:
                val = evaluate_head(head, vx, vy, weights)
                row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
                monitored = val["loss"] if stop_on_val else monitored
            history.epochs.append(row)
            if on_epoch:
                on_epoch(epoch, row)
            if monitored < best_loss - MIN_IMPROVEMENT:
                best_loss, since_best, history.best_epoch = monitored, 0, epoch
                best_state = {k: v.clone() for k, v in head.state_dict().items()}
            else:
                since_best += 1
                if stop_on_val and since_best >= patience:
                    history.stopped_early = True
                    break
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return history
