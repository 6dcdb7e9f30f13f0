"""What a unit responds to: the image patches that activate it most (Zeiler & Fergus 2014, Figure 2).

For each image the activation maps of one layer are computed once; for every unit (channel) the strongest
positions are kept, merged over all images, and each winner is cropped to the unit's receptive field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image

from .. import devices, imageio
from ..backbone import load_vgg19
from ..errors import NeuralensError
from ..imageio import ImageLike, image_to_tensor, load_image, resize_long_side
from .receptive import ReceptiveField, check_unit, layer_units, receptive_field
from .sheets import EMPTY_TILE, contact_sheet


@dataclass
class Patch:
    """One of a unit's strongest activations and the part of the image it saw."""

    unit: int
    activation: float
    image_index: int  # position in the list of images
    source: str  # file name, or "image N" for a PIL image
    position: Tuple[int, int]  # (y, x) in the activation map
    box: Tuple[int, int, int, int]  # receptive field in the (resized) image, clamped: left, top, right, bottom
    image: Image.Image = field(repr=False)  # the receptive field window; parts outside the image are grey

    def to_dict(self) -> dict:
        """The patch's numbers, JSON-ready (the image left out)."""
        return {
            "unit": self.unit,
            "activation": self.activation,
            "image_index": self.image_index,
            "source": self.source,
            "position": list(self.position),
            "box": list(self.box),
        }


@dataclass
class UnitPatches:
    """The strongest patches of one unit, strongest first."""

    layer: str
    unit: int
    patches: List[Patch]

    @property
    def peak(self) -> float:
        return self.patches[0].activation if self.patches else 0.0

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "unit": self.unit,
            "peak": self.peak,
            "patches": [p.to_dict() for p in self.patches],
        }


def find_images(paths: Union[ImageLike, Sequence[ImageLike]]) -> List[ImageLike]:
    """``imageio.find_images`` for files and folders, with PIL images kept as they are (in place).

    Raises NeuralensError for a missing path or a folder with no images in it."""
    if isinstance(paths, (str, os.PathLike, Image.Image)):
        paths = [paths]
    found: List[ImageLike] = []
    seen = set()  # a file named twice (or also inside a named folder) is used once
    for item in paths:
        if isinstance(item, Image.Image):
            found.append(item)
            continue
        if not Path(item).exists():
            raise NeuralensError(f"{item}: no such file or folder")
        for path in imageio.find_images(item):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                found.append(path)
    if not found:
        raise NeuralensError("no images given")
    return found


def _name(source: ImageLike, index: int) -> str:
    return Path(source).name if not isinstance(source, Image.Image) else f"image {index}"


