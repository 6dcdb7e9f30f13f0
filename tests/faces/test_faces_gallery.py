"""The SQLite gallery: enrolment checks, identification, verification, privacy of removal,
transactions, concurrent writers and pipeline fingerprints."""

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from neuralens.errors import NeuralensError
from neuralens.faces import Gallery, default_gallery_path, enroll, identify, verify
from neuralens.faces.gallery import vector_bytes
from neuralens.faces.models import Pipeline

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def gallery(tmp_path, enrolled):
    """A private copy of the Obama + Biden gallery."""
    path = tmp_path / "copy.sqlite3"
    shutil.copy(enrolled, path)
    with Gallery(path) as g:
        yield g


def test_identify_finds_both_people_in_the_group_photos(gallery, photo):
    names = [m.name for m in identify(gallery, photo("two_people.jpg"))]
    assert names == ["Obama", "Biden"]
    matches = identify(gallery, photo("obama_and_biden.jpg"))
    assert [m.name for m in matches] == ["Biden", "Obama", None]  # the third person is not enrolled
    unknown = matches[2]
    assert unknown.distance > unknown.threshold and unknown.nearest in ("Obama", "Biden")
    assert all(m.distance <= 0.6 and m.confidence > 0.5 for m in matches[:2])


def test_unknown_for_someone_not_enrolled(tmp_path, photo):
    with Gallery(tmp_path / "g.sqlite3") as g:
        enroll(g, "Obama", [photo("obama.jpg")])
        (match,) = identify(g, photo("biden2.jpg"))
        assert match.name is None and match.nearest == "Obama" and match.distance > 0.6
        assert not verify(g, photo("biden2.jpg"), "obama").same


def test_verify_searches_all_photos_of_the_person(gallery, photo):
    result = verify(gallery, photo("obama_small.jpg"), "OBAMA")  # names match case-insensitively
    assert result.same and result.details["name"] == "Obama" and result.details["embeddings"] == 2
    stored = gallery.embeddings("Obama")
    query = identify(gallery, photo("obama_small.jpg"))[0].face.embedding
    assert result.distance == pytest.approx(np.linalg.norm(stored - query, axis=1).min(), abs=1e-5)
    assert not verify(gallery, photo("biden2.jpg"), "Obama").same
    with pytest.raises(NeuralensError, match="no one called 'Trump'"):
        verify(gallery, photo("biden2.jpg"), "Trump")


def test_enrol_remove_identify_leaves_no_trace(tmp_path, photo):
    path = tmp_path / "g.sqlite3"
    with Gallery(path) as g:
        enroll(g, "Obama", [photo("obama.jpg")])
        enroll(g, "Zebulon Biden", [photo("biden.jpg"), photo("biden2.jpg")])
        secret = [vector_bytes(v) for v in g.embeddings("Zebulon Biden")]
        assert [m.name for m in identify(g, photo("two_people.jpg"))] == ["Obama", "Zebulon Biden"]
        before = b"".join(p.read_bytes() for p in tmp_path.glob("g.sqlite3*"))
        assert b"Zebulon" in before and secret[0][:16] in before  # the search below can find them
        assert g.remove("zebulon biden") == 2
        assert [p.name for p in g.persons()] == ["Obama"]
        assert [m.name for m in identify(g, photo("two_people.jpg"))] == ["Obama", None]
        with pytest.raises(NeuralensError, match="no one called"):
            g.remove("Zebulon Biden")
    leftovers = b"".join(p.read_bytes() for p in tmp_path.glob("g.sqlite3*"))
    assert leftovers, "the gallery file should still exist"
    assert b"Zebulon" not in leftovers and b"biden.jpg" not in leftovers
    for source in (photo("biden.jpg"), photo("biden2.jpg")):  # nor the hashes of their photos
        assert hashlib.sha256(source.read_bytes()).hexdigest().encode() not in leftovers
    for blob in secret:
        assert blob[:16] not in leftovers and blob[200:216] not in leftovers


