"""Resizing image and mask tensors between the scales of a run."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .plan import scaled_shape


def resize_tensor(image: torch.Tensor, long_side: int, exact: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Resize (1, 3, H, W) so its long side is ``long_side`` (or to ``exact`` (H, W)), antialiased."""
    h, w = image.shape[2:]
    exact = exact or scaled_shape(h, w, long_side)
    if tuple(exact) == (h, w):
        return image
    return F.interpolate(image, size=tuple(exact), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def upsample(image: torch.Tensor, shape: Tuple[int, int]) -> torch.Tensor:
    """The previous scale's result (on the CPU) brought to the next scale's (H, W), as its starting image."""
    return F.interpolate(image.cpu(), size=tuple(shape), mode="bicubic", align_corners=False).clamp(0, 1)


def resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A mask resized (bilinear, so soft edges stay soft) to height x width; masks of another size than the
    photo are simply stretched to it."""
    if tuple(mask.shape[2:]) == (height, width):
        return mask
    return F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
