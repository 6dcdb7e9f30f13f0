"""`neuralens classify train DATA -o MODEL.pt --broker URL`: the training on a worker process, the model and its
report files copied back, predicting like a model trained in-process; file names from a job cannot leave the
worker's folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from neuralens.errors import NeuralensError

SAMPLES = Path(__file__).resolve().parents[2] / "neuralens" / "samples"


@pytest.fixture()
def labelled(tmp_path) -> Path:
    """photo/ (2) and painting/ (2), 64 px, each photo also flipped: four per class."""
    root = tmp_path / "data"
    for label, names in {"photo": ["tubingen", "chelsea"], "painting": ["starry_night", "the_scream"]}.items():
        (root / label).mkdir(parents=True)
        for name in names:
            image = Image.open(SAMPLES / f"{name}.jpg").convert("RGB")
            image.thumbnail((64, 64))
            image.save(root / label / f"{name}.jpg", quality=92)
            image.transpose(Image.FLIP_LEFT_RIGHT).save(root / label / f"{name}_flipped.jpg", quality=92)
    return root


def test_classify_train_on_a_worker(two_workers, redis_url, storage_url, labelled, run_cli, tmp_path):
    out = tmp_path / "model" / "pvp.pt"
    out.parent.mkdir()
    flags = ["--val-split", "0.5", "--seed", "0", "--epochs", "30", "--quiet"]
    code, stdout, err = run_cli(
        "classify", "train", labelled, "-o", out, *flags, "--broker", redis_url, "--storage", storage_url, "--json"
    )
    assert code == 0, err
    data = json.loads(stdout)
    assert data["job"]["status"] == "done" and data["classes"] == ["painting", "photo"]
    assert out.is_file() and out.with_suffix(".report.json").is_file()
    from neuralens import classify

    queued = classify.load(out)
    local = classify.train(labelled, tmp_path / "local.pt", val_split=0.5, seed=0, epochs=30)
    photo = labelled / "painting" / "starry_night.jpg"
    a, b = queued.predict(photo), local.predict(photo)
    assert a.label == b.label and abs(a.probability - b.probability) < 1e-4


def test_job_file_names_stay_inside_the_folder(tmp_path):
    from neuralens.distributed.tasks import inside

    assert inside(tmp_path, "photo/a b é.jpg") == tmp_path / "photo" / "a b é.jpg"
    for bad in ("../x.jpg", "/etc/passwd", "a/../../x.jpg", "a\\..\\x.jpg", "", "./x"):
        with pytest.raises(NeuralensError):
            inside(tmp_path, bad)
