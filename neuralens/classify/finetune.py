"""Fine-tuning: after the head is trained on frozen features, train the backbone's last block together with it on
augmented photos at a lower learning rate. The front of the network stays frozen (and runs without gradients),
batch-norm statistics stay as pretrained (a few hundred photos are too few to re-estimate them), and the
block of the epoch with the lowest validation loss is kept; if no epoch beats the head alone, nothing changes.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..imageio import image_to_tensor, load_image
from ..optim import Adam
from .features import centre_view, random_view
from .head import Head, class_weights

Item = Tuple[str, int]  # (image path, class index)


def _batch(items: Sequence[Item], size: int, rng: Optional[random.Random]) -> Tuple[torch.Tensor, torch.Tensor]:
    views = []
    for path, _ in items:
        image = load_image(path)
        views.append(image_to_tensor(random_view(image, size, rng) if rng else centre_view(image, size))[0])
    return torch.stack(views), torch.tensor([label for _, label in items], dtype=torch.int64)


def _loss(
    front: nn.Module, block: nn.Module, head: Head, items: Sequence[Item], size: int, weights, device, batch_images
) -> Dict[str, float]:
    block.eval()
    head.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(items), batch_images):
            x, y = _batch(items[start : start + batch_images], size, None)
            logits = head(block(front(x.to(device))).float().mean(dim=(2, 3))).cpu()
            total += float(F.cross_entropy(logits, y, weight=weights, reduction="sum"))
            correct += int((logits.argmax(dim=1) == y).sum())
    return {"loss": total / max(1, len(items)), "accuracy": correct / max(1, len(items))}


def fine_tune(
    front: nn.Module,
    block: nn.Module,
    head: Head,
    train_items: Sequence[Item],
    val_items: Sequence[Item],
    input_size: int,
    epochs: int,
    learning_rate: float = 1e-5,
    seed: int = 0,
    batch_images: int = 16,
    device: torch.device | str = "cpu",
    on_epoch: Optional[Callable[[int, dict], None]] = None,
) -> Tuple[Optional[Dict[str, torch.Tensor]], List[dict]]:
    """Train a copy of ``block`` and ``head`` (in place) for ``epochs`` passes over ``train_items`` (random
    crops and flips), Adam at ``learning_rate`` for the block and 10x that for the head. Returns (the best
    block's state dict, or None when no epoch lowered the validation loss (the head is then as it was);
    one row per epoch: train loss, val loss and accuracy)."""
    classes = head.net[-1].out_features
    weights = class_weights(torch.tensor([label for _, label in train_items]), classes)
    block = copy.deepcopy(block).to(device)
    head = head.to(device)
    head_start = {k: v.clone() for k, v in head.state_dict().items()}
    judged = val_items or train_items
    best = _loss(front, block, head, judged, input_size, weights.to(device), device, batch_images)["loss"]
    best_block: Optional[Dict[str, torch.Tensor]] = None
    best_head = head_start
    block.requires_grad_(True)
    block_optimiser = Adam(block.parameters(), lr=learning_rate)
    head_optimiser = Adam(head.parameters(), lr=learning_rate * 10)
    rng = random.Random(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        order = list(train_items)
        rng.shuffle(order)
        running, seen = 0.0, 0
        for start in range(0, len(order), batch_images):
            block.eval()  # frozen batch-norm statistics; gradients still flow
            head.train()
            x, y = _batch(order[start : start + batch_images], input_size, rng)
            x, y = x.to(device), y.to(device)
            with torch.no_grad():
                middle = front(x)
            logits = head(block(middle).float().mean(dim=(2, 3)))
            loss = F.cross_entropy(logits, y, weight=weights.to(device))
            block_optimiser.zero_grad()
            head_optimiser.zero_grad()
            loss.backward()
            block_optimiser.step()
            head_optimiser.step()
            running += float(loss.detach()) * len(y)
            seen += len(y)
        val = _loss(front, block, head, judged, input_size, weights.to(device), device, batch_images)
        row = {
            "epoch": epoch,
            "train_loss": running / max(1, seen),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
        }
        rows.append(row)
        if on_epoch:
            on_epoch(epoch, row)
        if math.isfinite(val["loss"]) and val["loss"] < best:
            best = val["loss"]
            best_block = {k: v.detach().cpu().clone() for k, v in block.state_dict().items()}
            best_head = {k: v.clone() for k, v in head.state_dict().items()}
    block.requires_grad_(False)
    head.load_state_dict(best_head)
    head.eval()
    return best_block, rows
