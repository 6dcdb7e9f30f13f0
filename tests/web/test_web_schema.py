"""The API's description: /docs and /redoc work offline, the OpenAPI schema says what the server really
answers (checked by schemathesis against the app in process), and the style form is generated from
StyleOptions' specs (the same fields, defaults and limits as `neuralens stylize`)."""

from __future__ import annotations

import re
import time

import pytest
from PIL import Image
from web_helpers import fuzz, png, schema_operations

from neuralens.options import specs
from neuralens.style.options import StyleOptions
from neuralens.web.style_api import SAMPLE_KINDS, samples

URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


def form_schema(client) -> dict:
    schema = client.get("/openapi.json").json()
    ref = schema["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_api_docs_load_nothing_from_elsewhere(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    foreign = [u for u in URL.findall(page.text) if not u.startswith(("http://testserver", "//testserver"))]
    assert foreign == [], foreign
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
    assert "/docs-assets/swagger-ui-bundle.js" in assets and "/docs-assets/swagger-ui.css" in assets
    assert '"validatorUrl": null' in page.text  # off: it would send the schema to a validator site
    assert client.get("/redoc").status_code == 404  # ReDoc's bundle fetches its logo from elsewhere: not served


def test_style_form_is_generated_from_the_options(client):
    form = form_schema(client)["properties"]
    offered = {name: spec for name, spec in specs(StyleOptions).items() if spec.web is True}
    not_offered = set(specs(StyleOptions)) - set(offered)
    assert offered and not_offered  # e.g. device, weights and the mask paths are the server's business
    for name, spec in offered.items():
        assert name in form, name
        default = StyleOptions.__dataclass_fields__[name].default
        assert form[name].get("default") == default, (name, form[name].get("default"), default)
        assert spec.help.split(":")[0] in form[name]["description"] or name == "init"
    for name in not_offered:
        assert name not in form, name
    # Limits and choices come through as JSON Schema.
    assert form["size"]["exclusiveMinimum"] == 0 and form["size"]["type"] == "integer"
    assert form["style_weight"]["minimum"] == 0 and form["style_weight"]["type"] == "number"
    assert form["optimizer"]["enum"] == ["lbfgs", "adam"]
    assert form["init"]["enum"] == ["content", "noise", "style"]  # no paths on the server from the web
    assert form["size"]["default"] == 512  # as on the command line
    # /api/info hands the same fields to the page.
    info = client.get("/api/info").json()
    assert [o["name"] for o in info["options"]] == list(offered)
    assert {o["name"]: o["default"] for o in info["options"]}["size"] == 512


def test_job_options_are_the_style_options(client):
    job = client.post(
        "/api/jobs",
        data={
            "content_sample": "tubingen.jpg",
            "style_sample": "starry_night.jpg",
            "size": "64",
            "iterations": "1000",
            "pooling": "avg",
            "seed": "7",
        },
    )
    assert job.status_code == 202, job.text
    client.post(f"/api/jobs/{job.json()['id']}/cancel")
    options = job.json()["options"]
    expected = StyleOptions(size=64, iterations=1000, pooling="avg", seed=7, device="cpu").to_dict()
    assert options == expected


def test_every_bundled_sample_is_declared_content_or_style(client):
    assert set(samples()) == set(SAMPLE_KINDS)
    listed = {s["name"]: s["kind"] for s in client.get("/api/info").json()["samples"]}
    assert listed == {
        "tubingen.jpg": "content",
        "chelsea.jpg": "content",
        "starry_night.jpg": "style",
        "the_scream.jpg": "style",
    }


@pytest.mark.parametrize("size", [(4000, 4), (4, 4000)])
def test_images_too_thin_for_the_network_are_refused_before_queueing(client, style_image, size):
    thin = Image.new("RGB", size, "gray")
    response = client.post(
        "/api/jobs",
        data={"style_sample": "starry_night.jpg", "size": "256"},
        files={"content": ("thin.png", png(thin), "image/png")},
    )
    assert response.status_code == 422, response.text
    assert "content image" in response.json()["error"] and "too thin" in response.json()["error"]
    # As a style image too (styles are scaled to size x style_scale, as the job will).
    response = client.post(
        "/api/jobs",
        data={"content_sample": "tubingen.jpg", "size": "256"},
        files={"style": ("thin.png", png(thin), "image/png")},
    )
    assert response.status_code == 422 and "style 1" in response.json()["error"], response.text
    assert client.get("/api/jobs").json() == {"jobs": []}  # nothing was queued


def test_schema_declares_bearer_auth_only_with_a_token(make_client):
    open_schema = make_client().get("/openapi.json").json()
    assert "securitySchemes" not in open_schema.get("components", {})
    assert all("security" not in op for item in open_schema["paths"].values() for op in item.values())
    assert all("401" not in op["responses"] for item in open_schema["paths"].values() for op in item.values())
    guarded = make_client(token="a-long-secret").get("/openapi.json").json()
    assert guarded["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, item in guarded["paths"].items():
        for op in item.values():
            if path in ("/healthz", "/readyz"):  # public probes (yes/no only): docs/scale-out.md
                assert "security" not in op and "401" not in op["responses"], path
                continue
            assert op["security"] == [{"HTTPBearer": []}] and "401" in op["responses"], path


def test_schema_declares_the_errors_as_they_are(client):
    schema = client.get("/openapi.json").json()
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
    assert "HTTPValidationError" not in str(schema)  # validation errors are 400 {"error": ...} here
    job = schema["paths"]["/api/jobs"]["post"]["responses"]
    assert set(job) == {"202", "400", "403", "404", "413", "415", "422", "429"}
    for status, response in job.items():
        if status != "202":
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert set(schema["paths"]["/api/jobs/{job_id}/result"]["get"]["responses"]) == {"200", "400", "404", "409"}
    required = schema["components"]["schemas"]["JobOut"]["required"]
    assert {"id", "status", "progress", "options", "urls", "queue_position", "result_size"} <= set(required)


# ---- schemathesis -----------------------------------------------------------------------------------


class FastResult:
    def __init__(self, image):
        self.image, self.stopped = image, False


def fast_runner(job, callback, should_stop):
    """Stands in for the optimiser: the jobs schemathesis submits finish at once, with a tiny image."""
    return FastResult(Image.new("RGB", (8, 6), "white"))


def test_the_schema_matches_the_api_under_schemathesis(make_client, tiny_models):
    """Generated requests (valid and invalid) to every API route (style jobs, real-time models, info and
    faces): no 5xx, and every answer's status, content type and body as the schema says; invalid data is
    refused. Jobs finish at once (fast_runner); the built-in models are one width-8 stand-in ('tiny')."""
    pytest.importorskip("schemathesis", reason="schemathesis is not installed (requirements-dev.txt)")
    client = make_client(max_queue=2, max_size=128)
    client.app.state.manager.runner = fast_runner
    _, checks, operations = schema_operations(client.app)
    assert len([label for label in operations if "/api/jobs" in label]) == 8, sorted(operations)
    assert len([label for label in operations if "/api/models" in label]) == 2, sorted(operations)
    submitted, painted = [], []

    def follow(job_id: str) -> None:
        """Each route of a job that exists, checked the same way."""
        for label in (
            "GET /api/jobs/{job_id}",
            "GET /api/jobs/{job_id}/events",
            "GET /api/jobs/{job_id}/preview",
            "GET /api/jobs/{job_id}/result",
            "GET /api/jobs",
            "POST /api/jobs/{job_id}/cancel",
            "DELETE /api/jobs/{job_id}",
        ):
            case = operations[label].Case(path_parameters={"job_id": job_id} if "{" in label else None)
            case.call_and_validate(checks=checks)

    explicit = operations["POST /api/jobs"].Case(
        body={"content_sample": "tubingen.jpg", "style_sample": ["starry_night.jpg"], "size": 64},
        media_type="multipart/form-data",
    )
    response = explicit.call_and_validate(checks=checks)
    assert response.status_code == 202, response.text
    wait_done(client, response.json()["id"])
    follow(response.json()["id"])

    def call(label, positive, case):
        if label == "POST /api/models/{name}/stylize" and positive and isinstance(case.body, dict):
            if len(painted) % 2 == 0:
                # Half the valid forms name the model and a sample, so that images come back (200) too.
                case.path_parameters["name"] = "tiny"
                case.body.pop("content", None)
                case.body["content_sample"] = "tubingen.jpg"
            painted.append(case.call_and_validate(checks=checks).status_code)
            return
        if label == "POST /api/jobs" and positive and isinstance(case.body, dict) and len(submitted) % 2 == 0:
            # Half the valid forms get real inputs (random ones are almost never images), so that
            # jobs are accepted (202) or refused for their options (422) as well.
            case.body.pop("content", None)
            case.body["content_sample"], case.body["style"] = "tubingen.jpg", []
            case.body["style_sample"] = ["starry_night.jpg"]
            for free_text in ("style_blend", "content_layers", "style_layers"):
                case.body.pop(free_text, None)
        response = case.call_and_validate(checks=checks)
        if label == "POST /api/jobs":
            submitted.append(response.status_code)
            if response.status_code == 202:
                wait_done(client, response.json()["id"])
                follow(response.json()["id"])

    explicit = operations["POST /api/models/{name}/stylize"].Case(
        path_parameters={"name": "tiny"},
        body={"content_sample": "tubingen.jpg", "size": 64, "strength": 0.5},
        media_type="multipart/form-data",
    )
    response = explicit.call_and_validate(checks=checks)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG"), response.status_code
    fuzz(operations, checks, max_examples=15, call=call)
    assert 422 in submitted and 400 in submitted, submitted
    assert 200 in painted and 404 in painted, painted


def wait_done(client, job_id: str) -> None:
    deadline = time.monotonic() + 10
    while client.get(f"/api/jobs/{job_id}").json()["status"] not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
