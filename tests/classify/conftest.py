"""A tiny real task for the classifier tests: photos against paintings from ../shared/data, shrunk to 96 px."""

import shutil
from pathlib import Path

import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SAMPLES = Path(__file__).resolve().parents[2] / "neuralens" / "samples"


def _shrunk(source: Path, target: Path) -> None:
    image = Image.open(source).convert("RGB")
    image.thumbnail((96, 96), Image.LANCZOS)
    image.save(target.with_suffix(".jpg"), quality=92)


@pytest.fixture(scope="session")
def photos_vs_paintings(tmp_path_factory) -> Path:
    """A folder with photo/ (5 photos) and painting/ (6 paintings); read-only for the tests (copy to change)."""
    root = tmp_path_factory.mktemp("pvp")
    sources = {
        "photo": sorted((SHARED / "content").glob("*")) or [SAMPLES / "tubingen.jpg", SAMPLES / "chelsea.jpg"],
        "painting": sorted((SHARED / "style").glob("*")) or [SAMPLES / "starry_night.jpg", SAMPLES / "the_scream.jpg"],
    }
    for label, files in sources.items():
        (root / label).mkdir()
        for path in files:
            _shrunk(path, root / label / path.name)
    return root


@pytest.fixture()
def dataset_copy(photos_vs_paintings, tmp_path) -> Path:
    """A copy of photos_vs_paintings that a test may change."""
    return Path(shutil.copytree(photos_vs_paintings, tmp_path / "data"))


@pytest.fixture(scope="session")
def trained(photos_vs_paintings, tmp_path_factory):
    """(classifier, model path) trained once on photos_vs_paintings with the default backbone."""
    from neuralens import classify

    out = tmp_path_factory.mktemp("model") / "pvp.pt"
    model = classify.train(photos_vs_paintings, out, val_split=0.3, seed=0)
    return model, out
