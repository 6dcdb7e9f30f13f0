"""Fixtures for the web tests: an app per test (own gallery file, own results folder), tiny images."""

from __future__ import annotations

import warnings
from typing import Callable, Iterator, List

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2 is not ours to act on
    from fastapi.testclient import TestClient

from web_helpers import png

from neuralens.web import create_app


@pytest.fixture()
def make_client(tmp_path) -> Iterator[Callable[..., TestClient]]:
    """make_client(**settings) -> a started TestClient over create_app(settings); closed after the test."""
    clients: List[TestClient] = []

    def make(**settings) -> TestClient:
        settings.setdefault("gallery", str(tmp_path / "gallery.sqlite3"))
        settings.setdefault("preview_every", 2)
        settings.setdefault("device", "cpu")
        client = TestClient(create_app(**settings))
        client.__enter__()  # runs the lifespan: starts the job worker
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture()
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture()
def tiny_files(content_image, style_image):
    """Multipart 'files' for a job: a 48 px content photo and a 48 px style image, as PNG uploads."""
    return [
        ("content", ("photo.png", png(content_image), "image/png")),
        ("style", ("painting.png", png(style_image), "image/png")),
    ]


TINY_MODEL_INFO = {
    "name": "tiny",
    "painting": "starry_night.jpg",
    "options": {"width": 8, "size": 64},
    "iterations": 120,
    "seconds": 185.0,
    "stopped": False,
}


@pytest.fixture()
def tiny_models(tmp_path, monkeypatch):
    """The built-in models folder replaced by one holding a width-8 model 'tiny' (and its training report),
    so the web tests never depend on (or wait for) the shipped models. Returns the folder."""
    import json

    import torch

    from neuralens.fast import model as fast_model
    from neuralens.fast.model import StyleModel
    from neuralens.fast.network import TransformerNet

    folder = tmp_path / "builtin-models"
    torch.manual_seed(0)
    StyleModel(TransformerNet(8), dict(TINY_MODEL_INFO), None, "cpu", "fp32").save(folder / "tiny.pt")
    (folder / "tiny.json").write_text(json.dumps({"style": "starry_night.jpg", "result": {"iterations": 120}}))
    monkeypatch.setattr(fast_model, "BUILTIN", folder)
    return folder
