"""Drawing identification results on a photo."""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import api
from .api import ImageLike
from .recognition import Match

KNOWN = (40, 200, 60)  # green box: someone enrolled
UNKNOWN = (230, 50, 40)  # red box: nobody within the threshold


def annotate(photo: Union[ImageLike, np.ndarray], matches: Sequence[Match]) -> Image.Image:
    """A copy of the photo (path, PIL image or RGB array) with a box and a label (name and distance, or
    'unknown') on every matched face. Returns an RGB PIL image of the photo's size."""
    image = Image.fromarray(api.to_array(photo))
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    try:
        font = ImageFont.load_default(size=max(12, round(max(image.size) / 40)))
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    for match in matches:
        left, top, right, bottom = match.face.box
        colour = KNOWN if match.name else UNKNOWN
        draw.rectangle([left, top, right, bottom], outline=colour, width=width)
        label = f"{match.name} {match.distance:.2f}" if match.name else "unknown"
        text_box = draw.textbbox((left, bottom + width), label, font=font)
        draw.rectangle(text_box, fill=colour)
        draw.text((left, bottom + width), label, fill=(255, 255, 255), font=font)
    return image
