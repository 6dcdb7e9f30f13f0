"""People's names: one person per name whatever its case or Unicode encoding, invisible characters refused,
one lookup for everyone, and the upgrade of galleries written before names had a key."""

import json
import sqlite3
import unicodedata

import numpy as np
import pytest

from neuralens import cli
from neuralens.errors import NeuralensError
from neuralens.faces import Gallery
from neuralens.faces.models import Pipeline

EMILE = "\u00c9mile"  # 'Émile' with a precomposed É
EMILE_DECOMPOSED = "E\u0301mile"  # 'E' + COMBINING ACUTE ACCENT: looks the same
FINGERPRINT = None


def fingerprint() -> dict:
    global FINGERPRINT
    FINGERPRINT = FINGERPRINT or Pipeline().fingerprint()
    return FINGERPRINT


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, 128).astype(np.float32)


def add(gallery: Gallery, name: str, seed: int) -> None:
    gallery.add_embeddings(name, [vector(seed)], [f"hash-{seed}"], fingerprint())


@pytest.mark.parametrize(
    "first, second",
    [
        (EMILE, "\u00e9mile"),  # SQLite's NOCASE folds ASCII only: É and é were two people
        (EMILE, EMILE_DECOMPOSED),  # the same letters in two Unicode encodings
        ("Stra\u00dfe", "STRASSE"),  # full case folding: ß = ss
    ],
)
def test_names_that_match_are_one_person(tmp_path, first, second):
    with Gallery(tmp_path / "g.sqlite3") as g:
        add(g, first, 1)
        add(g, second, 2)
        people = g.persons()
        assert [(p.name, p.embeddings) for p in people] == [(unicodedata.normalize("NFC", first), 2)]
        assert g.person(second).name == people[0].name  # looked up either way
        with pytest.raises(NeuralensError, match="already enrolled"):
            add(g, "Someone else", 3)
            g.rename("Someone else", second)


def test_the_name_is_kept_as_typed_but_in_nfc(tmp_path):
    with Gallery(tmp_path / "g.sqlite3") as g:
        add(g, EMILE_DECOMPOSED, 1)
        assert [p.name for p in g.persons()] == [EMILE]  # NFC: one code point for É
        g.rename("\u00e9MILE", "\u00e9mile")  # another case of their own name is fine
        assert [p.name for p in g.persons()] == ["\u00e9mile"]


@pytest.mark.parametrize("bad", ["\u200b", "\u200d", "\ufeff", "\u202e", "\u00ad", "\x00", "\t", "\u2028"])
def test_invisible_and_control_characters_are_refused(tmp_path, bad):
    with Gallery(tmp_path / "g.sqlite3") as g:
        with pytest.raises(NeuralensError) as caught:
            add(g, f"Ada{bad}Lovelace", 1)
        message = str(caught.value)
        assert "\n" not in message and f"U+{ord(bad):04X}" in message and "not allowed in names" in message
        assert g.persons() == []
        add(g, "Ada Lovelace", 2)
        with pytest.raises(NeuralensError, match="not allowed in names"):
            g.rename("Ada Lovelace", f"Ada{bad}King")


def test_the_cli_finds_people_by_the_same_key(capsys, tmp_path):
    path = tmp_path / "g.sqlite3"
    with Gallery(path) as g:
        add(g, EMILE, 1)
        add(g, "Stra\u00dfe", 2)
    assert cli.main(["faces", "remove", "\u00c9MILE", "--gallery", str(path)]) == 0
    assert f"removed {EMILE}" in capsys.readouterr().out
    assert cli.main(["faces", "rename", "strasse", "Stra\u00dfe Zwei", "--gallery", str(path)]) == 0
    with Gallery(path) as g:
        assert [p.name for p in g.persons()] == ["Stra\u00dfe Zwei"]


# The schema of gallery format 1, as neuralens wrote it before names had a key.
OLD_SCHEMA = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE persons (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created TEXT NOT NULL);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    image_sha256 TEXT NOT NULL,
    source TEXT,
    box TEXT,
    created TEXT NOT NULL);
CREATE INDEX embeddings_by_person ON embeddings(person_id);
"""


def old_gallery(path, names):
    """A format-1 gallery file with one embedding per name (seeded by its position)."""
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    for key, value in (
        ("format", {"name": "neuralens-faces-gallery", "version": 1}),
        ("threshold", 0.55),
        ("confidence", {"intercept": 9.0, "slope": -15.0}),
        ("pipeline", fingerprint()),
    ):
        conn.execute("INSERT INTO settings VALUES (?, ?)", (key, json.dumps(value)))
    for i, name in enumerate(names, start=1):
        conn.execute("INSERT INTO persons (id, name, created) VALUES (?, ?, 'then')", (10 * i, name))
        conn.execute(
            "INSERT INTO embeddings (person_id, vector, image_sha256, created) VALUES (?, ?, ?, 'then')",
            (10 * i, vector(i).astype("<f4").tobytes(), f"hash-{i}"),
        )
    conn.commit()
    conn.close()


def test_an_old_gallery_is_upgraded_when_opened(tmp_path):
    path = tmp_path / "old.sqlite3"
    old_gallery(path, ["Ada", EMILE_DECOMPOSED, "Stra\u00dfe"])
    with Gallery(path) as g:
        assert [(p.name, p.embeddings) for p in g.persons()] == [("Ada", 1), ("Stra\u00dfe", 1), (EMILE, 1)]
        assert g.person("\u00e9mile").name == EMILE and g.person("STRASSE").name == "Stra\u00dfe"
        assert np.array_equal(g.embeddings("strasse")[0], vector(3)) and g.threshold == 0.55
        names, dists = g.search(vector(2)[None, :])
        assert names == [EMILE] and dists[0] < 1e-3
        add(g, "\u00c9MILE", 9)  # the same person now
        assert len(g) == 3 and g.embedding_count() == 4
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(persons)")]
    version = json.loads(conn.execute("SELECT value FROM settings WHERE key = 'format'").fetchone()[0])["version"]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    assert "key" in columns and version == 2
    with Gallery(path) as again:  # opening it again changes nothing
        assert [p.embeddings for p in again.persons()] == [1, 1, 2]


def test_an_old_gallery_whose_people_would_merge_is_refused_untouched(tmp_path):
    path = tmp_path / "old.sqlite3"
    old_gallery(path, [EMILE, "Zoe", "\u00e9mile"])
    before = path.read_bytes()
    with pytest.raises(NeuralensError) as caught:
        Gallery(path)
    message = str(caught.value)
    assert "\n" not in message and "cannot upgrade" in message
    assert f"'{EMILE}'" in message and "'\u00e9mile'" in message and "Zoe" not in message
    conn = sqlite3.connect(path)
    assert [row[0] for row in conn.execute("SELECT name FROM persons ORDER BY id")] == [EMILE, "Zoe", "\u00e9mile"]
    assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 3
    assert "key" not in [row[1] for row in conn.execute("PRAGMA table_info(persons)")]
    conn.close()
    assert len(path.read_bytes()) == len(before)


def test_len_counts_people(tmp_path, enrolled):
    with Gallery(enrolled) as g:  # Obama with two photos, Biden with one
        assert len(g) == 2 and g.embedding_count() == 3
