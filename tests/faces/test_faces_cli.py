"""`neuralens faces ...` end to end through neuralens.cli.main, and every bad input's one-line error."""

import json
import re
import shutil

import pytest
from PIL import Image

from neuralens import cli


def run(capsys, *args):
    code = cli.main(["faces", *[str(a) for a in args]])
    out, err = capsys.readouterr()
    return code, out, err


PROGRESS = re.compile(r"^encoding \d+(/\d+)? image")  # neuralens.progress's plain lines (stderr is no terminal)


def assert_one_line_error(code, err, pattern):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if not PROGRESS.match(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture()
def gallery(tmp_path, enrolled):
    """--gallery PATH of a private copy of the Obama + Biden gallery."""
    path = tmp_path / "cli.sqlite3"
    shutil.copy(enrolled, path)
    return path


def test_enroll_list_rename_remove(capsys, photo, private_gallery):
    code, out, err = run(capsys, "enroll", "Obama", photo("obama.jpg"), photo("obama2.jpg"))
    assert code == 0 and "2 embedding(s) added" in out and str(private_gallery) in out, err
    code, out, _ = run(capsys, "enroll", "Biden", photo("two_people.jpg"), "--face", "2", "--json")
    assert code == 0 and json.loads(out)["added"] == 1
    code, out, err = run(capsys, "enroll", "Barack", photo("obama_small.jpg"))
    assert code == 0 and "warning:" in err and "'Obama'" in err
    code, out, _ = run(capsys, "list")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["Barack", "Biden", "Obama"]
    assert run(capsys, "rename", "barack", "Barack Obama")[0] == 0
    code, out, _ = run(capsys, "remove", "Barack Obama")
    assert code == 0 and "removed Barack Obama (1 embedding(s))" in out
    code, out, _ = run(capsys, "list", "--json")
    data = json.loads(out)
    assert [p["name"] for p in data["persons"]] == ["Biden", "Obama"] and data["threshold"] == 0.6


def test_verify_and_compare_exit_status(capsys, photo, gallery):
    code, out, _ = run(capsys, "verify", photo("obama_small.jpg"), "--as", "Obama", "--gallery", gallery)
    assert code == 0 and "same person: yes" in out and "threshold 0.600" in out and "confidence" in out
    code, out, _ = run(capsys, "verify", photo("biden2.jpg"), "--as", "Obama", "--gallery", gallery, "--json")
    result = json.loads(out)
    assert code == 1 and result["same"] is False and result["distance"] > 0.6 and result["name"] == "Obama"
    code, out, _ = run(capsys, "compare", photo("obama.jpg"), photo("obama_small.jpg"))
    assert code == 0 and "same person: yes" in out
    code, out, _ = run(capsys, "compare", photo("obama.jpg"), photo("biden2.jpg"), "--json")
    assert code == 1 and json.loads(out)["same"] is False
    code, out, _ = run(capsys, "compare", photo("obama.jpg"), photo("biden2.jpg"), "--threshold", "2")
    assert code == 0


def test_identify_prints_and_annotates(capsys, photo, gallery, tmp_path):
    out_path = tmp_path / "annotated.png"
    code, out, err = run(capsys, "identify", photo("obama_and_biden.jpg"), "-o", out_path, "--gallery", gallery)
    assert code == 0, err
    lines = out.splitlines()
    assert ": Biden (distance" in lines[0] and ": Obama (distance" in lines[1]
    assert ": unknown (nearest" in lines[2]
    annotated = Image.open(out_path)
    assert annotated.size == Image.open(photo("obama_and_biden.jpg")).size
    original = Image.open(photo("obama_and_biden.jpg")).convert("RGB")
    assert annotated.convert("RGB").tobytes() != original.tobytes()  # boxes and names were drawn
    code, out, _ = run(capsys, "identify", photo("two_people.jpg"), "--gallery", gallery, "--json")
    assert code == 0 and [f["name"] for f in json.loads(out)["faces"]] == ["Obama", "Biden"]


@pytest.fixture()
def pair_list(tmp_path, photo, faceless):
    """A CSV pair list over the test photos (plus one faceless image) and its images folder."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "obama_small.jpg", "biden.jpg", "biden2.jpg"):
        shutil.copy(photo(name), images / name)
    shutil.copy(faceless, images / "empty.jpg")
    rows = [
        "file_x,file_y,Decision",
        "obama.jpg,obama2.jpg,Yes",
        "obama.jpg,obama_small.jpg,Yes",
        "obama2.jpg,obama_small.jpg,Yes",
        "biden.jpg,biden2.jpg,Yes",
        "obama.jpg,biden.jpg,No",
        "obama2.jpg,biden2.jpg,No",
        "obama_small.jpg,biden.jpg,No",
        "obama_small.jpg,biden2.jpg,No",
        "empty.jpg,obama.jpg,No",
    ]
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    return csv_file, images


def test_evaluate_text_and_json(capsys, pair_list):
    csv_file, images = pair_list
    # --upsample 0: these portraits' faces are large, and detection is then about 4x faster.
    code, out, err = run(capsys, "evaluate", csv_file, "--images", images, "--upsample", "0")
    assert code == 0, err
    assert PROGRESS.match(err.splitlines()[-1]) and "6/6 image" in err  # progress shows without a terminal
    for label in (
        "accuracy",
        "best threshold",
        "ROC AUC",
        "EER",
        "TAR @ FAR=0.01",
        "TAR @ FAR=0.001",
        "seconds/image",
        "without a face",
    ):
        assert label in out
    code, out, _ = run(capsys, "evaluate", csv_file, "--images", images, "--json", "--upsample", "0")
    report = json.loads(out)
    assert report["pairs"] == 9 and report["pairs_used"] == 8 and report["no_face"] == 1
    assert report["accuracy"] == 1.0 and report["roc_auc"] == 1.0 and report["eer"] == 0.0
    assert report["tar_at_far"] == {"0.01": None, "0.001": None} and report["threshold"] == 0.6


def test_calibrate_stores_threshold_and_fit(capsys, pair_list, private_gallery):
    csv_file, images = pair_list
    code, out, err = run(capsys, "calibrate", csv_file, "--images", images, "--folds", "2", "--upsample", "0")
    assert code == 0 and "stored in" in out, err
    code, out, _ = run(capsys, "list", "--json")
    threshold = json.loads(out)["threshold"]
    assert threshold != 0.6 and 0.3 < threshold < 0.9
    code, out, _ = run(capsys, "compare", images / "obama.jpg", images / "obama2.jpg", "--json")
    assert json.loads(out)["threshold"] == pytest.approx(threshold, abs=1e-4)
    code, _, err = run(capsys, "calibrate", csv_file, "--images", images, "--far", "1e-3", "--upsample", "0")
    assert_one_line_error(code, err, "needs at least 1000 different-person pairs")


def test_train_then_verify_with_the_head(capsys, tmp_path, photo, gallery):
    dataset = tmp_path / "people"
    for person, files in {
        "obama": ["obama.jpg", "obama2.jpg", "obama_small.jpg"],
        "biden": ["biden.jpg", "biden2.jpg"],
    }.items():
        (dataset / person).mkdir(parents=True)
        for name in files:  # each photo and its mirror image: 6 and 4 photos
            image = Image.open(photo(name))
            image.save(dataset / person / name)
            image.transpose(Image.FLIP_LEFT_RIGHT).save(dataset / person / f"flipped-{name}")
    head = tmp_path / "head.json"
    code, out, err = run(
        capsys,
        "train",
        dataset,
        "-o",
        head,
        "--split",
        "images",
        "--test-fraction",
        "0.5",
        "--steps",
        "30",
        "--upsample",
        "0",
        "--features",
        "chi2",
    )
    assert code == 0, err
    assert "pretrained encoder (before)" in out and "projection head" in out and "classifier head" in out
    saved = json.loads(head.read_text())
    assert saved["format"] == "neuralens-face-head" and saved["classifier"]["features"] == "chi2"
    assert "logistic regression on chi-square" in out
    code, out, err = run(
        capsys, "verify", photo("obama_small.jpg"), "--as", "Obama", "--head", head, "--gallery", gallery
    )
    assert code == 0 and "same person: yes" in out, err
    code, out, err = run(capsys, "identify", photo("two_people.jpg"), "--head", head, "--gallery", gallery)
    assert code == 0 and "Obama" in out and "Biden" in out, err
    code, _, err = run(capsys, "train", dataset, "-o", head, "--upsample", "0")
    assert_one_line_error(code, err, "use --split images")


def test_every_bad_input_gets_a_one_line_error(capsys, tmp_path, photo, gallery, faceless, private_gallery):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photo("obama.jpg").read_bytes()[:3000])
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    tiny = tmp_path / "tiny.jpg"
    Image.open(photo("obama.jpg")).resize((160, 200)).save(tiny)
    g = ["--gallery", gallery]
    cases = [
        (["enroll", "X", faceless, *g], "landscape.jpg: no face found"),
        (["enroll", "X", tiny, *g], "tiny.jpg: face is too small"),
        (["enroll", "X", photo("two_people.jpg"), *g], "2 faces found.*--largest or --face N"),
        (["enroll", "X", broken, *g], "broken.jpg: unreadable or truncated image"),
        (["enroll", "X", notes, *g], "notes.txt: not an image file"),
        (["enroll", "X", tmp_path / "missing.jpg", *g], "missing.jpg: no such file"),
        (["enroll", "  ", photo("obama.jpg"), *g], "name cannot be empty"),
        (["enroll", "X", photo("obama.jpg"), "--jitter", "-1", *g], "jitter must be"),
        (["verify", photo("obama.jpg"), "--as", "Nobody", *g], "no one called 'Nobody'"),
        (["verify", faceless, "--as", "Obama", *g], "no face found"),
        (["remove", "Nobody", *g], "no one called 'Nobody'"),
        (["rename", "Obama", "Biden", *g], "'Biden' is already enrolled"),
        (["identify", photo("obama.jpg")], "is empty: enrol someone first"),
        (["verify", photo("obama.jpg"), "--as", "Obama"], "is empty: enrol someone first"),
        (["identify", faceless, *g], "no face found"),
        (["identify", photo("obama.jpg"), "-o", tmp_path / "out.xyz", *g], "unknown output format"),
        (["identify", photo("obama.jpg"), "--head", notes, *g], "not a face head file"),
        (["identify", photo("obama.jpg"), "--gallery", notes], "not a neuralens gallery"),
        (["compare", photo("obama.jpg"), broken], "unreadable or truncated"),
        (["compare", photo("obama.jpg"), faceless], "no face found"),
        (["evaluate", tmp_path / "nope.csv", "--images", tmp_path], "nope.csv: no such file"),
        (["train", tmp_path / "nope"], "nope: no such folder"),
    ]
    for args, pattern in cases:
        code, out, err = run(capsys, *args)
        assert_one_line_error(code, err, pattern)
    assert not private_gallery.exists()  # read-only commands never create the default gallery


def test_faces_without_a_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "enroll" in out and "identify" in out
