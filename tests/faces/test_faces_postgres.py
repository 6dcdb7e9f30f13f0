"""The shared gallery in PostgreSQL with pgvector: enrol, identify and remove; the same answers as the SQLite
gallery; concurrent enrolments; a killed enrolment; the CLI and the web on a postgresql:// URL; and the
default paths without psycopg.

The server is pgserver's (PostgreSQL 16 with pgvector in a wheel, requirements-dev.txt): one per test
module, in a temporary folder, on a unix socket only (it listens on no TCP address), stopped afterwards. The
tests that need it are skipped, saying why, when pgserver or psycopg is not installed. The embeddings are
face-like synthetic ones (faces_synthetic.py): no photo is encoded here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from faces_synthetic import people, photos_of, rows

from neuralens.errors import NeuralensError
from neuralens.faces import Gallery, UnknownPerson, open_gallery
from neuralens.faces.bulk import Embeddings, export_file, import_embeddings
from neuralens.faces.index import IndexOptions
from neuralens.faces.models import Pipeline

FINGERPRINT = Pipeline().fingerprint()
ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # seconds any bounded wait below may take on a busy 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A PostgreSQL with pgvector of this module's own (pgserver; unix socket in a temporary folder)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")
    pgserver = pytest.importorskip("pgserver", reason="pgserver is not installed (requirements-dev.txt)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning: harmless here
        db = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    try:
        yield db
    finally:
        db.cleanup()


@pytest.fixture()
def url(server) -> str:
    """The server's URL, its gallery tables dropped first so each test starts from an empty database."""
    import psycopg

    uri = server.get_uri()
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS faces_embeddings, faces_persons, faces_settings, faces_counts CASCADE")
    return uri


def _enrolled(url: str, count: int = 20, index: IndexOptions = None):
    """A gallery at ``url`` with ``count`` synthetic people x 5 embeddings; returns their centres."""
    _, _, centres = people(count)
    with open_gallery(url, index=index) as gallery:
        import_embeddings(gallery, rows(count), progress=False)
    return centres


# --- always run (no server needed) -----------------------------------------------------------------------
def test_sqlite_galleries_never_import_psycopg(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import neuralens, neuralens.faces
        from neuralens.faces import open_gallery
        with open_gallery({str(tmp_path / "g.sqlite3")!r}) as gallery:
            gallery.persons()
        assert "psycopg" not in sys.modules, "psycopg imported"
        assert type(gallery).__name__ == "Gallery"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT)


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(NeuralensError, match=r"pip install 'neuralens\[postgres\]'") as caught:
        open_gallery("postgresql://someone:secret@127.0.0.1:1/db")
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)


def test_an_unreachable_server_is_one_line_without_the_password(cli_error):
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")
    started = time.monotonic()
    line = cli_error("faces", "list", "--gallery", "postgresql://someone:s3cret@127.0.0.1:1/neuralens")
    assert "cannot reach the PostgreSQL gallery postgresql://someone:***@127.0.0.1:1/neuralens" in line
    assert "s3cret" not in line and time.monotonic() - started < WAIT


def test_gallery_refuses_a_url():
    with pytest.raises(NeuralensError, match="open_gallery"):
        Gallery("postgresql://localhost/neuralens")


# --- against the module's server -----------------------------------------------------------------------
def test_enrol_identify_remove(url):
    names, vectors, centres = people(4, photos=3)
    with open_gallery(url) as gallery:
        assert type(gallery).__name__ == "PostgresGallery" and len(gallery) == 0
        for i in range(4):
            stored = gallery.add_embeddings(f"Person {i}", vectors[3 * i : 3 * i + 3], ["a", "b", "c"], FINGERPRINT)
            assert stored == f"Person {i}"
        assert gallery.add_embeddings("PERSON 0", vectors[:1], ["d"], FINGERPRINT) == "Person 0"  # same key
        assert [(p.name, p.embeddings) for p in gallery.persons()] == [
            ("Person 0", 4),
            ("Person 1", 3),
            ("Person 2", 3),
            ("Person 3", 3),
        ]
        assert gallery.pipeline == FINGERPRINT and gallery.image_hashes("person 1") == {"a", "b", "c"}
        found, dists = gallery.search(photos_of(centres))
        assert found == ["Person 0", "Person 1", "Person 2", "Person 3"] and np.all(dists < gallery.threshold)

        assert gallery.remove("person 2") == 3
        with pytest.raises(UnknownPerson):
            gallery.person("Person 2")
        assert gallery.embedding_count() == 10 and len(gallery) == 3
        left = gallery._conn.execute(
            "SELECT COUNT(*) FROM faces_embeddings e LEFT JOIN faces_persons p ON p.id = e.person_id WHERE p.id IS NULL"
        ).fetchone()[0]
        assert left == 0
        found, _ = gallery.search(photos_of(centres)[2:3])
        assert found != ["Person 2"]
        with pytest.raises(NeuralensError, match="another face pipeline"):
            gallery.add_embeddings("Someone", vectors[:1], ["e"], Pipeline(detector="cnn").fingerprint())
        assert gallery.rename("person 3", "Ada") == "Ada"
        with pytest.raises(NeuralensError, match="already enrolled"):
            gallery.rename("Ada", "person 1")
        gallery.set_calibration(0.5, {"intercept": 1.0, "slope": -2.0}, {"pairs": 10}, FINGERPRINT)
    with open_gallery(url, create=False) as again:  # another connection sees all of it
        assert again.threshold == 0.5 and again.metric().threshold == 0.5
        assert [p.name for p in again.persons()] == ["Ada", "Person 0", "Person 1"]


