"""Faces through the HTTP API: enrol, list, identify, verify, remove — with real face photos."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from web_helpers import DATA, fuzz, schema_operations


def upload(name: str):
    return (name, (DATA / name).read_bytes(), "image/jpeg")


def test_faces_round_trip(client):
    assert client.get("/api/faces/people").json()["people"] == []
    empty = client.post("/api/faces/identify", files={"photo": upload("two_people.jpg")})
    assert empty.status_code == 422 and "enrol someone first (POST /api/faces/people)" in empty.json()["error"]

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
    assert drawn.status_code == 200 and drawn.content.startswith(b"\x89PNG")
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
    no_face = client.post(
        "/api/faces/people",
        data={"name": "Cat"},
        files={
            "photo": (
                "cat.jpg",
                (DATA.parent.parent.parent / "neuralens" / "samples" / "starry_night.jpg").read_bytes(),
                "image/jpeg",
            )
        },
    )
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


def test_names_match_whatever_their_case_or_unicode_encoding(client):
    first = client.post("/api/faces/people", data={"name": "\u00c9mile"}, files={"photo": upload("obama.jpg")})
    assert first.status_code == 201, first.text
    # Python's casefold() said these were one person, SQLite's ASCII-only NOCASE said two.
    second = client.post("/api/faces/people", data={"name": "\u00e9mile"}, files={"photo": upload("obama2.jpg")})
    assert second.status_code == 201 and second.json()["name"] == "\u00c9mile", second.text
    assert second.json()["warnings"] == []  # not a look-alike of someone else: the same person
    decomposed = client.post("/api/faces/people", data={"name": "E\u0301MILE"}, files={"photo": upload("biden.jpg")})
    assert decomposed.status_code == 201 and decomposed.json()["name"] == "\u00c9mile"
    people = client.get("/api/faces/people").json()["people"]
    assert [(p["name"], p["embeddings"]) for p in people] == [("\u00c9mile", 3)]
    hidden = client.post("/api/faces/people", data={"name": "\u00c9mile\u200b"}, files={"photo": upload("biden.jpg")})
    assert hidden.status_code == 422 and "U+200B" in hidden.json()["error"]
    removed = client.delete("/api/faces/people/%C3%A9MILE")
    assert removed.status_code == 200 and removed.json() == {"removed": "\u00c9mile", "embeddings": 3}
    assert client.get("/api/faces/people").json()["people"] == []


def test_verify_unknown_is_404_and_errors_name_the_webs_own_fields(client):
    enrolled = client.post("/api/faces/people", data={"name": "Obama"}, files={"photo": upload("obama.jpg")})
    assert enrolled.status_code == 201
    unknown = client.post("/api/faces/verify", data={"name": "Nobody"}, files={"photo": upload("obama2.jpg")})
    assert unknown.status_code == 404 and "no one called 'Nobody'" in unknown.json()["error"]
    for route, data in (("/api/faces/people", {"name": "Both"}), ("/api/faces/verify", {"name": "Obama"})):
        two = client.post(route, data=data, files={"photo": upload("two_people.jpg")})
        assert two.status_code == 422 and "2 faces found" in two.json()["error"], two.text
        assert "largest=true" in two.json()["error"] and "--" not in two.json()["error"]
    both = client.post(
        "/api/faces/verify", data={"name": "obama", "largest": "true"}, files={"photo": upload("two_people.jpg")}
    )
    assert both.status_code == 200
    assert client.delete("/api/faces/people/Obama").status_code == 200
    empty = client.post("/api/faces/identify", files={"photo": upload("obama.jpg")})
    assert empty.status_code == 422 and "POST /api/faces/people" in empty.json()["error"]
    assert "neuralens faces" not in empty.json()["error"]


def test_the_schema_says_what_the_faces_routes_answer(client):
    schema = client.get("/openapi.json").json()
    models = schema["components"]["schemas"]
    routes = {
        ("/api/faces/people", "get"): ("200", {"422"}),
        ("/api/faces/people", "post"): ("201", {"400", "403", "413", "415", "422"}),
        ("/api/faces/people/{name}", "delete"): ("200", {"400", "403", "404", "422"}),
        ("/api/faces/identify", "post"): ("200", {"400", "403", "413", "415", "422"}),
        ("/api/faces/verify", "post"): ("200", {"400", "403", "404", "413", "415", "422"}),
    }
    for (path, method), (ok, errors) in routes.items():
        responses = schema["paths"][path][method]["responses"]
        assert set(responses) == {ok} | errors, (path, method, sorted(responses))
        for status in errors:
            assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "image/png" in schema["paths"]["/api/faces/identify"]["post"]["responses"]["200"]["content"]
    # Every field the answers always carry is required (they are the results' to_dict(), nothing dropped).
    assert models["VerifyOut"]["required"] == [
        "same",
        "distance",
        "threshold",
        "confidence",
        "name",
        "embeddings",
        "box",
    ]
    assert set(models["FaceMatchOut"]["required"]) == set(models["FaceMatchOut"]["properties"])
    assert set(models["EnrollOut"]["required"]) == {"name", "added", "skipped", "warnings"}
    assert set(models["PeopleOut"]["required"]) == {"people", "threshold"}
    assert set(models["PersonOut"]["required"]) == {"name", "embeddings", "created"}
    assert set(models["RemovedOut"]["required"]) == {"removed", "embeddings"}


def test_the_answers_are_the_results_to_dict(client):
    from neuralens.web.faces_api import EnrollOut, FaceMatchOut, VerifyOut

    enrolled = client.post("/api/faces/people", data={"name": "Obama"}, files={"photo": upload("obama.jpg")})
    assert set(enrolled.json()) == set(EnrollOut.model_fields)
    found = client.post("/api/faces/identify", files={"photo": upload("obama2.jpg")}).json()["faces"]
    assert set(found[0]) == set(FaceMatchOut.model_fields)
    verified = client.post("/api/faces/verify", data={"name": "Obama"}, files={"photo": upload("obama2.jpg")})
    assert set(verified.json()) == set(VerifyOut.model_fields)


def test_the_faces_routes_match_the_schema_under_schemathesis(client):
    """Generated requests (valid and invalid) to every faces route, plus real photos: no 5xx, and every
    answer's status, content type and body as the schema says."""
    pytest.importorskip("schemathesis", reason="schemathesis is not installed (requirements-dev.txt)")
    _, checks, operations = schema_operations(client.app, "/api/faces")
    assert len(operations) == 5, sorted(operations)
    photo = (DATA / "obama.jpg").read_bytes()
    form = "multipart/form-data"
    for label, body, status in (
        ("POST /api/faces/people", {"name": "Obama", "photo": [photo]}, 201),
        ("POST /api/faces/identify", {"photo": photo}, 200),
        ("POST /api/faces/verify", {"name": "obama", "photo": photo}, 200),
        ("POST /api/faces/verify", {"name": "Nobody", "photo": photo}, 404),
    ):
        response = operations[label].Case(body=body, media_type=form).call_and_validate(checks=checks)
        assert response.status_code == status, (label, response.text)
    drawn = (
        operations["POST /api/faces/identify"]
        .Case(body={"photo": photo}, query={"annotate": True}, media_type=form)
        .call_and_validate(checks=checks)
    )
    assert drawn.status_code == 200 and drawn.content.startswith(b"\x89PNG")
    fuzz(operations, checks, max_examples=6)
    names = [p["name"] for p in client.get("/api/faces/people").json()["people"]]
    assert "Obama" in names or names == []  # a generated DELETE may have removed him