def test_rename(gallery):
    gallery.rename("biden", "Joe Biden")
    assert [p.name for p in gallery.persons()] == ["Joe Biden", "Obama"]
    with pytest.raises(NeuralensError, match="already enrolled"):
        gallery.rename("Joe Biden", "obama")
    with pytest.raises(NeuralensError, match="no one called"):
        gallery.rename("Nobody", "X")


def test_several_photos_duplicates_and_lookalike_warning(gallery, photo):
    result = enroll(gallery, "Obama", [photo("obama.jpg"), photo("obama_small.jpg")])
    assert result.added == 1 and result.skipped == [str(photo("obama.jpg"))]
    assert len(gallery.embeddings("Obama")) == 3
    result = enroll(gallery, "Barack", [photo("obama_small.jpg")])
    assert result.added == 1 and any("'Obama'" in w and "look-alike" in w for w in result.warnings)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p("two_people.jpg"), "2 faces found"),
        (lambda p: Image.open(p("obama.jpg")).resize((160, 200)), r"too small \(\d+ px"),
        (lambda p: Image.open(p("obama.jpg")).filter(ImageFilter.GaussianBlur(3)), "too blurred"),
    ],
)
def test_enrolment_quality_checks(gallery, photo, make, message):
    with pytest.raises(NeuralensError, match=message):
        enroll(gallery, "Someone", [make(photo)])
    assert "Someone" not in [p.name for p in gallery.persons()]


def test_enrolment_frontal_check_and_face_choice(gallery, photo):
    with pytest.raises(NeuralensError, match="not frontal enough"):
        enroll(gallery, "Someone", [photo("obama_small.jpg")], max_yaw=0.001)
    assert enroll(gallery, "Pair left", [photo("two_people.jpg")], face=1).added == 1
    with pytest.raises(NeuralensError, match="--face 3 asked for, but the photo has 2"):
        enroll(gallery, "Pair", [photo("two_people.jpg")], face=3)
    assert enroll(gallery, "Pair largest", [photo("two_people.jpg")], largest=True).added == 1


def test_small_background_faces_do_not_count(tmp_path, photo):
    with Gallery(tmp_path / "g.sqlite3") as g:
        enroll(g, "Obama", [photo("obama.jpg")])
        # Biden (53 px) and a girl (44 px) are under the 60 px minimum; Obama (63 px) is the one usable face.
        result = enroll(g, "Obama again", [photo("obama_and_biden.jpg")])
        assert result.added == 1 and any("ignored 2 smaller face(s)" in w for w in result.warnings)
        assert any("'Obama'" in w for w in result.warnings)  # and it is indeed Obama's face
        with pytest.raises(NeuralensError, match="3 faces found"):
            enroll(g, "Someone", [photo("obama_and_biden.jpg")], min_face=40)


def test_a_failed_photo_stores_nothing(gallery, photo, faceless):
    before = gallery.embedding_count()
    with pytest.raises(NeuralensError, match="landscape.jpg: no face found"):
        enroll(gallery, "Joe", [photo("biden2.jpg"), faceless])
    assert gallery.embedding_count() == before and "Joe" not in [p.name for p in gallery.persons()]


def test_an_error_inside_the_write_rolls_back(gallery):
    fingerprint = Pipeline().fingerprint()
    good = np.zeros(128, np.float32)
    with pytest.raises(NeuralensError, match="128 finite numbers"):
        gallery.add_embeddings("Half", [good, np.zeros(5)], ["a", "b"], fingerprint)
    assert gallery.embedding_count() == 3 and len(gallery) == 2 and "Half" not in [p.name for p in gallery.persons()]


