"""Shared fixtures: tiny real images from the bundled samples, so every test is fast."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image

# Exported networks (the onnxruntime engine) go to a cache folder of this test run, not the user's ~/.cache.
if "NEURALENS_CACHE" not in os.environ:
    os.environ["NEURALENS_CACHE"] = tempfile.mkdtemp(prefix="neuralens-test-cache-")
    atexit.register(shutil.rmtree, os.environ["NEURALENS_CACHE"], True)
# The style network's layout follows the fixed rule in tests (no seconds spent measuring it in every test
# run, the same layout in every process); tests/test_autotune.py turns measuring on where it is tested.
os.environ.setdefault("NEURALENS_AUTOTUNE", "0")

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


@pytest.fixture()
def run_cli(capsys):
    """Run `neuralens ARGS...` in-process: a function returning (exit status, stdout, stderr)."""
    from neuralens import cli

    def run(*args):
        code = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture()
def cli_error(run_cli):
    """Run a command that must fail with one line on stderr ('error: ...' or argparse's 'neuralens X: error:
    ...', no traceback); returns the line.
    ``code`` (keyword) is the exit status expected (default 2, a user error)."""

    def fail(*args, code=2):
        status, _, err = run_cli(*args)
        lines = err.strip().splitlines()
        assert status == code, err
        assert len(lines) == 1 and "error: " in lines[0], err
        assert "Traceback" not in err
        return lines[0]

    return fail


def pytest_ignore_collect(collection_path, config):
    """conftest.py files hold fixtures, not doctests: collecting them as modules (--doctest-modules) imports
    each under the one name ``conftest`` and fails with "import file mismatch" once a sub-folder's conftest
    was collected first (the CI failure of tests/classify/conftest.py, or any explicit list of folders)."""
    return True if collection_path.name == "conftest.py" else None
