"""The HNSW index beside the gallery: agrees with exact search, rebuilt when missing or stale, exact and
immediate removal and rename, and exact search below the crossover."""

import dataclasses
import json

import numpy as np
import pytest
from faces_synthetic import people, photos_of, rows

from neuralens.faces import Gallery
from neuralens.faces.bulk import import_embeddings
from neuralens.faces.index import IndexOptions

SMALL = IndexOptions(exact_below=100)  # the index from 100 embeddings on, so tests stay small


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 5,000-embedding gallery (1,000 people x 5) with its index built; tests must not modify it."""
    path = tmp_path_factory.mktemp("index") / "big.sqlite3"
    with Gallery(path, index=SMALL) as gallery:
        import_embeddings(gallery, rows(1000), progress=False)
    return path


def _copy(big, tmp_path):
    import shutil

    for suffix in ("", ".usearch", ".usearch.json"):
        shutil.copy(str(big) + suffix, str(tmp_path / "g.sqlite3") + suffix)
    return tmp_path / "g.sqlite3"


def test_index_agrees_with_exact_search(big):
    _, vectors, centres = people(1000)
    queries = photos_of(centres[:300])
    with Gallery(big, index=SMALL) as gallery:
        assert gallery.uses_index() and gallery.index.path.exists()
        names, dists = gallery.search(queries)
        exact_names, exact_dists = gallery.search_exact(queries)
    recall = np.mean([a == b for a, b in zip(names, exact_names)])
    assert recall >= 0.99
    same = np.array([a == b for a, b in zip(names, exact_names)])
    # Distances are re-ranked exactly from SQLite: where the person agrees, so does the distance.
    np.testing.assert_allclose(dists[same], exact_dists[same], rtol=1e-5, atol=1e-5)
    assert names[:3] == ["person 0", "person 1", "person 2"]


def test_small_gallery_is_searched_exactly(tmp_path):
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        import_embeddings(gallery, rows(20), progress=False)
        assert not gallery.uses_index()
        gallery.search(photos_of(people(20)[2][:2]))
        assert not gallery.index.path.exists()


def test_deleted_index_is_rebuilt(big, tmp_path):
    path = _copy(big, tmp_path)
    with Gallery(path, index=SMALL) as gallery:
        gallery.index.delete_files()
    with Gallery(path, index=SMALL) as gallery:
        names, _ = gallery.search(photos_of(people(1000)[2][:5]))
        assert names == [f"person {i}" for i in range(5)]
        assert len(gallery.index) == 5000
    assert gallery.index.path.exists()


@pytest.mark.parametrize("damage", ["garbage", "sidecar"])
def test_damaged_or_mismatched_index_is_rebuilt(big, tmp_path, damage):
    path = _copy(big, tmp_path)
    index = path.with_name(path.name + ".usearch")
    if damage == "garbage":
        index.write_bytes(b"not an index" * 100)
    else:
        sidecar = index.with_name(index.name + ".json")
        sidecar.write_text(sidecar.read_text().replace('"token": "', '"token": "x'))
    with Gallery(path, index=SMALL) as gallery:
        names, _ = gallery.search(photos_of(people(1000)[2][:5]))
        assert names == [f"person {i}" for i in range(5)]
        assert len(gallery.index) == 5000


def test_index_built_with_other_settings_is_rebuilt(big, tmp_path):
    path = _copy(big, tmp_path)
    sidecar = path.with_name(path.name + ".usearch.json")
    meta = json.loads(sidecar.read_text())
    assert meta["dtype"] == IndexOptions().dtype == "bf16"
    del meta["dtype"]  # as an index saved before the sidecar recorded how it stores vectors
    sidecar.write_text(json.dumps(meta))
    faces = photos_of(people(1000)[2][:5])
    for dtype in ("bf16", "f16"):
        with Gallery(path, index=dataclasses.replace(SMALL, dtype=dtype)) as gallery:
            names, _ = gallery.search(faces)
            assert names == [f"person {i}" for i in range(5)]
            assert str(gallery.index._index.dtype).lower().endswith(dtype)
        assert json.loads(sidecar.read_text())["dtype"] == dtype


def test_stale_index_catches_up_with_another_process(big, tmp_path):
    path = _copy(big, tmp_path)
    newcomers = rows(3, seed=7)
    newcomers.names = ["new 0"] * 5 + ["new 1"] * 5 + ["new 2"] * 5
    with Gallery(path, index=SMALL) as reader:
        reader.search(photos_of(people(1000)[2][:1]))  # index opened
        with Gallery(path, index=SMALL) as writer:  # another connection adds and removes people
            import_embeddings(writer, newcomers, progress=False)
            writer.remove("person 1")
        names, _ = reader.search(photos_of(people(3, seed=7)[2]))
        assert names == ["new 0", "new 1", "new 2"]
        names, _ = reader.search(photos_of(people(1000)[2][:2]))
        assert names[0] == "person 0" and names[1] != "person 1"
        assert len(reader.index) == 5000 + 15 - 5


def _as_stored(vector: np.ndarray) -> bytes:
    """The bytes of ``vector`` as the default index stores it: bfloat16, rounded to nearest even."""
    bits = vector.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2").tobytes()


def test_removal_is_immediate_and_scrubs_the_index(big, tmp_path):
    path = _copy(big, tmp_path)
    _, vectors, centres = people(1000)
    with Gallery(path, index=SMALL) as gallery:
        assert gallery.search(photos_of(centres[4:5]))[0] == ["person 4"]
        assert gallery.remove("person 4") == 5
        name, _ = gallery.search(photos_of(centres[4:5]))
        assert name != ["person 4"]
        assert name == gallery.search_exact(photos_of(centres[4:5]))[0]
    data = path.with_name(path.name + ".usearch").read_bytes()
    gone = vectors[20:25]
    assert not any(_as_stored(v) in data for v in gone)
    assert _as_stored(vectors[30]) in data  # the check would see a vector that is there


def test_rename_is_immediate(big, tmp_path):
    path = _copy(big, tmp_path)
    with Gallery(path, index=SMALL) as gallery:
        gallery.rename("person 7", "Ada")
        assert gallery.search(photos_of(people(1000)[2][7:8]))[0] == ["Ada"]


def test_ids_are_never_reused(tmp_path):
    with Gallery(tmp_path / "g.sqlite3", index=SMALL) as gallery:
        import_embeddings(gallery, rows(2), progress=False)
        highest = gallery._conn.execute("SELECT MAX(id) FROM embeddings").fetchone()[0]
        gallery.remove("person 1")  # the highest ids
        newcomer = rows(1, seed=3)
        newcomer.names = ["newcomer"] * 5
        import_embeddings(gallery, newcomer, progress=False)
        lowest_new = gallery._conn.execute(
            "SELECT MIN(e.id) FROM embeddings e JOIN persons p ON p.id = e.person_id WHERE p.name = 'newcomer'"
        ).fetchone()[0]
        assert lowest_new > highest


def test_lookalike_search_excludes_the_person(big, tmp_path):
    path = _copy(big, tmp_path)
    with Gallery(path, index=SMALL) as gallery:
        names, dists = gallery.search(photos_of(people(1000)[2][:1]), exclude="person 0")
        assert names[0] not in (None, "person 0") and dists[0] > 0.5


def test_a_few_new_faces_are_searched_beside_the_saved_index(big, tmp_path):
    path = _copy(big, tmp_path)
    index_file = path.with_name(path.name + ".usearch")
    before = index_file.read_bytes()
    newcomers = rows(2, seed=11)
    newcomers.names = ["new 0"] * 5 + ["new 1"] * 5
    with Gallery(path, index=SMALL) as gallery:
        import_embeddings(gallery, newcomers, progress=False)
    with Gallery(path, index=SMALL) as gallery:  # a one-off command after the enrolment
        assert gallery.search(photos_of(people(2, seed=11)[2]))[0] == ["new 0", "new 1"]
        assert len(gallery.index) == 5010
    assert index_file.read_bytes() == before  # found beside the memory-mapped file, which was not rewritten
    many = rows(30, seed=12)
    many.names = [f"more {n}" for n in many.names]
    options = IndexOptions(exact_below=100, save_after=20)
    with Gallery(path, index=options) as gallery:  # more than save_after new: the file is brought up to date
        import_embeddings(gallery, many, progress=False)
        assert gallery.search(photos_of(people(30, seed=12)[2][:1]))[0] == ["more person 0"]
    assert index_file.read_bytes() != before


def test_the_people_of_the_candidates_are_measured_whole(big, monkeypatch):
    """When the index proposes only the farthest embedding of the right person, the search still answers
    with that person's exact nearest distance: every embedding of the candidates' people is measured."""
    _, _, centres = people(1000)
    query = photos_of(centres[7:8])
    with Gallery(big, index=SMALL) as gallery:
        assert gallery.uses_index()
        exact_names, exact_dists = gallery.search_exact(query)
        assert exact_names == ["person 7"]
        own = gallery.embeddings("person 7")
        ids = [
            int(i)
            for (i,) in gallery._conn.execute(
                "SELECT e.id FROM embeddings e JOIN persons p ON p.id = e.person_id WHERE p.name = ? ORDER BY e.id",
                ("person 7",),
            )
        ]
        farthest = ids[int(np.argmax(((own - query) ** 2).sum(axis=1)))]
        monkeypatch.setattr(gallery.index, "candidates", lambda queries, count=None: np.array([[farthest]]))
        names, dists = gallery.search(query)
    assert names == ["person 7"]
    np.testing.assert_allclose(dists, exact_dists, rtol=1e-5)
