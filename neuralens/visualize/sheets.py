"""Labelled contact sheets: a grid of image tiles, each with a caption, optional row labels and a title.

The layout is computed separately (``sheet_layout``) so that callers (and tests) know exactly where each
tile landed; ``contact_sheet`` draws it with Pillow's built-in font (no font files needed).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

from ..errors import NeuralensError

Box = Tuple[int, int, int, int]  # left, top, right (exclusive), bottom (exclusive)

BACKGROUND = (255, 255, 255)
EMPTY_TILE = (224, 224, 224)  # the part of a tile slot its image does not fill
TEXT = (20, 20, 20)


@functools.lru_cache(maxsize=8)
def font(size: int = 12) -> ImageFont.ImageFont:
    """Pillow's default font at ``size`` pixels (a scalable font since Pillow 10.1, a small bitmap before)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def text_size(text: str, font_size: int = 12) -> Tuple[int, int]:
    """(width, height) in pixels of ``text`` (may have several lines) in the default font."""
    if not text:
        return 0, 0
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font(font_size), spacing=2)
    return right - min(0, left), bottom - min(0, top)


@dataclass
class SheetLayout:
    """Where everything goes on a sheet: its size, the tile boxes, the caption boxes and the row labels."""

    size: Tuple[int, int]  # (width, height) of the whole sheet
    columns: int
    rows: int
    tile_size: Tuple[int, int]  # (width, height) of every tile slot
    tiles: List[Box]  # one box per tile, row by row
    captions: List[Box]  # the text area under each tile
    row_labels: List[Box]  # the text area left of each row (empty boxes when none)
    title: Optional[Box]


def sheet_layout(
    count: int,
    tile_size: Tuple[int, int],
    columns: Optional[int] = None,
    captions: Optional[Sequence[str]] = None,
    row_labels: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    font_size: int = 12,
    gap: int = 6,
) -> SheetLayout:
    """Lay out ``count`` tiles of ``tile_size`` in a grid of ``columns`` (default: as square as possible).

    Caption areas are as tall as the tallest caption; the row-label column as wide as the widest label."""
    if count <= 0:
        raise NeuralensError("a contact sheet needs at least one tile")
    columns = max(1, min(count, columns or math.ceil(math.sqrt(count))))
    rows = math.ceil(count / columns)
    tw, th = tile_size
    sizes = [text_size(c, font_size) for c in captions or [] if c]
    caption_h = max((h for _, h in sizes), default=0)
    caption_h = caption_h + gap if caption_h else 0
    # A column is as wide as its widest caption, so that captions never run into the next tile's.
    cell_w = max([tw] + [w for w, _ in sizes])
    label_w = max((text_size(r, font_size)[0] for r in row_labels or [] if r), default=0)
    label_w = label_w + gap if label_w else 0
    title_w, title_h = text_size(title, font_size + 2) if title else (0, 0)
    title_h = title_h + gap if title else 0
    width = max(gap + label_w + columns * (cell_w + gap), title_w + 2 * gap)
    height = gap + title_h + rows * (th + caption_h + gap)
    tiles, caption_boxes, label_boxes = [], [], []
    for i in range(count):
        r, c = divmod(i, columns)
        cell_left = gap + label_w + c * (cell_w + gap)
        left = cell_left + (cell_w - tw) // 2
        top = gap + title_h + r * (th + caption_h + gap)
        tiles.append((left, top, left + tw, top + th))
        caption_boxes.append((cell_left, top + th, cell_left + cell_w, top + th + caption_h))
    for r in range(rows):
        top = gap + title_h + r * (th + caption_h + gap)
        label_boxes.append((gap, top, gap + label_w, top + th))
    title_box = (gap, gap, width - gap, gap + title_h) if title else None
    return SheetLayout((width, height), columns, rows, tile_size, tiles, caption_boxes, label_boxes, title_box)


def fit(image: Image.Image, tile_size: Tuple[int, int], upscale: bool = True) -> Image.Image:
    """``image`` scaled to fit ``tile_size`` keeping its aspect ratio (Lanczos); not enlarged if ``upscale`` is
    False. Small images are enlarged with nearest-neighbour so their pixels stay visible."""
    tw, th = tile_size
    scale = min(tw / image.width, th / image.height)
    if scale > 1 and not upscale:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size == image.size:
        return image
    return image.resize(size, Image.NEAREST if scale >= 2 else Image.LANCZOS)


def contact_sheet(
    tiles: Sequence[Optional[Image.Image]],
    captions: Optional[Sequence[str]] = None,
    columns: Optional[int] = None,
    row_labels: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    tile_size: Optional[Tuple[int, int]] = None,
    font_size: int = 12,
    gap: int = 6,
    upscale: bool = True,
) -> Image.Image:
    """Assemble ``tiles`` (PIL images; None leaves a slot blank) into one labelled RGB image.

    ``captions``: text under each tile (may contain newlines); ``columns``: tiles per row (default: a square
    grid); ``row_labels``: text left of each row; ``title``: a line on top; ``tile_size`` (width, height):
    the slot every tile is fitted into, centred (default: the largest tile). Returns the sheet; its layout
    is ``sheet_layout(len(tiles), tile_size, columns, captions, row_labels, title, font_size, gap)``."""
    if captions is not None and len(captions) != len(tiles):
        raise NeuralensError(f"{len(captions)} captions for {len(tiles)} tiles")
    present = [t for t in tiles if t is not None]
    if tile_size is None:
        if not present:
            raise NeuralensError("a contact sheet needs at least one image")
        tile_size = (max(t.width for t in present), max(t.height for t in present))
    layout = sheet_layout(len(tiles), tile_size, columns, captions, row_labels, title, font_size, gap)
    if row_labels is not None and len(row_labels) > layout.rows:
        raise NeuralensError(f"{len(row_labels)} row labels for {layout.rows} rows")
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    small = font(font_size)
    for i, tile in enumerate(tiles):
        box = layout.tiles[i]
        if tile is not None:
            # Grey shows the part of the slot a tile of another aspect ratio does not fill.
            draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=EMPTY_TILE)
            shown = fit(tile.convert("RGB"), tile_size, upscale)
            left = box[0] + (tile_size[0] - shown.width) // 2
            top = box[1] + (tile_size[1] - shown.height) // 2
            sheet.paste(shown, (left, top))
        if captions and captions[i]:
            cbox = layout.captions[i]
            draw.multiline_text((cbox[0], cbox[1] + 2), captions[i], fill=TEXT, font=small, spacing=2)
    for r, label in enumerate(row_labels or []):
        if label:
            lbox = layout.row_labels[r]
            h = text_size(label, font_size)[1]
            draw.multiline_text(
                (lbox[0], lbox[1] + (lbox[3] - lbox[1] - h) // 2), label, fill=TEXT, font=small, spacing=2
            )
    if title and layout.title:
        draw.text((layout.title[0], layout.title[1]), title, fill=TEXT, font=font(font_size + 2))
    return sheet
