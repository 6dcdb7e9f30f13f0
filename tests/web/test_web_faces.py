"""Faces through the HTTP API: enrol, list, identify, verify, remove — with real face photos."""
from __future__ import annotations

import io

from PIL import Image

from web_helpers import DATA


def upload(name: str):
    return (name, (DATA / name).read_bytes(), "image/jpeg")


def test_faces_round_trip(client):
    assert client.get("/api/faces/people").json()["people"] == []
    empty = client.post("/api/faces/identify", files={"photo": upload("two_people.jpg")})
    assert empty.status_code == 422 and "enrol someone first" in empty.json()["error"]

    obama = client.post("/api/faces/people", data={"name": "Barack Obama"}, files={"photo": upload("obama.jpg")})
    assert obama.status_code == 201, obama.text
    assert obama.json()["added"] == 1 and obama.json()["warnings"] == []
    biden = client.post("/api/faces/people", data={"name": "Joe Biden"}, files={"photo": upload("biden.jpg")})
    assert biden.status_code == 201, biden.text
    again = client.post("/api/faces/people", data={"name": "Barack Obama"}, files={"photo": upload("obama.jpg")})
    assert again.json()["added"] == 0 and again.json()["skipped"]

    people = client.get("/api/faces/people").json()["people"]
    assert [(p["name"], p["embeddings"]) for p in people] == [("Barack Obama", 1), ("Joe Biden", 1)]

    found = client.post("/api/faces/identify", files={"photo": upload("two_people.jpg")}).json()
    assert found["width"] == 560 and len(found["faces"]) == 2
    assert [f["name"] for f in found["faces"]] == ["Barack Obama", "Joe Biden"]  # left to right
    assert all(len(f["box"]) == 4 and f["distance"] < f["threshold"] for f in found["faces"])

    drawn = client.post("/api/faces/identify?annotate=true", files={"photo": upload("two_people.jpg")})
    assert drawn.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(drawn.content)).size == (560, 329)

    same = client.post("/api/faces/verify", data={"name": "barack obama"}, files={"photo": upload("obama2.jpg")})
    assert same.status_code == 200 and same.json()["same"] is True and same.json()["name"] == "Barack Obama"
    other = client.post("/api/faces/verify", data={"name": "Joe Biden"}, files={"photo": upload("obama2.jpg")})
    assert other.json()["same"] is False

    odd = client.post("/api/faces/people", data={"name": "AC/DC fan"}, files={"photo": upload("obama2.jpg")})
    assert odd.status_code == 201 and "Barack Obama" in odd.json()["warnings"][0]  # a look-alike warning
    assert client.delete("/api/faces/people/ac%2Fdc%20fan").json() == {"removed": "AC/DC fan", "embeddings": 1}

    removed = client.delete("/api/faces/people/barack%20obama")
    assert removed.status_code == 200 and removed.json() == {"removed": "Barack Obama", "embeddings": 1}
    assert [p["name"] for p in client.get("/api/faces/people").json()["people"]] == ["Joe Biden"]
    assert client.delete("/api/faces/people/Barack%20Obama").status_code == 404
    left = client.post("/api/faces/identify", files={"photo": upload("two_people.jpg")}).json()["faces"]
    assert [f["name"] for f in left] == ["unknown", "Joe Biden"]


def test_enrolment_errors_say_what_is_wrong(client):
    no_face = client.post("/api/faces/people", data={"name": "Cat"},
                          files={"photo": ("cat.jpg", (DATA.parent.parent.parent / "neuralens" / "samples"
                                                       / "starry_night.jpg").read_bytes(), "image/jpeg")})
    assert no_face.status_code == 422 and "no face found" in no_face.json()["error"]
    two = client.post("/api/faces/people", data={"name": "Both"}, files={"photo": upload("two_people.jpg")})
    assert two.status_code == 422 and "face" in two.json()["error"]
    nameless = client.post("/api/faces/people", data={"name": "  "}, files={"photo": upload("obama.jpg")})
    assert nameless.status_code == 422 and "name cannot be empty" in nameless.json()["error"]
    missing = client.post("/api/faces/people", data={"name": "Nobody"})
    assert missing.status_code == 400 and "photo" in missing.json()["error"]
    not_image = client.post("/api/faces/identify", files={"photo": ("x.jpg", b"GIF89a-not-really", "image/jpeg")})
    assert not_image.status_code == 415
    assert client.get("/api/faces/people").json()["people"] == []
