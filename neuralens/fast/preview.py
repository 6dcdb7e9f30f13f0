"""Pictures of a training run: the preview sheet (photo | stylized, one row per photo) and the loss curve."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from PIL import Image

from .. import devices
from ..imageio import image_to_tensor, resize_long_side, save_image, tensor_to_image
from ..visualize.charts import line_chart
from ..visualize.sheets import contact_sheet

CURVE_COLOURS = {
    "total": (20, 20, 20),
    "content": (31, 119, 180),
    "style": (214, 39, 40),
    "tv": (44, 160, 44),
    "distill": (148, 103, 189),
    "reconstruction": (255, 127, 14),
}


@torch.no_grad()
def stylize_with(network: torch.nn.Module, image: Image.Image, device, precision: str, memory_format) -> Image.Image:
    """One photo through the (training) network, as a PIL image."""
    x = image_to_tensor(image).to(device).contiguous(memory_format=memory_format)
    with devices.autocast(device, precision):
        y = network(x)
    return tensor_to_image(y.float().clamp(0, 1).cpu())


def preview_sheet(
    network: torch.nn.Module,
    photos: Sequence[Image.Image],
    size: int,
    device,
    precision: str,
    memory_format,
    title: Optional[str] = None,
) -> Image.Image:
    """A contact sheet with one row per photo (long side ``size``): the photo, then the network's output."""
    tiles, captions = [], []
    for photo in photos:
        small = resize_long_side(photo, size)
        tiles += [small, stylize_with(network, small, device, precision, memory_format)]
        captions += ["photo", "stylized"]
    return contact_sheet(tiles, captions, columns=2, title=title, tile_size=(size, size), upscale=False)


def pairs_sheet(
    photos: Sequence[Image.Image],
    paintings: Sequence[Image.Image],
    stylize: Callable[[Image.Image, Image.Image], Image.Image],
    size: int,
    painting_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
) -> Image.Image:
    """A contact sheet of every photo x painting pair (long sides ``size``): a top row with the paintings, then one
    row per photo: the photo and ``stylize(photo, painting)`` for each painting (the arbitrary-style preview)."""
    names = list(painting_names or [f"painting {i + 1}" for i in range(len(paintings))])
    small_paintings = [resize_long_side(p, size) for p in paintings]
    tiles: List[Optional[Image.Image]] = [None, *small_paintings]
    captions = ["", *names]
    for photo in photos:
        small = resize_long_side(photo, size)
        tiles.append(small)
        captions.append("photo")
        for painting, name in zip(small_paintings, names):
            tiles.append(stylize(small, painting))
            captions.append(f"as {name}")
    columns = 1 + len(paintings)
    return contact_sheet(tiles, captions, columns=columns, title=title, tile_size=(size, size), upscale=False)


def save_png(image: Image.Image, path: Path) -> Path:
    """Write ``image`` atomically (see imageio.save_image)."""
    return save_image(image, path)


def loss_plot(
    history: Sequence[Dict[str, float]],
    weights: Optional[object] = None,
    title: str = "training loss",
    size: Tuple[int, int] = (720, 420),
    x_key: str = "iteration",
    x_label: str = "step",
) -> Image.Image:
    """The loss curve: each weighted term (content, style, tv, reconstruction, distill) and the total against
    the step (or the history's ``x_key``, labelled ``x_label``), on a log10 axis.

    ``weights`` (TrainOptions) scales each term by its weight, so the curves add up to the total."""
    factors = dict.fromkeys(CURVE_COLOURS, 1.0)
    if weights is not None:
        factors.update(
            content=weights.content_weight,
            style=weights.style_weight,
            tv=getattr(weights, "tv_weight", 0.0),
            reconstruction=getattr(weights, "reconstruction_weight", 0.0),
        )
    series = {key: [(p[x_key], p[key] * factors[key]) for p in history if key in p] for key in CURVE_COLOURS}
    return line_chart(series, CURVE_COLOURS, f"{title} (weighted, log scale)", x_label, log_y=True, size=size)
