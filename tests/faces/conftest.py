"""Fixtures for the face tests: real photos (tests/data/faces), each encoded once per session, and a
gallery in a temporary folder so no test touches the user's real one."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuralens.faces import Gallery, api, enroll

DATA = Path(__file__).resolve().parent.parent / "data" / "faces"


@pytest.fixture(autouse=True)
def private_gallery(tmp_path, monkeypatch):
    """Point $NEURALENS_GALLERY at a fresh file for every test."""
    path = tmp_path / "gallery.sqlite3"
    monkeypatch.setenv("NEURALENS_GALLERY", str(path))
    return path


@pytest.fixture(scope="session")
def photo():
    """photo('obama.jpg') -> the path of a bundled test photo."""

    def path(name: str) -> Path:
        return DATA / name

    return path


@pytest.fixture(scope="session")
def encoded():
    """encoded('obama.jpg') -> the faces found in that photo (computed once per session)."""
    cache = {}

    def faces(name: str):
        if name not in cache:
            cache[name] = api.encode(DATA / name)
        return cache[name]

    return faces


@pytest.fixture(scope="session")
def enrolled(tmp_path_factory):
    """A gallery file with Obama (2 photos) and Biden (1 photo) enrolled. Tests must not modify it."""
    path = tmp_path_factory.mktemp("enrolled") / "gallery.sqlite3"
    with Gallery(path) as gallery:
        enroll(gallery, "Obama", [DATA / "obama.jpg", DATA / "obama2.jpg"])
        enroll(gallery, "Biden", [DATA / "biden.jpg"])
    return path


@pytest.fixture(scope="session")
def faceless(tmp_path_factory) -> Path:
    """A photo-sized image with no face in it (smooth colour gradient)."""
    path = tmp_path_factory.mktemp("noface") / "landscape.jpg"
    ramp = np.linspace(0, 255, 320, dtype=np.uint8)
    array = np.stack([np.tile(ramp, (240, 1)), np.tile(ramp[::-1], (240, 1)), np.full((240, 320), 90, np.uint8)], 2)
    Image.fromarray(array).save(path)
    return path
