"""The classifier API: classes of photos, a training job followed to its end (features, epochs, result),
predictions by the trained model, the model file; and its refusals (not an image, one class, an empty class,
nothing trained yet), each a one-line JSON error."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Dict, List

import pytest
from image_helpers import small_jpeg
from PIL import Image

from neuralens import classify

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "neuralens" / "samples"
PHOTOS = [SHARED / "content" / n for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")]
PHOTOS += [SAMPLES / "tubingen.jpg"]
PAINTINGS = [
    SHARED / "style" / n
    for n in ("picasso_selfport1907.jpg", "seated-nude.jpg", "shipwreck.jpg", "woman-with-hat-matisse.jpg")
]
PAINTINGS += [SAMPLES / "the_scream.jpg"]
FINISHED = ("done", "failed", "cancelled")


@pytest.fixture(scope="module")
def images() -> Dict[str, List[bytes]]:
    missing = [p for p in PHOTOS + PAINTINGS if not p.is_file()]
    if missing:
        pytest.skip(f"test photos missing: {missing[0]}")
    return {"photo": [small_jpeg(p) for p in PHOTOS], "painting": [small_jpeg(p) for p in PAINTINGS]}


def add_class(client, name: str) -> dict:
    response = client.post("/api/classify/classes", data={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def upload(client, class_id: str, photos: List[bytes]):
    files = [("photo", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    return client.post(f"/api/classify/classes/{class_id}/photos", files=files)


def wait_training(client, job_id: str, timeout: float = 240.0) -> List[dict]:
    """Poll a training until it ends; returns every snapshot seen (the curve grows across them)."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        job = client.get(f"/api/classify/jobs/{job_id}").json()
        seen.append(job)
        if job["status"] in FINISHED:
            return seen
        assert time.monotonic() < deadline, f"training still {job['status']} after {timeout} s"
        time.sleep(0.2)


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message
    return message


