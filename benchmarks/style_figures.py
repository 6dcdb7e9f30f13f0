"""Small figures for the reports drawn with Pillow alone: a side-by-side strip and a line plot."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

Series = Tuple[str, Tuple[int, int, int], Sequence[Tuple[float, float]]]  # (label, colour, [(x, y), ...])


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 ships a scalable default font
    except TypeError:
        return ImageFont.load_default()


def save_jpeg_under(image: Image.Image, path: Path, max_bytes: int = 500_000) -> int:
    """Save ``image`` as JPEG at the highest quality (95 down to 40) whose file is under ``max_bytes``;
    halve the image if even quality 40 is too big. Returns the file size."""
    while True:
        for quality in range(95, 35, -5):
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() < max_bytes:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(buffer.getvalue())
                return buffer.tell()
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.LANCZOS)


def side_by_side(images: Sequence[Image.Image], captions: Sequence[str], height: int = 384) -> Image.Image:
    """The images scaled to one height, left to right with a caption strip above each."""
    font = _font(15)
    scaled = [
        im.convert("RGB").resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS) for im in images
    ]
    strip, gap = 44, 6
    width = sum(im.width for im in scaled) + gap * (len(scaled) - 1)
    canvas = Image.new("RGB", (width, height + strip), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, caption in zip(scaled, captions):
        canvas.paste(im, (x, strip))
        for i, line in enumerate(caption.split("\n")[:2]):
            draw.text((x + 4, 3 + 19 * i), line, fill="black", font=font)
        x += im.width + gap
    return canvas


def _nice_ticks(lo: float, hi: float, count: int = 5) -> List[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if step * m >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def line_plot(
    series: Sequence[Series],
    title: str,
    x_label: str,
    y_label: str,
    log_y: bool = True,
    hlines: Sequence[Tuple[float, str]] = (),
    vlines: Sequence[Tuple[float, str]] = (),
    size: Tuple[int, int] = (760, 440),
) -> Image.Image:
    """A plain line plot (points joined, with markers) of ``series``; y on a log10 axis when ``log_y``.
    ``hlines`` / ``vlines`` are dashed reference lines with a label."""
    W, H = size
    left, right, top, bottom = 78, 20, 34, 52
    font, small = _font(14), _font(12)
    pts = [(x, y) for _, _, s in series for x, y in s if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
    ys_ref = [y for y, _ in hlines if y > 0 or not log_y]
    f = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xs = [x for x, _ in pts] + [x for x, _ in vlines] + [0.0]
    ys = [f(y) for _, y in pts] + [f(y) for y in ys_ref]
    x0, x1 = 0.0, max(xs) * 1.03 or 1.0
    y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
    pad = (y1 - y0) * 0.06 or 0.5
    y0, y1 = y0 - pad, y1 + pad
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)

    def px(x: float, y: float) -> Tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (W - left - right), top + (y1 - y) / (y1 - y0) * (H - top - bottom))

    d.rectangle([left, top, W - right, H - bottom], outline="black")
    for t in _nice_ticks(x0, x1):
        X, _ = px(t, y0)
        d.line([X, H - bottom, X, H - bottom + 4], fill="black")
        d.text((X - 10, H - bottom + 6), f"{t:g}", fill="black", font=small)
    for t in _nice_ticks(y0, y1):
        _, Y = px(x0, t)
        d.line([left - 4, Y, left, Y], fill="black")
        d.line([left, Y, W - right, Y], fill=(232, 232, 232))
        d.text((4, Y - 7), f"{10**t:.3g}" if log_y else f"{t:.3g}", fill="black", font=small)
    for value, label in hlines:
        if value > 0 or not log_y:
            _, Y = px(x0, f(value))
            for X in range(left, W - right, 10):
                d.line([X, Y, X + 5, Y], fill=(120, 120, 120))
            d.text((left + 6, Y - 15), label, fill=(90, 90, 90), font=small)
    for value, label in vlines:
        X, _ = px(value, y0)
        for Y in range(top, H - bottom, 10):
            d.line([X, Y, X, Y + 5], fill=(120, 120, 120))
        d.text((X + 4, top + 4), label, fill=(90, 90, 90), font=small)
    for i, (label, colour, s) in enumerate(series):
        line = [px(x, f(y)) for x, y in s if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        for X, Y in line:
            d.ellipse([X - 2.5, Y - 2.5, X + 2.5, Y + 2.5], fill=colour)
        d.line([W - right - 200, top + 12 + 18 * i, W - right - 175, top + 12 + 18 * i], fill=colour, width=3)
        d.text((W - right - 170, top + 4 + 18 * i), label, fill="black", font=small)
    d.text((left, 8), f"{title} ({y_label})", fill="black", font=font)
    d.text(((W + left) / 2 - 40, H - 22), x_label, fill="black", font=font)
    return img


def save_png(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG", optimize=True)
    return path


def first_at_or_below(points: Sequence[Tuple[float, float]], level: float) -> Optional[float]:
    """The first x (points sorted by x) whose y is at or below ``level``; None if none is."""
    for x, y in sorted(points):
        if y is not None and y <= level:
            return x
    return None