def test_a_gallery_that_does_not_exist_is_empty_without_create(url):
    from neuralens.faces import EmptyGallery

    with pytest.raises(EmptyGallery):
        open_gallery(url, create=False)


@pytest.mark.parametrize("exact_below", [1_000_000, 0], ids=["exact", "hnsw"])
def test_the_same_answers_as_the_sqlite_gallery(url, tmp_path, exact_below):
    options = IndexOptions(exact_below=exact_below)
    centres = _enrolled(url, 40, options)
    with Gallery(tmp_path / "same.sqlite3") as sqlite:
        import_embeddings(sqlite, rows(40), progress=False)
        strangers = people(20, seed=7)[2]
        queries = np.concatenate([photos_of(centres), strangers])
        expected, expected_d = sqlite.search_exact(queries)
        excluded, excluded_d = sqlite.search_exact(queries, exclude="person 3")
    with open_gallery(url, index=options) as gallery:
        assert gallery.uses_index() == (exact_below == 0)
        found, dists = gallery.search(queries)
        assert found == expected
        np.testing.assert_allclose(dists, expected_d, rtol=0, atol=1e-5)
        found, dists = gallery.search(queries, exclude="person 3")
        assert found == excluded and "person 3" not in found
        np.testing.assert_allclose(dists, excluded_d, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(np.sort(gallery.embeddings(), axis=0), np.sort(rows(40).vectors, axis=0))
        if exact_below == 0:
            indexed = gallery._conn.execute("SELECT to_regclass('faces_embeddings_hnsw') IS NOT NULL").fetchone()[0]
            assert indexed  # built once the gallery reached exact_below


def test_import_export_round_trip(url, tmp_path):
    _enrolled(url, 5)
    with open_gallery(url) as gallery:
        again = import_embeddings(gallery, rows(5), progress=False)  # a second import changes nothing
        assert (again.added, again.skipped) == (0, 25)
        result = export_file(gallery, tmp_path / "out.jsonl")
        assert (result.people, result.embeddings) == (5, 25)
        with pytest.raises(NeuralensError, match="another face pipeline"):
            other = Embeddings(["x"], rows(1, photos=1).vectors, pipeline=Pipeline(detector="cnn").fingerprint())
            import_embeddings(gallery, other, progress=False)
        assert gallery.embedding_count() == 25
    first = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[1])
    assert first["name"] == "person 0" and np.allclose(first["embedding"], rows(5).vectors[0])


def test_two_concurrent_enrolments_of_different_people_both_land(url):
    _enrolled(url, 1)  # the tables exist, so both writers start at once
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from neuralens.faces import open_gallery
        from neuralens.faces.models import Pipeline
        url, who = sys.argv[1], sys.argv[2]
        rng = np.random.default_rng(len(who))
        with open_gallery(url, timeout=20) as gallery:
            for i in range(10):
                gallery.add_embeddings(f"{who} {i}", rng.standard_normal((2, 128)) * 0.05, [f"{who}{i}a", f"{who}{i}b"],
                                       Pipeline().fingerprint())
        """
    )
    writers = [subprocess.Popen([sys.executable, "-c", script, url, who], cwd=ROOT) for who in ("left", "right")]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    with open_gallery(url) as gallery:
        names = {p.name for p in gallery.persons()}
        assert {f"{who} {i}" for who in ("left", "right") for i in range(10)} <= names
        assert gallery.embedding_count() == 5 + 40 and len(gallery) == 21


def test_the_same_new_person_enrolled_twice_at_once_is_one_person(url):
    """The first session holds its new person uncommitted; the second blocks on the UNIQUE key, then adds
    to that person instead of making another."""
    _enrolled(url, 1)
    _, vectors, _ = people(1, photos=2, seed=3)
    first, second = open_gallery(url, timeout=WAIT), open_gallery(url, timeout=WAIT)
    inside, release, errors = threading.Event(), threading.Event(), []
    original = first._insert_rows

    def held(conn, rows_):
        original(conn, rows_)
        inside.set()
        release.wait(WAIT)

    first._insert_rows = held

    def enrol(gallery, digest):
        try:
            gallery.add_embeddings("Grace Hopper", vectors[:1] if digest == "a" else vectors[1:], [digest], FINGERPRINT)
        except Exception as exc:  # noqa: BLE001 -- reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=enrol, args=(first, "a"))]
    threads[0].start()
    assert inside.wait(WAIT)
    threads.append(threading.Thread(target=enrol, args=(second, "b")))
    threads[1].start()
    with open_gallery(url) as watcher:  # the second session waits on the first's lock
        deadline = time.monotonic() + WAIT
        while not watcher._conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the second enrolment never waited for the first"
            time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(WAIT)
    first.close(), second.close()
    assert not errors
    with open_gallery(url) as gallery:
        assert gallery.person("grace hopper").embeddings == 2 and len(gallery) == 2


def test_a_killed_enrolment_leaves_no_partial_person(url, tmp_path):
    _enrolled(url, 2)
    flag = tmp_path / "inside"
    script = textwrap.dedent(
        """
        import pathlib, sys, time
        import numpy as np
        from neuralens.faces import open_gallery
        from neuralens.faces.models import Pipeline
        url, flag = sys.argv[1], pathlib.Path(sys.argv[2])
        gallery = open_gallery(url)
        original = gallery._insert_rows
        def held(conn, rows):  # the person and the embeddings are written, the transaction is open
            original(conn, rows)
            flag.write_text("inside")
            time.sleep(120)
        gallery._insert_rows = held
        gallery.add_embeddings("Killed Midway", np.zeros((3, 128)), ["a", "b", "c"], Pipeline().fingerprint())
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script, url, str(flag)], cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the enrolment did not start"
            time.sleep(0.05)
        with open_gallery(url) as other:  # uncommitted: nobody else sees it
            assert [p.name for p in other.persons()] == ["person 0", "person 1"]
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(WAIT)
    with open_gallery(url, timeout=5) as gallery:  # rolled back by the server; no lock left behind
        assert [p.name for p in gallery.persons()] == ["person 0", "person 1"] and gallery.embedding_count() == 10
        assert gallery._conn.execute("SELECT COUNT(*) FROM faces_embeddings").fetchone()[0] == 10
        gallery.add_embeddings("Killed Midway", np.zeros((1, 128)), ["a"], FINGERPRINT)
        assert gallery.person("killed midway").embeddings == 1


