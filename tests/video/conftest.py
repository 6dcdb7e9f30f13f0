"""Fixtures for the video tests: tiny synthetic clips (64x48, a dozen frames) made here with PyAV and numpy, and
a flow cache of the test's own."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuralens.video.synthetic import pan_clip, write_clip

SAMPLES = Path(__file__).resolve().parent.parent.parent / "neuralens" / "samples"


@pytest.fixture(autouse=True)
def flow_cache(tmp_path, monkeypatch):
    """Every test gets an empty flow cache of its own (never the user's)."""
    folder = tmp_path / "flow-cache"
    monkeypatch.setenv("NEURALENS_FLOW_CACHE", str(folder))
    return folder


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """The Tübingen photo at 128x96."""
    return Image.open(SAMPLES / "tubingen.jpg").convert("RGB").resize((128, 96), Image.LANCZOS)


@pytest.fixture(scope="session")
def pan(photo):
    """A 12-frame 64x48 camera pan (3 px right, 1 px down a frame) with its true flows."""
    return pan_clip(photo, (64, 48), 12, (3, 1))


@pytest.fixture()
def make_clip(tmp_path):
    """make_clip(frames, name='clip.mp4', fps=25, audio_hz=None) -> the path of a video file of those frames."""

    def make(frames, name="clip.mp4", fps=25, audio_hz=None):
        path = tmp_path / name
        write_clip(path, frames, fps, audio_hz)
        return path

    return make


def colour_bars(count: int, width: int = 64, height: int = 48):
    """``count`` frames of moving colour bars (uint8), for tests that need any video."""
    xs = np.arange(width)
    frames = []
    for t in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = ((xs + 2 * t) * 4 % 256)[None, :]
        frame[..., 1] = 128
        frame[..., 2] = 255 - frame[..., 0]
        frames.append(frame)
    return frames
