"""Image features: the globally averaged activation of one backbone layer, per view of a photo, cached on disk.

View 0 is the photo itself (short side resized to the backbone's input size, centre crop); views 1..N are
random crops (35-100 % of the area, aspect 3:4 to 4:3) with random left-right flips, seeded by the file's
hash and the view number, so a view is the same picture on every run and its cached features stay valid.
The cache holds one small ``.npy`` per photo under a folder named by the backbone's weights fingerprint,
the layer and the input size: re-training with other head settings reads features back in milliseconds,
and a changed file has another hash, so it is computed afresh. Photos go through the backbone a batch at a
time and their features are written at once, so memory does not grow with the number of photos.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ..backbone import Backbone
from ..cache import cache_folder
from ..errors import NeuralensError
from ..imageio import ImageLike, image_to_tensor, load_image

CROP_AREA = (0.35, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)


def centre_view(image: Image.Image, size: int) -> Image.Image:
    """The photo as the backbone sees it: short side ``size`` (bicubic, antialiased), centre ``size`` square."""
    w, h = image.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    resized = image.resize(new, Image.BICUBIC, reducing_gap=3.0)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return resized.crop((left, top, left + size, top + size))


def random_view(image: Image.Image, size: int, rng: random.Random) -> Image.Image:
    """A random crop of 35-100 % of the photo's area (aspect 3:4 to 4:3), flipped half the time, ``size`` square."""
    w, h = image.size
    for _ in range(10):
        area = w * h * rng.uniform(*CROP_AREA)
        aspect = np.exp(rng.uniform(np.log(CROP_ASPECT[0]), np.log(CROP_ASPECT[1])))
        cw, ch = round((area * aspect) ** 0.5), round((area / aspect) ** 0.5)
        if 0 < cw <= w and 0 < ch <= h:
            break
    else:
        cw = ch = min(w, h)
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    view = image.crop((left, top, left + cw, top + ch)).resize((size, size), Image.BICUBIC, reducing_gap=3.0)
    return view.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else view


def view(image: Image.Image, size: int, index: int, key: str) -> Image.Image:
    """View ``index`` of a photo whose content hash is ``key`` (0: the centre view; others: seeded random)."""
    if index == 0:
        return centre_view(image, size)
    return random_view(image, size, random.Random(f"{key}/{index}"))


@torch.no_grad()
def pooled(module: torch.nn.Module, batch: torch.Tensor) -> np.ndarray:
    """Global average pooling of ``module(batch)``: (B, C) float32."""
    return module(batch).float().mean(dim=(2, 3)).cpu().numpy()


class FeatureCache:
    """Features of photos by content hash, for one backbone (weights ``fingerprint``), layer and input size."""

    def __init__(self, fingerprint: str, layer: str, input_size: int, folder: Optional[os.PathLike] = None):
        base = Path(folder) if folder else cache_folder() / "features"
        self.folder = base / f"{fingerprint}-{layer}-{input_size}"

    @classmethod
    def of(cls, backbone: Backbone, layer: str, folder: Optional[os.PathLike] = None) -> FeatureCache:
        """The cache of ``backbone``'s pretrained ``layer``."""
        return cls(backbone.fingerprint, layer, backbone.input_size, folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str, views: int) -> Optional[np.ndarray]:
        """The first ``views`` views' features (views, C), or None when fewer are cached (or the file is bad)."""
        try:
            data = np.load(self._path(key), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return data[:views] if data.ndim == 2 and len(data) >= views else None

    def put(self, key: str, features: np.ndarray) -> None:
        """Store (views, C) features; a cache that cannot be written is skipped (it only saves time)."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, features.astype(np.float32), allow_pickle=False)
            os.replace(tmp, path)
        except OSError:
            pass


def extract(
    network: torch.nn.Module,
    input_size: int,
    items: Sequence[Tuple[Path, str]],
    views: int = 1,
    cache: Optional[FeatureCache] = None,
    batch_images: int = 16,
    device: torch.device | str = "cpu",
    progress: Optional[Callable[[int, int], None]] = None,
) -> Tuple[Dict[str, np.ndarray], List[Tuple[Path, str]]]:
    """Features of ``views`` views of every photo in ``items`` ((path, content hash) pairs): ``network``
    (a backbone's front and block, up to the feature layer) on ``input_size`` squares, globally averaged;
    read from ``cache`` where it has them. Returns ({hash: (views, C) array}, [(path, reason) for unreadable files]).
    ``progress(done, total)`` is called after each photo."""
    network = network.eval()
    found: Dict[str, np.ndarray] = {}
    failed: List[Tuple[Path, str]] = []
    pending: List[Tuple[str, List[Image.Image]]] = []
    done = 0

    def flush() -> None:
        nonlocal done
        if not pending:
            return
        tensors = torch.stack([image_to_tensor(v)[0] for _, vs in pending for v in vs]).to(device)
        feats = np.concatenate(
            [pooled(network, tensors[i : i + batch_images]) for i in range(0, len(tensors), batch_images)]
        )
        for i, (key, _) in enumerate(pending):
            found[key] = feats[i * views : (i + 1) * views]
            if cache is not None:
                cache.put(key, found[key])
            done += 1
            if progress:
                progress(done, len(items))
        pending.clear()

    for path, key in items:
        if key in found:
            done += 1
            continue
        cached = cache.get(key, views) if cache is not None else None
        if cached is not None:
            found[key] = cached
            done += 1
            if progress:
                progress(done, len(items))
            continue
        try:
            image = load_image(path)
        except NeuralensError as exc:
            failed.append((Path(path), str(exc).removeprefix(f"{path}: ")))
            done += 1
            if progress:
                progress(done, len(items))
            continue
        pending.append((key, [view(image, input_size, i, key) for i in range(views)]))
        if len(pending) * views >= batch_images:
            flush()
    flush()
    return found, failed


def image_batch(images: Sequence[ImageLike], size: int) -> torch.Tensor:
    """Centre views of ``images`` (paths or PIL images) as one (B, 3, size, size) tensor in [0, 1]."""
    return torch.stack([image_to_tensor(centre_view(load_image(im), size))[0] for im in images])