def test_classes_photos_training_and_predictions(client, images, tmp_path):
    empty = client.get("/api/classify").json()
    assert empty["classes"] == [] and empty["training"] is None and empty["model"] is None
    options = {o["name"]: o for o in empty["options"]}
    assert options["backbone"]["default"] == "efficientnet-lite0"  # the fast default, from ClassifyOptions
    assert "device" not in options and "cache" not in options  # the server's business
    assert options["fine_tune"]["maximum"] == 20  # the server's cap, in the form the page builds

    photo, painting = add_class(client, "photo"), add_class(client, "painting")
    added = upload(client, photo["id"], images["photo"])
    assert added.status_code == 200, added.text
    assert added.json()["added"] == 5 and added.json()["class"]["count"] == 5
    again = upload(client, photo["id"], images["photo"][:1]).json()
    assert again["added"] == 0 and again["duplicates"] == 1  # the same bytes are one photo
    assert upload(client, painting["id"], images["painting"]).json()["added"] == 5

    listed = client.get("/api/classify").json()
    assert [(c["name"], c["count"]) for c in listed["classes"]] == [("photo", 5), ("painting", 5)]
    thumb = client.get(listed["classes"][1]["photos"][0]["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 128

    started = client.post("/api/classify/train", data={"epochs": "20", "seed": "1"})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["classes"] == ["painting", "photo"]  # the library's order: sorted names
    assert job["options"]["epochs"] == 20 and job["options"]["device"] == "cpu"
    seen = wait_training(client, job["id"])
    final = seen[-1]
    assert final["status"] == "done", final["error"]
    assert final["features"] == {"done": 10, "total": 10}
    assert len(final["epochs"]) == 20 and final["epochs"][-1]["stage"] == "head"
    assert all(0 <= row["train_accuracy"] <= 1 for row in final["epochs"])
    assert any(line.startswith("2 classes") for line in final["log"])
    result = final["result"]
    assert result["train_accuracy"] == 1.0
    validation = result["validation"]
    assert len(validation["confusion"]) == 2 and all(len(row) == 2 for row in validation["confusion"])
    assert sum(map(sum, validation["confusion"])) == result["val_images"] > 0
    assert {row["class"] for row in validation["per_class"]} == {"painting", "photo"}
    assert "precision" in validation["per_class"][0] and "recall" in validation["per_class"][0]
    assert all(m["source"] is None and len(m["photo"]) == 32 for m in validation["mistakes"])  # no server paths

    state = client.get("/api/classify").json()
    assert state["model"]["job"] == job["id"] and state["model"]["classes"] == ["painting", "photo"]
    assert state["training"]["id"] == job["id"]

    # A painting it has never seen is a painting.
    starry = small_jpeg(SAMPLES / "starry_night.jpg", 160)
    answer = client.post("/api/classify/predict", files={"photo": ("starry.jpg", starry, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    prediction = answer.json()
    assert prediction["label"] == "painting" and prediction["probability"] > 0.5
    assert [t["label"] for t in prediction["top"]][0] == "painting" and len(prediction["top"]) == 2
    one = client.post(
        "/api/classify/predict", files={"photo": ("starry.jpg", starry, "image/jpeg")}, data={"top_k": "1"}
    )
    assert len(one.json()["top"]) == 1

    # The model file is the library's: it loads and says the same.
    download = client.get("/api/classify/model")
    assert download.status_code == 200 and download.headers["content-type"] == "application/octet-stream"
    (tmp_path / "model.pt").write_bytes(download.content)
    model = classify.load(tmp_path / "model.pt", device="cpu")
    assert model.classes == ["painting", "photo"]
    assert model.predict(Image.open(io.BytesIO(starry))).label == "painting"

    # Renaming and deleting change the classes, not the trained model.
    renamed = client.patch(f"/api/classify/classes/{photo['id']}", data={"name": "Photos"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Photos"
    removed = client.delete(f"/api/classify/classes/{photo['id']}/photos/{listed['classes'][0]['photos'][0]['id']}")
    assert removed.status_code == 200
    assert client.delete(f"/api/classify/classes/{painting['id']}").json() == {"deleted": "painting"}
    assert [(c["name"], c["count"]) for c in client.get("/api/classify").json()["classes"]] == [("Photos", 4)]
    assert client.get("/api/classify").json()["model"]["classes"] == ["painting", "photo"]


def test_refusals_are_one_line_errors(client, images):
    assert "no trained model" in one_line_error(
        client.post("/api/classify/predict", files={"photo": ("a.jpg", images["photo"][0], "image/jpeg")}), 409
    )
    assert "no trained model" in one_line_error(client.get("/api/classify/model"), 409)
    assert "no photos found" in one_line_error(client.post("/api/classify/train"), 422)

    cats = add_class(client, "cats")
    assert "already a class" in one_line_error(client.post("/api/classify/classes", data={"name": "Cats"}), 409)
    assert "not allowed" in one_line_error(client.post("/api/classify/classes", data={"name": "a/b"}), 400)
    assert "dot" in one_line_error(client.post("/api/classify/classes", data={"name": ".."}), 400)
    assert "empty" in one_line_error(client.post("/api/classify/classes", data={"name": "   "}), 400)

    text = [("photo", ("notes.jpg", b"these are not pixels", "image/jpeg"))]
    message = one_line_error(client.post(f"/api/classify/classes/{cats['id']}/photos", files=text), 415)
    assert "notes.jpg" in message and "not an image" in message
    assert client.get("/api/classify").json()["classes"][0]["count"] == 0  # nothing was stored

    assert upload(client, cats["id"], images["photo"][:2]).status_code == 200
    message = one_line_error(client.post("/api/classify/train"), 422)
    assert "found 1 class (cats); at least 2 are needed" in message
    assert "neuralens-web" not in message  # the server's folders stay out of messages

    add_class(client, "dogs")  # no photos yet
    message = one_line_error(client.post("/api/classify/train"), 422)
    assert "'dogs' has no images" in message and "neuralens-web" not in message

    assert "no class" in one_line_error(client.delete("/api/classify/classes/0123456789ab"), 404)
    assert one_line_error(client.delete("/api/classify/classes/not-an-id"), 400)
    assert "epochs" in one_line_error(client.post("/api/classify/train", data={"epochs": "0"}), 400)
    assert "fine_tune" in one_line_error(client.post("/api/classify/train", data={"fine_tune": "500"}), 400)
    assert client.get("/api/classify").json()["training"] is None  # nothing was queued


def test_one_training_at_a_time_and_cancel(client, images):
    a, b = add_class(client, "a"), add_class(client, "b")
    upload(client, a["id"], images["photo"][:3])
    upload(client, b["id"], images["painting"][:3])
    job = client.post("/api/classify/train", data={"epochs": "5000", "patience": "5000"}).json()
    assert "already queued or running" in one_line_error(client.post("/api/classify/train"), 409)
    cancelled = client.post(f"/api/classify/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    final = wait_training(client, job["id"])[-1]
    assert final["status"] == "cancelled" and final["result"] is None
    assert client.get("/api/classify").json()["model"] is None
    assert "no training" in one_line_error(client.get("/api/classify/jobs/" + "0" * 32), 404)
