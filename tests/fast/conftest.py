"""Fixtures for the feed-forward tests: one torch thread, a tiny photo folder and the `train-style` command wired
into the CLI."""

from pathlib import Path

import pytest
import torch
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent.parent / "neuralens" / "samples"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Tiny tensors run fastest on one thread (and much faster than two on a busy machine: measured 4x for a
    training step while other work shared the 2 cores)."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # devices.configure_threads leaves the count alone then
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_photos(tmp_path_factory):
    """A folder of seven small photos (48-64 px) cut from the bundled samples, and the style painting (48 px)."""
    folder = tmp_path_factory.mktemp("photos")
    boxes = [(0, 0, 1, 1), (0, 0, 0.6, 0.6), (0.4, 0.4, 1, 1), (0.2, 0.1, 0.9, 0.8)]
    count = 0
    for name in ("tubingen.jpg", "chelsea.jpg"):
        image = Image.open(SAMPLES / name).convert("RGB")
        for left, top, right, bottom in boxes[: 4 if name == "tubingen.jpg" else 3]:
            w, h = image.size
            crop = image.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))
            crop.thumbnail((64, 64), Image.LANCZOS)
            crop.save(folder / f"photo{count}.jpg", quality=90)
            count += 1
    style = tmp_path_factory.mktemp("style") / "starry_night.jpg"
    painting = Image.open(SAMPLES / "starry_night.jpg").convert("RGB")
    painting.thumbnail((48, 48), Image.LANCZOS)
    painting.save(style, quality=95)
    return folder, style


@pytest.fixture()
def train_cli(monkeypatch):
    """Adds neuralens.fast.cli to the commands of `neuralens` for this test."""
    from neuralens import cli

    if "neuralens.fast.cli" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "neuralens.fast.cli"])
