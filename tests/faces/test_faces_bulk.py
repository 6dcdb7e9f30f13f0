"""Bulk import and export: round trips in every format, validation, merging, and an import killed halfway
leaving the gallery as it was."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from faces_synthetic import rows

from neuralens.errors import NeuralensError
from neuralens.faces import Gallery
from neuralens.faces.bulk import Embeddings, export_file, import_embeddings, import_file, read_embeddings


@pytest.fixture()
def small(tmp_path):
    """A gallery with 3 people x 2 embeddings."""
    path = tmp_path / "small.sqlite3"
    with Gallery(path) as gallery:
        import_embeddings(gallery, rows(3, photos=2), progress=False)
    return path


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".jsonl"])
def test_round_trip(small, tmp_path, suffix):
    out = tmp_path / f"export{suffix}"
    with Gallery(small) as gallery:
        result = export_file(gallery, out)
        original = gallery.embeddings()
        pipeline = gallery.pipeline
    assert (result.people, result.embeddings, result.format) == (3, 6, suffix.strip(".").replace("npz", "npz"))
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    with Gallery(tmp_path / "copy.sqlite3") as copy:
        imported = import_file(copy, out, progress=False)
        assert (imported.added, imported.people, imported.new_people) == (6, 3, 3)
        np.testing.assert_array_equal(copy.embeddings(), original)
        assert [p.name for p in copy.persons()] == ["person 0", "person 1", "person 2"]
        if suffix != ".csv":  # CSV has no room for the fingerprint
            assert copy.pipeline == pipeline and not imported.warnings
        again = import_file(copy, out, progress=False)  # a second import changes nothing
        assert (again.added, again.skipped) == (0, 6) and copy.embedding_count() == 6


def test_same_name_rows_are_one_person(tmp_path):
    vectors = rows(1, photos=3).vectors
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        result = import_embeddings(gallery, Embeddings(["Émile", "émile", "E\u0301MILE"], vectors), progress=False)
        assert (result.people, result.new_people, result.added) == (1, 1, 3)
        assert [(p.name, p.embeddings) for p in gallery.persons()] == [("Émile", 3)]


def test_import_adds_to_an_enrolled_person(small, tmp_path):
    extra = rows(1, photos=2, seed=9)
    with Gallery(small) as gallery:
        result = import_embeddings(gallery, extra, progress=False)  # 'person 0' exists
        assert (result.new_people, result.added) == (0, 2)
        assert gallery.person("person 0").embeddings == 4


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("short.csv", 'name,embedding\nada,"[1, 2, 3]"\n', "expected 128 numbers, got 3"),
        ("nan.jsonl", json.dumps({"name": "ada", "embedding": [float("nan")] * 128}) + "\n", "NaN"),
        ("nan.csv", "name,embedding\nada," + " ".join(["nan"] * 128) + "\n", "NaN"),
        ("noname.csv", "who,embedding\nada,1\n", "no 'name' column"),
        ("text.npz", "name,embedding\n", "not an .npz file"),
        ("bad.jsonl", "{not json\n", "line 1 is not JSON"),
        ("empty.jsonl", "\n", "no embeddings"),
        ("people.txt", "ada", "unknown embeddings format"),
        ("control.jsonl", json.dumps({"name": "a\u200bda", "embedding": [0.1] * 128}) + "\n", "row 1"),
    ],
)
def test_import_refuses_bad_files(tmp_path, name, content, message):
    path = _write(tmp_path / name, content)
    with pytest.raises(NeuralensError, match=message), Gallery(tmp_path / "g.sqlite3") as gallery:
        import_file(gallery, path, progress=False)
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        assert gallery.embedding_count() == 0


def test_import_refuses_a_binary_file_named_csv_and_pickled_npz(tmp_path):
    binary = tmp_path / "really.csv"
    np.savez(binary.with_suffix(".npz"), names=np.array(["a"]), embeddings=np.zeros((1, 128)))
    binary.write_bytes(binary.with_suffix(".npz").read_bytes())
    with pytest.raises(NeuralensError, match="binary file"):
        read_embeddings(binary)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, names=np.array(["a", 1], dtype=object), embeddings=np.zeros((2, 128)))
    with pytest.raises(NeuralensError, match="without pickle"):
        read_embeddings(pickled)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, names=np.array(["a"]), embeddings=np.zeros((1, 64)))
    with pytest.raises(NeuralensError, match="128 numbers each"):
        read_embeddings(wrong)


def test_import_refuses_another_pipeline(small, tmp_path):
    with Gallery(small) as gallery:
        other = {**gallery.pipeline, "encoder_sha256": "0" * 64}
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"pipeline": other}) + "\n" + json.dumps({"name": "x", "embedding": [0.0] * 128}) + "\n")
    with pytest.raises(NeuralensError, match="another face pipeline"), Gallery(small) as gallery:
        import_file(gallery, path, progress=False)


CHILD = """
import sys
from neuralens.faces import Gallery, bulk
bulk._BLOCK = 500  # many small steps, so the parent can kill it halfway
with Gallery(sys.argv[1]) as gallery:
    bulk.import_file(gallery, sys.argv[2])
print("finished")
"""


def test_killed_import_leaves_the_gallery_as_it_was(small, tmp_path):
    many = rows(4000, photos=5, seed=5)
    many.names = [f"other {name}" for name in many.names]
    source = tmp_path / "many.npz"
    np.savez(source, names=np.array(many.names), embeddings=many.vectors)
    env = {**os.environ, "NEURALENS_PROGRESS_SECONDS": "0", "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(small), str(source)], stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it once some blocks are written in its transaction
        line = child.stderr.readline().decode()
        lines.append(line)
        if line.startswith("importing faces") and " 2000/" in line:
            break
        assert line, "".join(lines)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "".join(lines)
    with Gallery(small) as gallery:
        assert gallery.embedding_count() == 6 and len(gallery) == 3
        names, _ = gallery.search(many.vectors[:2])
        assert all(name.startswith("person") for name in names)


def test_cli_import_and_export(run_cli, cli_error, small, tmp_path):
    out = tmp_path / "people.jsonl"
    code, stdout, _ = run_cli("faces", "export", small, "-o", out)
    assert code == 0 and "exported 6 embedding(s) of 3 people" in stdout
    target = tmp_path / "target.sqlite3"
    code, stdout, _ = run_cli("faces", "import", out, "--gallery", target, "--json")
    assert code == 0 and json.loads(stdout)["added"] == 6
    code, stdout, _ = run_cli("faces", "list", "--gallery", target)
    assert "person 2" in stdout
    assert "unknown embeddings format" in cli_error("faces", "export", small, "-o", tmp_path / "x.xlsx")
    bad = _write(tmp_path / "bad.csv", "name,embedding\nada,1 2\n")
    assert "expected 128 numbers" in cli_error("faces", "import", bad, "--gallery", target)
