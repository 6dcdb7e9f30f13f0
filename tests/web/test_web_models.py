"""The real-time style routes: GET /api/models lists the built-in models, POST /api/models/{name}/stylize
answers the PNG at once. A width-8 stand-in model (the ``tiny_models`` fixture) replaces the shipped ones."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from web_helpers import png

from neuralens.fast.model import StyleModel
from neuralens.fast.network import TransformerNet
from neuralens.imageio import load_image, resize_long_side
from neuralens.web.style_api import samples


def stylize(client, name="tiny", **data):
    files = data.pop("files", None)
    if files is None:
        data.setdefault("content_sample", "tubingen.jpg")
    return client.post(f"/api/models/{name}/stylize", data=data, files=files)


def test_list_says_what_each_model_is(client, tiny_models):
    response = client.get("/api/models")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["default_size"] == 384
    (model,) = body["models"]
    assert model["name"] == "tiny" and model["width"] == 8 and model["error"] is None
    assert model["painting"] == "starry_night.jpg" and model["title"] == "Van Gogh, The Starry Night"
    assert model["painting_url"] == "/samples/starry_night.jpg"
    assert model["iterations"] == 120 and model["minutes"] == 3.1 and model["trained"] == "120 steps, 3 min"
    assert model["bytes"] == (tiny_models / "tiny.pt").stat().st_size
    assert str(tiny_models) not in response.text  # no server paths in answers


def test_an_unreadable_model_is_listed_with_its_reason(client, tiny_models):
    (tiny_models / "broken.pt").write_bytes(b"not a model")
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert models["broken"]["error"] and "not a readable" in models["broken"]["error"]
    assert str(tiny_models) not in models["broken"]["error"]
    response = stylize(client, "broken")
    assert response.status_code == 422 and "not a readable" in response.json()["error"]


def test_stylize_a_sample_answers_a_png_of_the_size_asked(client, tiny_models):
    response = stylize(client, size="96", strength="0.5", preserve_color="luminance")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert float(response.headers["x-seconds"]) >= 0
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG" and image.size == (96, 72)  # tubingen.jpg is 4:3
    # The default size is 384 px (long side).
    assert Image.open(io.BytesIO(stylize(client).content)).size == (384, 288)


def test_stylize_an_upload(client, tiny_models, content_image):
    response = stylize(client, size="64", files={"content": ("photo.png", png(content_image), "image/png")})
    assert response.status_code == 200, response.text
    assert max(Image.open(io.BytesIO(response.content)).size) == 64


def test_strength_zero_gives_the_photo_back(client, tiny_models):
    photo = resize_long_side(load_image(samples()["tubingen.jpg"]), 64)
    kept = Image.open(io.BytesIO(stylize(client, size="64", strength="0").content)).convert("RGB")
    painted = Image.open(io.BytesIO(stylize(client, size="64", strength="1").content)).convert("RGB")
    assert np.abs(np.asarray(kept, dtype=int) - np.asarray(photo, dtype=int)).max() <= 1
    assert np.abs(np.asarray(painted, dtype=int) - np.asarray(photo, dtype=int)).mean() > 5


def test_the_model_is_loaded_once_and_cached(client, tiny_models):
    cache = client.app.state.models
    calls = []
    loader = cache.loader
    cache.loader = lambda path, device: calls.append(path) or loader(path, device)
    for _ in range(3):
        assert stylize(client, size="32").status_code == 200
    assert len(calls) == 1 and cache.loaded() == ["tiny"]


def test_a_stand_in_model_can_be_given_to_the_cache(client, tiny_models):
    net = TransformerNet(8)
    client.app.state.models.loader = lambda path, device: StyleModel(net, {"name": "stand-in"}, path, "cpu", "fp32")
    assert stylize(client, size="40").status_code == 200


def test_unknown_model_and_sample_are_404(client, tiny_models):
    response = stylize(client, "starry-night")  # shipped, but not in the (replaced) built-in folder
    assert response.status_code == 404 and "no built-in style model called 'starry-night'" in response.json()["error"]
    assert "tiny" in response.json()["error"]  # the message says which exist
    response = stylize(client, content_sample="nope.jpg")
    assert response.status_code == 404 and "content: no bundled sample" in response.json()["error"]


def test_a_client_path_is_never_taken_as_a_model(client, tiny_models, tmp_path, monkeypatch):
    """load_model() would take an existing file of that name: the route only takes names of built-in models."""
    monkeypatch.chdir(tmp_path)
    StyleModel(TransformerNet(8), {}, None, "cpu", "fp32").save(tmp_path / "local.pt")
    for name in ("local.pt", str(tmp_path / "local.pt"), "..%2Fbuiltin-models%2Ftiny", "tiny.pt", "%2E%2E"):
        response = client.post(f"/api/models/{name}/stylize", data={"content_sample": "tubingen.jpg"})
        assert response.status_code == 404, (name, response.text)
    assert client.app.state.models.loaded() == []


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("strength", "1.5", "strength"),
        ("strength", "-0.1", "strength"),
        ("strength", "nan", "strength"),
        ("size", "0", "size"),
        ("size", "abc", "size"),
        ("size", "1025", "size"),  # over this server's --max-size (1024)
        ("preserve_color", "sepia", "preserve_color"),
    ],
)
def test_bad_values_are_400_naming_the_field(client, tiny_models, field, value, said):
    response = stylize(client, **{field: value})
    assert response.status_code == 400, response.text
    assert said in response.json()["error"]


def test_size_limit_follows_the_server(make_client, tiny_models):
    client = make_client(max_size=128)
    assert stylize(client, size="128").status_code == 200
    response = stylize(client, size="129")
    assert response.status_code == 400 and "size" in response.json()["error"] and "128" in response.json()["error"]


def test_content_is_one_upload_or_one_sample(client, tiny_models, content_image):
    response = client.post("/api/models/tiny/stylize", data={"size": "64"})
    assert response.status_code == 400 and "exactly one content image" in response.json()["error"]
    both = stylize(client, content_sample="tubingen.jpg", files={"content": ("p.png", png(content_image), "image/png")})
    assert both.status_code == 400


def test_bad_uploads_are_refused_as_elsewhere(client, tiny_models):
    response = stylize(client, files={"content": ("photo.png", b"not an image at all", "image/png")})
    assert response.status_code == 415 and "content (photo.png): not an image" in response.json()["error"]
    response = stylize(client, files={"content": ("empty.png", b"", "image/png")})
    assert response.status_code == 400 and "empty" in response.json()["error"]


def test_the_schema_declares_the_routes_and_their_errors(client, tiny_models):
    schema = client.get("/openapi.json").json()
    listed = schema["paths"]["/api/models"]["get"]["responses"]
    assert listed["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ModelList"}
    post = schema["paths"]["/api/models/{name}/stylize"]["post"]
    assert set(post["responses"]) == {"200", "400", "403", "404", "413", "415", "422"}
    assert "image/png" in post["responses"]["200"]["content"]
    for status, answer in post["responses"].items():
        if status != "200":
            assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    fields = schema["components"]["schemas"][form]["properties"]
    assert fields["size"]["default"] == 384 and fields["size"]["maximum"] == 1024
    assert fields["strength"]["minimum"] == 0 and fields["strength"]["maximum"] == 1
    assert fields["preserve_color"]["enum"] == ["none", "luminance", "histogram"]


def test_the_routes_are_guarded_like_the_others(make_client, tiny_models):
    guarded = make_client(token="a-long-secret")
    assert guarded.get("/api/models").status_code == 401
    assert stylize(guarded).status_code == 401
    good = {"Authorization": "Bearer a-long-secret"}
    assert guarded.get("/api/models", headers=good).status_code == 200
    evil = {**good, "Origin": "http://evil.example"}
    response = guarded.post("/api/models/tiny/stylize", data={"content_sample": "tubingen.jpg"}, headers=evil)
    assert response.status_code == 403 and "cross-site" in response.json()["error"]
    assert guarded.app.state.models.loaded() == []  # refused before anything was loaded
