"""The training photos of a style network: found, decoded once, kept in memory at a bounded size, and cut
into seeded random crops with random flips; which photos are held out for the preview."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import NeuralensError
from ..imageio import find_images, load_image

MAX_HELD_OUT = 4
MIN_PHOTOS_FOR_HOLD_OUT = 6  # with fewer photos all of them train (the preview then shows training photos)
HOLDOUT_FOLDER = "holdout"  # photos in PHOTOS/holdout/ are held out (scripts/gather_photos.py writes it)
MAX_CACHE_FACTOR = 2  # decoded photos are kept with their short side at most this many times ``size``


class Photos:
    """The training photos, decoded once and kept in memory as uint8 tensors with their short side between
    ``size`` and ``MAX_CACHE_FACTOR * size``; ``batch()`` draws random crops with random flips from a seeded
    generator (whose state a checkpoint keeps)."""

    def __init__(self, images: Sequence[Image.Image], size: int, seed: int, zoom: float = 1.0):
        self.size = size
        self.zoom = zoom  # > 1: random scale crops, a side between size and zoom * size, resized to size
        self.images = [self._fit(image, size) for image in images]
        self.generator = torch.Generator().manual_seed(seed)

    @staticmethod
    def _fit(image: Image.Image, size: int) -> torch.Tensor:
        short = min(image.size)
        target = min(max(short, size), MAX_CACHE_FACTOR * size)
        if target != short:
            scale = target / short
            image = image.resize(
                (max(size, round(image.width * scale)), max(size, round(image.height * scale))), Image.LANCZOS
            )
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()

    def batch(self, count: int) -> torch.Tensor:
        """(count, 3, size, size) float crops in [0, 1]."""
        g, s = self.generator, self.size
        picks = torch.randint(len(self.images), (count,), generator=g).tolist()
        crops = []
        for i in picks:
            image = self.images[i]
            h, w = image.shape[1:]
            side = s
            if self.zoom > 1.0:  # a draw only then, so that plain crops stay the same for a seed
                largest = min(h, w, int(s * self.zoom))
                side = s + int(torch.randint(largest - s + 1, (1,), generator=g))
            y = int(torch.randint(h - side + 1, (1,), generator=g))
            x = int(torch.randint(w - side + 1, (1,), generator=g))
            crop = image[:, y : y + side, x : x + side]
            if bool(torch.rand((), generator=g) < 0.5):
                crop = crop.flip(2)
            if side != s:
                crop = F.interpolate(crop[None].float(), size=(s, s), mode="bilinear", antialias=True)[0]
                crop = crop.clamp_(0, 255)
            crops.append(crop.float())
        return torch.stack(crops).div_(255.0)


def load_photos(photos, size: int) -> Tuple[List[Path], List[Image.Image], List[str]]:
    """(paths, images, skipped) of the readable photos named by ``photos`` (files, folders searched
    recursively, patterns); ``skipped`` lists the unreadable ones as 'PATH: reason'. NeuralensError when none
    is readable."""
    paths = find_images(photos, recursive=True)
    good, images, skipped = [], [], []
    for path in paths:
        try:
            image = load_image(path)
        except NeuralensError as exc:
            skipped.append(str(exc))
            continue
        # Decode big photos straight to the size kept (draft mode for JPEGs would be faster still).
        short = min(image.size)
        if short > MAX_CACHE_FACTOR * size:
            scale = MAX_CACHE_FACTOR * size / short
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        good.append(path)
        images.append(image)
    if not images:
        where = ", ".join(str(p) for p in photos) if isinstance(photos, (list, tuple)) else str(photos)
        raise NeuralensError(f"{where}: none of the {len(paths)} image files could be read ({skipped[0]})")
    return good, images, skipped


def held_out_indices(count: int) -> List[int]:
    """Which of ``count`` photos (sorted by path) are kept for the preview: 2 to 4, evenly spaced; none when
    there are fewer than MIN_PHOTOS_FOR_HOLD_OUT photos."""
    if count < MIN_PHOTOS_FOR_HOLD_OUT:
        return []
    keep = max(2, min(MAX_HELD_OUT, count // 10))
    return sorted({round((i + 0.5) * count / keep - 0.5) for i in range(keep)})


def holdout_folder_indices(photos, paths: Sequence[Path]) -> List[int]:
    """Photos in a ``holdout/`` folder directly inside the photo folder (as scripts/gather_photos.py makes
    it) are the held-out ones: training never sees them and the preview shows up to MAX_HELD_OUT of them."""
    if not isinstance(photos, (str, os.PathLike)) or not Path(photos).is_dir():
        return []
    holdout = (Path(photos) / HOLDOUT_FOLDER).resolve()
    return [i for i, p in enumerate(paths) if holdout in p.resolve().parents]
