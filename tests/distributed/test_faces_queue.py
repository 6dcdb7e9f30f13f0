"""`neuralens faces cluster PHOTOS --broker URL`: the faces found by two worker processes, in jobs of a few
photos, give the groups of in-process clustering (same photos per group, same embeddings), the photos without
a face and an unreadable photo reported as in-process; the CLI prints the same lines."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuralens.errors import NeuralensError

# The shared faces photos (../shared/data/faces), as the face tests use them: downscaled copies in the
# repository (tests/data/faces/CREDITS.md), 400-600 px, so encoding them takes a fraction of a second each.
FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
NAMES = ("biden.jpg", "biden2.jpg", "obama.jpg", "obama2.jpg", "obama_small.jpg", "two_people.jpg")
TIMEOUT = 180  # seconds for a whole batch: two workers on a busy 2-core machine


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A folder with six face photos and one without a face."""
    folder = tmp_path_factory.mktemp("library")
    for name in NAMES:
        shutil.copy(FACES / name, folder / name)
    ramp = np.linspace(0, 255, 160, dtype=np.uint8)
    gradient = np.stack([np.tile(ramp, (120, 1)), np.tile(ramp[::-1], (120, 1)), np.full((120, 160), 90, np.uint8)], 2)
    Image.fromarray(gradient).save(folder / "landscape.jpg")
    return folder


@pytest.fixture(scope="module")
def in_process(library):
    from neuralens.faces.cluster import cluster

    return cluster(sorted(library.iterdir()), progress=False)


@pytest.fixture(autouse=True)
def no_gallery(tmp_path, monkeypatch):
    """No test reads the user's gallery (its threshold and pipeline would change the groups)."""
    monkeypatch.setenv("NEURALENS_GALLERY", str(tmp_path / "none.sqlite3"))


def _assert_same_faces(queued, local) -> None:
    assert [(f.photo, f.face.index, f.face.box) for f in queued] == [(f.photo, f.face.index, f.face.box) for f in local]
    for a, b in zip(queued, local):
        assert a.face.embedding.dtype == np.float32 and a.face.embedding.shape == (128,)
        assert np.allclose(a.face.embedding, b.face.embedding, atol=1e-5, rtol=0)
        assert np.allclose(a.face.landmarks, b.face.landmarks, atol=1e-9)
        assert (a.face.score, a.face.sharpness, a.face.yaw) == pytest.approx(
            (b.face.score, b.face.sharpness, b.face.yaw)
        )


def test_cluster_on_two_workers_matches_in_process(two_workers, redis_url, storage_url, library, in_process):
    from neuralens.distributed.client import find_faces_on_queue
    from neuralens.distributed.options import QueueOptions
    from neuralens.faces.cluster import cluster

    queue = QueueOptions(redis_url, storage_url)
    photos = sorted(library.iterdir())
    # The default cut of 7 photos: one job each, spread over both workers.
    find = functools.partial(find_faces_on_queue, queue, timeout=TIMEOUT)
    queued = cluster(photos, progress=False, find=find)
    assert [len(g.faces) for g in in_process.groups] == [4, 3]  # Obama, Biden (tests/data/faces/CREDITS.md)
    assert [g.photos for g in queued.groups] == [g.photos for g in in_process.groups]
    for a, b in zip(queued.groups, in_process.groups):
        _assert_same_faces(a.faces, b.faces)
    assert (queued.threshold, queued.photos, queued.faces) == (in_process.threshold, 7, in_process.faces)
    # The photo without a face, reported the same way.
    assert queued.without_faces == in_process.without_faces == [str(library / "landscape.jpg")]

    # Jobs of several photos (3 + 3 + 1) come back in the photos' order too.
    from neuralens.faces.cluster import find_faces

    found, empty = find_faces_on_queue(queue, photos, upsample=1, progress=False, timeout=TIMEOUT, per_job=3)
    local, local_empty = find_faces(photos, progress=False)
    _assert_same_faces(found, local)
    assert empty == local_empty


def test_an_unreadable_photo_is_named_as_in_process(two_workers, redis_url, storage_url, library, tmp_path):
    from neuralens.distributed.client import find_faces_on_queue
    from neuralens.distributed.options import QueueOptions
    from neuralens.faces.cluster import find_faces

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    photos = [library / "obama_small.jpg", broken]
    with pytest.raises(NeuralensError) as local:
        find_faces(photos, progress=False)
    with pytest.raises(NeuralensError) as queued:
        find_faces_on_queue(QueueOptions(redis_url, storage_url), photos, progress=False, timeout=TIMEOUT, per_job=2)
    assert str(queued.value) == str(local.value) and str(queued.value).startswith(f"{broken}: ")


def test_cli_with_broker_prints_the_same_groups(two_workers, redis_url, storage_url, library, run_cli):
    from urllib.parse import unquote, urlsplit

    results = Path(unquote(urlsplit(storage_url).path)) / "results"
    before = len(list(results.glob("*.faces.json")))
    code, queued, err = run_cli("faces", "cluster", library, "--broker", redis_url, "--storage", storage_url)
    assert code == 0, err
    assert len(list(results.glob("*.faces.json"))) == before + 7  # one job per photo, run by the workers
    code, local, err = run_cli("faces", "cluster", library)
    assert code == 0, err
    assert queued == local
    assert "7 face(s) in 7 photo(s): 2 group(s)" in queued and "no face in 1 photo(s)" in queued


def test_bad_queue_options_are_one_line_errors(library, cli_error, tmp_path):
    pytest.importorskip("redis")
    closed = "redis://127.0.0.1:1/0"
    assert "cannot reach the broker redis://127.0.0.1:1/0" in cli_error("faces", "cluster", library, "--broker", closed)
    assert "--broker must be a Redis URL" in cli_error("faces", "cluster", library, "--broker", "http://x")
    assert "--storage is for a job queue" in cli_error("faces", "cluster", library, "--storage", tmp_path.as_uri())