def _candidates(
    acts: torch.Tensor, units: Sequence[int], top: int, min_distance: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``top`` strongest positions of each unit in one activation map (C, H, W).

    Returns (values (U, top), flat positions (U, top)); missing entries (a small map, or positions
    suppressed by ``min_distance``) have value -inf. Positions of one unit closer than ``min_distance`` cells
    (Chebyshev distance) to a stronger chosen one are skipped, greedily from the strongest."""
    maps = acts[list(units)].flatten(1)  # (U, H*W)
    width = acts.shape[2]
    values = torch.full((len(units), top), float("-inf"))
    places = torch.zeros((len(units), top), dtype=torch.long)
    if min_distance <= 1:  # every position is allowed: a plain top-k
        k = min(top, maps.shape[1])
        v, p = maps.topk(k, dim=1)
        values[:, :k], places[:, :k] = v, p
        return values, places
    order = maps.argsort(dim=1, descending=True)
    for u in range(len(units)):
        chosen: List[int] = []
        for flat in order[u].tolist():
            y, x = divmod(flat, width)
            if all(max(abs(y - cy), abs(x - cx)) >= min_distance for cy, cx in (divmod(c, width) for c in chosen)):
                chosen.append(flat)
                if len(chosen) == top:
                    break
        values[u, : len(chosen)] = maps[u, chosen]
        places[u, : len(chosen)] = torch.tensor(chosen, dtype=torch.long)
    return values, places


def _window(image: Image.Image, rf: ReceptiveField, y: int, x: int) -> Tuple[Tuple[int, int, int, int], Image.Image]:
    """(clamped box, the rf.size x rf.size window with the image part pasted in and the rest grey)."""
    full = rf.box(y, x)
    box = rf.box(y, x, image.size)
    window = Image.new("RGB", (rf.size, rf.size), EMPTY_TILE)
    if box[2] > box[0] and box[3] > box[1]:
        window.paste(image.crop(box), (box[0] - full[0], box[1] - full[1]))
    return box, window


@torch.no_grad()
def top_patches(
    images: Union[ImageLike, Sequence[ImageLike]],
    layer: str,
    units: Optional[Iterable[int]] = None,
    count: int = 8,
    top: int = 9,
    size: Optional[int] = 224,
    min_distance: int = 1,
    device: str = "auto",
    weights: Optional[str] = None,
    pooling: str = "max",
    model=None,
) -> List[UnitPatches]:
    """For units of ``layer``, the ``top`` image patches (over all ``images``) that activate each unit most.

    ``images``: paths, folders (their images) or PIL images, each resized so its long side is ``size`` px
    (None: as they are). ``units``: unit (channel) numbers; when None, the ``count`` units with the highest
    peak activation over the images are shown. A patch is one activation position; its crop is the unit's
    receptive field there (``receptive_field(layer)``). ``min_distance`` > 1 skips positions within that
    many activation cells of a stronger patch of the same unit in the same image (more varied patches);
    1 keeps exactly the strongest positions. ``model``: an already loaded VGG19 reaching ``layer``.

    Returns one UnitPatches per unit (in the order given, or strongest first), each with up to ``top`` Patch
    objects, strongest first. Raises NeuralensError for an unknown layer, a unit out of range, no images, an
    unreadable image, or an image too small to reach ``layer``."""
    rf = receptive_field(layer)
    chosen_units = None if units is None else [check_unit(layer, u) for u in units]
    if chosen_units is not None and not chosen_units:
        raise NeuralensError("no units given")
    if top <= 0 or count <= 0:
        raise NeuralensError("the number of units and of patches per unit must be positive")
    sources = find_images(images)
    torch_device = devices.pick_device(device)
    if model is None:
        model = load_vgg19(layer, pooling, weights, torch_device)
    all_units = chosen_units if chosen_units is not None else list(range(layer_units(layer)))

    shown: List[Image.Image] = []
    best_values = torch.full((len(all_units), top), float("-inf"))
    best_meta = torch.zeros((len(all_units), top, 2), dtype=torch.long)  # (image index, flat position)
    widths: List[int] = []
    for index, source in enumerate(sources):
        picture = load_image(source)
        if size:
            picture = resize_long_side(picture, size)
        out_w, out_h = rf.output_size(picture.size)
        if out_w == 0 or out_h == 0:
            raise NeuralensError(
                f"{_name(source, index)}: {picture.width}x{picture.height} px is too small to "
                f"reach {layer}; use a larger --size"
            )
        shown.append(picture)
        acts = model(image_to_tensor(picture).to(torch_device), [layer])[layer][0].float().cpu()
        widths.append(acts.shape[2])
        values, places = _candidates(acts, all_units, top, min_distance)
        meta = torch.stack([torch.full_like(places, index), places], dim=2)
        # Merge with the best so far; ties keep the earlier image (stable sort), so the result is reproducible.
        merged_v = torch.cat([best_values, values], dim=1)
        merged_m = torch.cat([best_meta, meta], dim=1)
        order = merged_v.argsort(dim=1, descending=True, stable=True)[:, :top]
        best_values = merged_v.gather(1, order)
        best_meta = merged_m.gather(1, order.unsqueeze(2).expand(-1, -1, 2))

    rows = list(range(len(all_units)))
    if chosen_units is None:  # the units with the strongest peaks
        rows = best_values[:, 0].argsort(descending=True, stable=True)[:count].tolist()
    results = []
    for row in rows:
        patches = []
        for j in range(top):
            value = float(best_values[row, j])
            if value == float("-inf"):
                break
            index, flat = (int(v) for v in best_meta[row, j])
            y, x = divmod(flat, widths[index])
            box, window = _window(shown[index], rf, y, x)
            patches.append(Patch(all_units[row], value, index, _name(sources[index], index), (y, x), box, window))
        results.append(UnitPatches(layer, all_units[row], patches))
    return results


def units_sheet(results: Sequence[UnitPatches], tile: Optional[int] = None, font_size: int = 11) -> Image.Image:
    """A labelled grid: one row per unit ("unit N"), its patches left to right, strongest first, each captioned
    with its activation. ``tile``: display size of a patch in pixels (default: the receptive field size,
    kept between 48 and 128)."""
    if not results:
        raise NeuralensError("no units to show")
    layer = results[0].layer
    rf = receptive_field(layer)
    columns = max(1, max(len(r.patches) for r in results))
    side = tile or max(48, min(128, rf.size))
    tiles, captions = [], []
    for r in results:
        for j in range(columns):
            p = r.patches[j] if j < len(r.patches) else None
            tiles.append(p.image if p else None)
            captions.append(format_activation(p.activation) if p else "")
    labels = [f"unit {r.unit}" for r in results]
    title = f"{layer}: strongest patches per unit (receptive field {rf.size} px)"
    return contact_sheet(
        tiles, captions, columns=columns, row_labels=labels, title=title, tile_size=(side, side), font_size=font_size
    )


def format_activation(value: float) -> str:
    """An activation for a caption: whole numbers from 100 up, three significant digits below."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
