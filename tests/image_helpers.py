"""Image helpers for tests in any folder (this folder is on sys.path through its conftest)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def small_jpeg(path: Path, side: int = 96) -> bytes:
    """A real photo shrunk to ``side`` px as JPEG bytes (small uploads are quick; backbones see 224-px crops)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
