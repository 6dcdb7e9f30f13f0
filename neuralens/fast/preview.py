"""Pictures of a training run: the preview sheet (photo | stylized, one row per photo) and the loss curve."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from PIL import Image, ImageDraw

from .. import devices
from ..imageio import image_to_tensor, resize_long_side, save_image, tensor_to_image
from ..visualize.sheets import contact_sheet, font

CURVE_COLOURS = {
    "total": (20, 20, 20),
    "content": (31, 119, 180),
    "style": (214, 39, 40),
    "tv": (44, 160, 44),
    "distill": (148, 103, 189),
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


def _ticks(lo: float, hi: float, count: int = 5) -> List[float]:
    span = hi - lo or 1.0
    step = 10 ** math.floor(math.log10(span / count))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def loss_plot(
    history: Sequence[Dict[str, float]],
    weights: Optional[object] = None,
    title: str = "training loss",
    size: Tuple[int, int] = (720, 420),
    x_key: str = "iteration",
    x_label: str = "step",
) -> Image.Image:
    """The loss curve: weighted content, style, tv and total loss against the step (or the history's ``x_key``,
    labelled ``x_label``), on a log10 axis.

    ``weights`` (TrainOptions) scales each term by its weight, so the curves add up to the total."""
    w, h = size
    left, right, top, bottom = 70, 130, 30, 40
    factors = dict.fromkeys(CURVE_COLOURS, 1.0)
    if weights is not None:
        factors.update(
            content=weights.content_weight, style=weights.style_weight, tv=getattr(weights, "tv_weight", 0.0)
        )
    series = {}
    for key in CURVE_COLOURS:
        points = [(p[x_key], p[key] * factors[key]) for p in history if key in p]
        points = [(x, math.log10(y)) for x, y in points if y > 0 and math.isfinite(y)]
        if points:
            series[key] = points
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    small = font(12)
    draw.text((left, 8), f"{title} (weighted, log scale)", fill="black", font=font(14))
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    if not series:
        draw.text((left + 10, top + 10), "no steps recorded", fill="black", font=small)
        return img
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.06 or 0.5
    y0, y1 = y0 - pad, y1 + pad

    def px(x: float, y: float) -> Tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (w - left - right), top + (y1 - y) / (y1 - y0) * (h - top - bottom))

    for t in _ticks(x0, x1):
        X, _ = px(t, y0)
        draw.line([X, h - bottom, X, h - bottom + 4], fill="black")
        draw.text((X - 10, h - bottom + 6), f"{t:g}", fill="black", font=small)
    for t in _ticks(y0, y1):
        _, Y = px(x0, t)
        draw.line([left, Y, w - right, Y], fill=(232, 232, 232))
        draw.text((4, Y - 7), f"{10**t:.3g}", fill="black", font=small)
    draw.text(((w + left - right) / 2 - 15, h - 20), x_label, fill="black", font=small)
    for i, (key, points) in enumerate(series.items()):
        colour = CURVE_COLOURS[key]
        line = [px(x, y) for x, y in points]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for X, Y in line:
            draw.ellipse([X - 2, Y - 2, X + 2, Y + 2], fill=colour)
        draw.line([w - right + 10, top + 10 + 18 * i, w - right + 35, top + 10 + 18 * i], fill=colour, width=3)
        draw.text((w - right + 40, top + 3 + 18 * i), key, fill="black", font=small)
    return img