def test_a_process_killed_mid_enrolment_leaves_the_gallery_as_it_was(gallery):
    gallery.close()
    script = textwrap.dedent(f"""
        import sys, types; pkg = types.ModuleType("neuralens"); pkg.__path__ = [{str(REPO / "neuralens")!r}]
        sys.modules["neuralens"] = pkg  # skip the package __init__ (it imports torch: seconds per process)
        import os, numpy as np
        from neuralens.faces import Gallery
        from neuralens.faces.models import Pipeline
        g = Gallery({str(gallery.path)!r})
        fingerprint = Pipeline().fingerprint()
        with g._write() as conn:
            conn.execute("INSERT INTO persons (name, created) VALUES ('Ghost', 'now')")
            conn.execute("INSERT INTO embeddings (person_id, vector, image_sha256, created) "
                         "VALUES (last_insert_rowid(), zeroblob(512), 'x', 'now')")
            os._exit(1)  # dies in the middle of the transaction, like a crash or a kill -9
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    with Gallery(gallery.path) as again:
        assert again.embedding_count() == 3 and [p.name for p in again.persons()] == ["Biden", "Obama"]


def test_two_processes_enrolling_at_once_lose_nothing(tmp_path):
    path = tmp_path / "busy.sqlite3"
    script = textwrap.dedent(f"""
        import sys, types; pkg = types.ModuleType("neuralens"); pkg.__path__ = [{str(REPO / "neuralens")!r}]
        sys.modules["neuralens"] = pkg  # skip the package __init__ (it imports torch: seconds per process)
        import pathlib, sys, time, numpy as np
        from neuralens.faces import Gallery
        from neuralens.faces.models import Pipeline
        who, path = sys.argv[1], sys.argv[2]
        fingerprint = Pipeline().fingerprint()
        rng = np.random.default_rng(abs(hash(who)) % 1000)
        folder = pathlib.Path(path).parent
        (folder / f"ready-{{who}}").touch()
        while not (folder / "go").exists():  # start writing together, after the slow imports
            time.sleep(0.01)
        with Gallery(path) as g:
            for i in range(24):
                g.add_embeddings(f"{{who}}{{i % 4}}", [rng.normal(size=128).astype(np.float32)], [f"{{who}}{{i}}"],
                                 fingerprint)
    """)
    workers = [
        subprocess.Popen([sys.executable, "-c", script, who, str(path)], cwd=REPO, stderr=subprocess.PIPE, text=True)
        for who in ("ann", "bob")
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{who}").exists() for who in ("ann", "bob")):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "a worker failed to start"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.stderr.read()
    with Gallery(path) as g:
        assert g.embedding_count() == 48 and len(g) == 8
        assert sorted((p.name, p.embeddings) for p in g.persons()) == sorted(
            (f"{w}{i}", 6) for w in ("ann", "bob") for i in range(4)
        )


def test_refuses_to_mix_pipelines(gallery, photo):
    with pytest.raises(NeuralensError, match="jitter: gallery 0 vs now 1.*refusing to mix"):
        enroll(gallery, "Obama", [photo("obama_small.jpg")], jitter=1)
    with pytest.raises(NeuralensError, match="detector.*refusing to mix"):
        enroll(gallery, "Obama", [photo("obama_small.jpg")], detector="cnn")
    other = dict(Pipeline().fingerprint(), encoder_sha256="0" * 64)
    with pytest.raises(NeuralensError, match="encoder_sha256"):
        gallery.add_embeddings("X", [np.zeros(128)], ["h"], other)
    with pytest.raises(NeuralensError, match="another face encoder"):
        gallery.check_query_pipeline(other)
    stored = gallery.pipeline
    assert stored["detector"] == "hog" and stored["jitter"] == 0 and len(stored["encoder_sha256"]) == 64
    assert "5-point" in stored["alignment"] and stored["landmarks"].startswith("shape_predictor_5")


def test_embeddings_are_stored_as_float32_bytes_not_pickles(gallery):
    conn = sqlite3.connect(gallery.path)
    blobs = [row[0] for row in conn.execute("SELECT vector FROM embeddings")]
    hashes = [row[0] for row in conn.execute("SELECT image_sha256 FROM embeddings")]
    conn.close()
    assert all(len(b) == 512 for b in blobs) and all(len(h) == 64 for h in hashes)
    assert np.array_equal(np.frombuffer(blobs[0], "<f4"), gallery.embeddings()[0])


def test_search_is_one_vectorised_pass(gallery, encoded):
    queries = np.stack([f.embedding for f in encoded("obama_and_biden.jpg")])
    names, dists = gallery.search(queries)
    all_d = np.linalg.norm(queries[:, None, :] - gallery.embeddings()[None, :, :], axis=2)
    assert np.allclose(dists, all_d.min(axis=1), atol=1e-5) and names[:2] == ["Biden", "Obama"]


def test_calibration_is_stored_in_the_settings(gallery):
    assert gallery.threshold == 0.6 and gallery.confidence_fit["slope"] < 0
    gallery.set_calibration(0.55, {"intercept": 8.0, "slope": -14.0}, {"method": "test"}, Pipeline().fingerprint())
    with Gallery(gallery.path) as again:
        assert again.threshold == 0.55 and again.confidence_fit == {"intercept": 8.0, "slope": -14.0}
        assert again.setting("calibration") == {"method": "test"}


def test_empty_missing_and_foreign_galleries(tmp_path, photo):
    with pytest.raises(NeuralensError, match="is empty"):
        Gallery(tmp_path / "missing.sqlite3", create=False)
    assert not (tmp_path / "missing.sqlite3").exists()
    with Gallery(tmp_path / "new.sqlite3") as g:
        with pytest.raises(NeuralensError, match="is empty"):
            identify(g, photo("obama.jpg"))
        with pytest.raises(NeuralensError, match="is empty"):
            verify(g, photo("obama.jpg"), "Obama")
    text = tmp_path / "notes.txt"
    text.write_text("not a database " * 200)
    with pytest.raises(NeuralensError, match="not a neuralens gallery"):
        Gallery(text)
    other = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO settings VALUES ('format', ?)", (json.dumps({"name": "something else"}),))
    conn.commit()
    conn.close()
    with pytest.raises(NeuralensError, match="not a neuralens face gallery"):
        Gallery(other)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_new_gallery_is_private_to_its_owner(tmp_path):
    with Gallery(tmp_path / "sub" / "private.sqlite3") as g:
        g.add_embeddings("A", [np.zeros(128)], ["h"], Pipeline().fingerprint())
    for path in (tmp_path / "sub").glob("private.sqlite3*"):
        assert path.stat().st_mode & 0o077 == 0, path


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NEURALENS_GALLERY", str(tmp_path / "env.sqlite3"))
    assert default_gallery_path() == tmp_path / "env.sqlite3"
    monkeypatch.delenv("NEURALENS_GALLERY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_gallery_path().name == "faces.sqlite3" and "neuralens" in str(default_gallery_path())


def test_bad_names_are_refused(gallery):
    for bad in ("", "   ", "a\nb", "x" * 101):
        with pytest.raises(NeuralensError):
            gallery.add_embeddings(bad, [np.zeros(128)], ["h"], Pipeline().fingerprint())


def test_threads_creating_and_filling_a_new_gallery_at_once_lose_nothing(tmp_path):
    import threading

    path, fingerprint = tmp_path / "threads.sqlite3", Pipeline().fingerprint()
    start, errors = threading.Barrier(4), []

    def work(who: int) -> None:
        try:
            start.wait()
            with Gallery(path) as g:  # all four create the file and its schema at the same moment
                for i in range(10):
                    g.add_embeddings(f"t{who}", [np.full(128, who + i / 10, np.float32)], [f"{who}-{i}"], fingerprint)
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with Gallery(path) as g:
        assert g.embedding_count() == 40 and len(g) == 4 and [p.embeddings for p in g.persons()] == [10] * 4


def test_a_read_only_gallery_gives_a_one_line_error(gallery, tmp_path):
    gallery.close()
    conn = sqlite3.connect(gallery.path)
    conn.execute("PRAGMA journal_mode = DELETE")  # one file, so that read-only is simple to arrange
    conn.close()
    readonly = f"file:{gallery.path}?mode=ro"
    with Gallery(gallery.path) as g:
        g._conn.close()
        g._conn = sqlite3.connect(readonly, uri=True, isolation_level=None)
        with pytest.raises(NeuralensError, match="the gallery was not changed"):
            g.add_embeddings("X", [np.zeros(128)], ["h"], Pipeline().fingerprint())
        assert [p.name for p in g.persons()] == ["Biden", "Obama"]
