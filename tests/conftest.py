"""Shared fixtures: tiny real images from the bundled samples, so every test is fast."""
from pathlib import Path

import pytest
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent / "neuralens" / "samples"


def _small(name: str, long_side: int) -> Image.Image:
    image = Image.open(SAMPLES / name).convert("RGB")
    image.thumbnail((long_side, long_side), Image.LANCZOS)
    return image


@pytest.fixture(scope="session")
def content_image() -> Image.Image:
    """The Tübingen photo, 48 px long side."""
    return _small("tubingen.jpg", 48)


@pytest.fixture(scope="session")
def style_image() -> Image.Image:
    """The Starry Night, 48 px long side."""
    return _small("starry_night.jpg", 48)


@pytest.fixture()
def image_files(tmp_path, content_image, style_image):
    """(content path, style path) of tiny JPEGs in a temporary folder."""
    content, style = tmp_path / "content.jpg", tmp_path / "style.jpg"
    content_image.save(content, quality=95)
    style_image.save(style, quality=95)
    return content, style