def test_the_cli_on_a_postgresql_url(url, tmp_path, run_cli, cli_error, monkeypatch):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # a password in the URL (the socket trusts anyway)
        conn.execute("DROP ROLE IF EXISTS tester")
        conn.execute("CREATE ROLE tester LOGIN SUPERUSER PASSWORD 'pa55word'")
    secret = url.replace("postgresql://postgres:@", "postgresql://tester:pa55word@")
    names, vectors, _ = people(3, photos=2)
    np.savez(tmp_path / "in.npz", names=np.asarray(names), embeddings=vectors)

    code, out, err = run_cli("faces", "import", tmp_path / "in.npz", "--gallery", secret, "--json")
    assert code == 0, err
    assert json.loads(out)["added"] == 6 and "pa55word" not in out + err
    code, out, _ = run_cli("faces", "list", "--gallery", secret, "--json")
    listed = json.loads(out)
    assert [p["name"] for p in listed["persons"]] == ["person 0", "person 1", "person 2"]
    assert "tester:***@" in listed["gallery"] and "pa55word" not in out
    monkeypatch.setenv("NEURALENS_GALLERY", secret)  # as docker-compose.yml sets it
    code, out, _ = run_cli("faces", "rename", "person 2", "Ada")
    assert code == 0 and "Ada" in out
    code, out, err = run_cli("faces", "remove", "ada")
    assert code == 0 and "removed Ada (2 embedding(s))" in out and "pa55word" not in out + err
    code, out, _ = run_cli("faces", "export", "-o", tmp_path / "out.csv")
    assert code == 0 and "4 embedding(s) of 2 people" in out
    assert "no one called 'nobody'" in cli_error("faces", "remove", "nobody")


def test_the_web_on_a_postgresql_url(url):
    from fastapi.testclient import TestClient

    from neuralens.web.app import create_app

    _enrolled(url, 2)
    with TestClient(create_app(gallery=url, device="cpu")) as client:
        listed = client.get("/api/faces/people").json()
        assert [(p["name"], p["embeddings"]) for p in listed["people"]] == [("person 0", 5), ("person 1", 5)]
        assert client.delete("/api/faces/people/PERSON%201").json() == {"removed": "person 1", "embeddings": 5}
        assert client.delete("/api/faces/people/person%201").status_code == 404
    with open_gallery(url) as gallery:
        assert [p.name for p in gallery.persons()] == ["person 0"]


def test_another_sessions_writes_are_seen_by_the_next_search(url):
    """The exact search's matrix is cached per process (the web opens the gallery per request) and read
    again when any session has written."""
    centres = _enrolled(url, 3)
    newcomer = people(1, seed=11)[2]
    with open_gallery(url) as reader, open_gallery(url) as writer:
        assert reader.search(photos_of(centres))[0] == ["person 0", "person 1", "person 2"]
        with open_gallery(url) as again:  # a new object in the same process: the cached matrix
            assert again._stored() is reader._stored()
        writer.add_embeddings("Newcomer", newcomer, ["n"], FINGERPRINT)
        assert reader.search(newcomer)[0] == ["Newcomer"]
        writer.rename("person 1", "Renamed")
        assert reader.search(photos_of(centres))[0] == ["person 0", "Renamed", "person 2"]
