"""Line charts drawn with Pillow (no plotting library to install): training curves of every trainer."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw

from .sheets import font

Colour = Tuple[int, int, int]


def ticks(lo: float, hi: float, count: int = 5) -> List[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) between ``lo`` and ``hi``."""
    span = hi - lo or 1.0
    step = 10 ** math.floor(math.log10(span / count))
    for factor in (1, 2, 5, 10):
        if span / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def line_chart(
    series: Dict[str, Sequence[Tuple[float, float]]],
    colours: Dict[str, Colour],
    title: str,
    x_label: str = "step",
    log_y: bool = False,
    y_range: Optional[Tuple[float, float]] = None,
    size: Tuple[int, int] = (720, 420),
) -> Image.Image:
    """A chart of named series of (x, y) points, each in its colour with a legend on the right. ``log_y``: the
    y axis is log10 (points <= 0 are left out; ticks show the values); ``y_range`` fixes the y axis. Returns
    an RGB image of ``size``."""
    w, h = size
    left, right, top, bottom = 70, 130, 30, 40
    lines = {}
    for key, points in series.items():
        pts = [(x, y) for x, y in points if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
        if pts:
            lines[key] = [(x, math.log10(y)) for x, y in pts] if log_y else pts
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    small = font(12)
    draw.text((left, 8), title, fill="black", font=font(14))
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    if not lines:
        draw.text((left + 10, top + 10), "no steps recorded", fill="black", font=small)
        return img
    xs = [x for pts in lines.values() for x, _ in pts]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x1 = x0 + 1
    if y_range is not None:
        y0, y1 = y_range
    else:
        ys = [y for pts in lines.values() for _, y in pts]
        y0, y1 = min(ys), max(ys)
        pad = (y1 - y0) * 0.06 or 0.5
        y0, y1 = y0 - pad, y1 + pad

    def px(x: float, y: float) -> Tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (w - left - right), top + (y1 - y) / (y1 - y0) * (h - top - bottom))

    for t in ticks(x0, x1):
        X, _ = px(t, y0)
        draw.line([X, h - bottom, X, h - bottom + 4], fill="black")
        draw.text((X - 10, h - bottom + 6), f"{t:g}", fill="black", font=small)
    for t in ticks(y0, y1):
        _, Y = px(x0, t)
        draw.line([left, Y, w - right, Y], fill=(232, 232, 232))
        draw.text((4, Y - 7), f"{10**t:.3g}" if log_y else f"{t:.3g}", fill="black", font=small)
    draw.text(((w + left - right) / 2 - 15, h - 20), x_label, fill="black", font=small)
    for i, (key, points) in enumerate(lines.items()):
        colour = colours.get(key, (20, 20, 20))
        line = [px(x, y) for x, y in points]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        if len(line) < 200:  # dots only where they can still be told apart
            for X, Y in line:
                draw.ellipse([X - 2, Y - 2, X + 2, Y + 2], fill=colour)
        draw.line([w - right + 10, top + 10 + 18 * i, w - right + 35, top + 10 + 18 * i], fill=colour, width=3)
        draw.text((w - right + 40, top + 3 + 18 * i), key, fill="black", font=small)
    return img
