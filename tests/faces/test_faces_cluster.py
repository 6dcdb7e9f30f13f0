"""faces cluster: the sample photos of each person land in one group; contact sheets and the report; a
group enrolled by name."""

import json
import shutil

import pytest
from PIL import Image

from neuralens.errors import NeuralensError
from neuralens.faces import Gallery, identify
from neuralens.faces.cluster import cluster, enroll_group, write_report

# Who is where (tests/data/faces/CREDITS.md): (photo, face number left to right).
OBAMA = {("obama.jpg", 1), ("obama2.jpg", 1), ("obama_small.jpg", 1), ("two_people.jpg", 1), ("obama_and_biden.jpg", 2)}
BIDEN = {("biden.jpg", 1), ("biden2.jpg", 1), ("two_people.jpg", 2), ("obama_and_biden.jpg", 1)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photo):
    path = tmp_path_factory.mktemp("library")
    for name in ("obama.jpg", "obama2.jpg", "obama_small.jpg", "biden.jpg", "biden2.jpg", "two_people.jpg"):
        shutil.copy(photo(name), path / name)
    shutil.copy(photo("obama_and_biden.jpg"), path / "obama_and_biden.jpg")
    return path


@pytest.fixture(scope="module")
def grouped(folder):
    return cluster(sorted(folder.iterdir()), progress=False)


def _members(group):
    return {(f.photo.rsplit("/", 1)[-1], f.face.index) for f in group.faces}


def test_each_person_is_one_group(grouped):
    assert _members(grouped.group(1)) == OBAMA
    assert _members(grouped.group(2)) == BIDEN
    assert [len(g.faces) for g in grouped.groups] == [5, 4, 1]  # the third person of obama_and_biden.jpg
    assert grouped.threshold == 0.6 and grouped.photos == 7 and grouped.faces == 10
    with pytest.raises(NeuralensError, match="no group 4"):
        grouped.group(4)


def test_report_and_contact_sheets(grouped, tmp_path):
    page = write_report(grouped, tmp_path / "faces.html")
    text = page.read_text()
    assert "3 group(s) of 10 face(s) in 7 photo(s)" in text and "faces_sheets/group-1.jpg" in text
    with Image.open(tmp_path / "faces_sheets" / "group-1.jpg") as sheet:
        assert sheet.size == (5 * 112, 112)
    assert grouped.to_dict()["groups"][0]["sheet"].endswith("group-1.jpg")


def test_enrolled_group_is_identified(grouped, tmp_path, photo):
    with Gallery(tmp_path / "g.sqlite3") as gallery:
        result = enroll_group(gallery, grouped, 2, "Joe Biden")
        # The small faces of the group photo are below the enrolment size and skipped with a warning.
        assert result.added == 3 and any("too small" in w for w in result.warnings)
        assert enroll_group(gallery, grouped, 2, "joe biden").added == 0  # already enrolled: skipped
        assert [m.name for m in identify(gallery, photo("two_people.jpg"))] == [None, "Joe Biden"]


def test_cli_cluster_report_json_and_enrol(run_cli, cli_error, folder, tmp_path):
    report = tmp_path / "out" / "report.html"
    report.parent.mkdir()
    code, out, _ = run_cli("faces", "cluster", folder, "-o", report)
    assert code == 0 and "10 face(s) in 7 photo(s): 3 group(s)" in out and report.exists()
    gallery = tmp_path / "cli.sqlite3"
    code, out, err = run_cli(
        "faces", "cluster", folder, "--json", "--enroll-cluster", "1", "Obama", "--gallery", gallery
    )
    data = json.loads(out)
    assert code == 0 and data["enrolled"][0]["name"] == "Obama" and data["groups"][0]["size"] == 5
    code, out, _ = run_cli("faces", "list", "--gallery", gallery)
    assert "Obama" in out
    code, _, err = run_cli("faces", "cluster", folder, "--enroll-cluster", "9", "X", "--gallery", gallery)
    # After the progress lines (the groups are known only once every face is found), one error line.
    assert code == 2 and err.strip().splitlines()[-1] == "error: no group 9: the photos gave 3 group(s)"
    assert "Traceback" not in err
    assert "must be a number" in cli_error("faces", "cluster", folder, "--enroll-cluster", "x", "X")
    assert "HTML page" in cli_error("faces", "cluster", folder, "-o", tmp_path / "r.png")
