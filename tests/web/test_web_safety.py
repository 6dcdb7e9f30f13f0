"""Bad requests, upload limits, the token, cross-site refusal, binding rules, and the page's own assets."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from web_helpers import png

from neuralens.cli import main
from neuralens.errors import NeuralensError
from neuralens.web.security import check_bind, is_loopback

STATIC = Path(__file__).resolve().parents[2] / "neuralens" / "web" / "static"
SAMPLES = {"content_sample": "tubingen.jpg", "style_sample": "starry_night.jpg", "size": "64", "iterations": "2"}


def error_of(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def test_page_assets_load_nothing_external(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>neuralens</title>" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC.iterdir():
        text = path.read_text()
        # Any absolute URL would be a request to somewhere else; the page only uses its own paths.
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path.name
        assert not re.search(r"""(url\(|import\s|fetch\()\s*["']?(https?:)?//""", text), path.name
    assert client.get("/samples/tubingen.jpg").headers["content-type"] == "image/jpeg"
    assert client.get("/openapi.json").json()["info"]["title"] == "neuralens"
    assert client.get("/docs").status_code == 200


def test_bad_requests_get_clear_json_errors_and_the_server_keeps_serving(client, content_image):
    assert "exactly one content image" in error_of(
        client.post("/api/jobs", data={"style_sample": "starry_night.jpg"}), 400
    )
    assert "at least one style" in error_of(client.post("/api/jobs", data={"content_sample": "tubingen.jpg"}), 400)
    both = client.post("/api/jobs", data=SAMPLES, files={"content": ("a.png", png(content_image), "image/png")})
    assert "exactly one content image" in error_of(both, 400)
    assert "no bundled sample called '../../etc/passwd'" in error_of(
        client.post("/api/jobs", data={**SAMPLES, "content_sample": "../../etc/passwd"}), 404
    )
    assert "size" in error_of(client.post("/api/jobs", data={**SAMPLES, "size": "big"}), 400)
    assert "preserve_color" in error_of(client.post("/api/jobs", data={**SAMPLES, "preserve_color": "sepia"}), 400)
    # Values outside the schema's limits are malformed requests (400), worded as the options word them:
    # naming the field, never a command-line flag.
    assert "size must be a whole number > 0, got -4" in error_of(
        client.post("/api/jobs", data={**SAMPLES, "size": "-4"}), 400
    )
    assert "style_weight must be a number >= 0" in error_of(
        client.post("/api/jobs", data={**SAMPLES, "style_weight": "-1"}), 400
    )
    assert "init must be one of content, noise, style" in error_of(  # never a path on the server
        client.post("/api/jobs", data={**SAMPLES, "init": "/etc/hosts"}), 400
    )
    assert "over this server's limit" in error_of(client.post("/api/jobs", data={**SAMPLES, "size": "99999"}), 422)
    assert "coarse_iterations 5000 is over this server's limit" in error_of(
        client.post("/api/jobs", data={**SAMPLES, "coarse_iterations": "5000"}), 422
    )
    assert "style_scale 40 makes the style images 2560 px" in error_of(
        client.post("/api/jobs", data={**SAMPLES, "style_scale": "40"}), 422
    )
    assert "style_blend has 2 weights for 1" in error_of(
        client.post("/api/jobs", data={**SAMPLES, "style_blend": "1,2"}), 422
    )
    assert "style_blend expected numbers separated by commas" in error_of(
        client.post("/api/jobs", data={**SAMPLES, "style_blend": "a lot"}), 422
    )
    assert "style_layers" in error_of(client.post("/api/jobs", data={**SAMPLES, "style_layers": "relu9_9"}), 422)
    for message in (
        error_of(client.post("/api/jobs", data={**SAMPLES, name: value}), status)
        for name, value, status in (
            ("size", "-4", 400),
            ("coarse_iterations", "5000", 422),
            ("style_blend", "a lot", 422),
            ("tv_weight", "-1", 400),
        )
    ):
        assert "--" not in message, message
    assert "job_id" in error_of(client.get("/api/jobs/not-an-id"), 400)
    assert "no job" in error_of(client.get("/api/jobs/" + "0" * 32), 404)
    assert "no job" in error_of(client.post("/api/jobs/" + "0" * 32 + "/cancel"), 404)
    assert error_of(client.get("/api/nothing-here"), 404)
    assert client.get("/samples/..%2f..%2fcli.py").status_code == 404
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/api/info").status_code == 200  # still serving


def test_uploads_are_checked_by_content_not_by_name(client, content_image):
    def submit(data: bytes, name: str = "photo.png", kind: str = "image/png"):
        return client.post(
            "/api/jobs", data={"style_sample": "starry_night.jpg", "size": "64"}, files={"content": (name, data, kind)}
        )

    assert "not an image" in error_of(submit(b"#!/bin/sh\necho hello\n"), 415)
    assert "not an image" in error_of(
        submit(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.svg", "image/svg+xml"), 415
    )
    assert "the file is empty" in error_of(submit(b""), 400)
    truncated = png(content_image)[:200]
    assert "truncated" in error_of(submit(truncated), 415) or "not an image" in error_of(submit(truncated), 415)
    # A real image under a misleading name and type is fine: the bytes decide.
    jpeg = io.BytesIO()
    content_image.save(jpeg, format="JPEG")
    accepted = submit(jpeg.getvalue(), "notes.txt", "text/plain")
    assert accepted.status_code == 202, accepted.text
    client.post(f"/api/jobs/{accepted.json()['id']}/cancel")
    # The client's file name never reaches the disk: only server-made names are in the job folder.
    folder = client.app.state.manager.get(accepted.json()["id"]).folder
    assert all(p.name in ("result.png",) for p in folder.iterdir())


def test_upload_limits_in_bytes_and_pixels(make_client, content_image):
    client = make_client(max_upload_bytes=5_000, max_pixels=40 * 40)
    big = Image.effect_noise((64, 64), 80).convert("RGB")  # noise does not compress: > 5 kB as PNG
    response = client.post(
        "/api/jobs", data={"style_sample": "starry_night.jpg"}, files={"content": ("big.png", png(big), "image/png")}
    )
    assert "larger than the limit" in error_of(response, 413)
    small_file_many_pixels = Image.new("RGB", (64, 64), "white")  # compresses to a few hundred bytes
    response = client.post(
        "/api/jobs",
        data={"style_sample": "starry_night.jpg"},
        files={"content": ("wide.png", png(small_file_many_pixels), "image/png")},
    )
    assert "over the limit of 1600 px" in error_of(response, 413)
    # The whole request is capped too (before multipart parsing spools it anywhere).
    limit = client.app.state.config.max_request_bytes
    response = client.post(
        "/api/jobs", content=b"x" * (limit + 1), headers={"content-type": "multipart/form-data; boundary=zzz"}
    )
    assert "request too large" in error_of(response, 413)

    def chunked():  # no Content-Length: the limit is counted on the stream as it arrives
        yield b'--zzz\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n\r\n'
        for _ in range(limit // 50_000 + 2):
            yield b"x" * 50_000

    response = client.post(
        "/api/jobs", content=chunked(), headers={"content-type": "multipart/form-data; boundary=zzz"}
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "request too large" in error_of(response, 413)
    assert client.get("/api/info").status_code == 200


def test_decompression_bomb_is_refused_before_decoding(client):
    # A 20000 x 20000 PNG header (400 Mpx) in a few hundred bytes.
    bomb = png(Image.new("1", (20000, 20000)))
    response = client.post(
        "/api/jobs", data={"style_sample": "starry_night.jpg"}, files={"content": ("bomb.png", bomb, "image/png")}
    )
    assert "over the limit" in error_of(response, 413)


def test_token_is_required_when_configured(make_client):
    client = make_client(token="correct-horse-battery")
    assert "access token is required" in error_of(client.get("/api/info"), 401)
    assert client.get("/api/info").headers["www-authenticate"] == "Bearer"
    assert "wrong access token" in error_of(
        client.get("/api/info", headers={"Authorization": "Bearer nope-nope-nope"}), 401
    )
    assert error_of(client.post("/api/jobs", data=SAMPLES), 401)
    assert error_of(client.get("/api/faces/people"), 401)
    good = {"Authorization": "Bearer correct-horse-battery"}
    assert client.get("/api/info", headers=good).status_code == 200
    assert client.get("/api/jobs", headers=good).json() == {"jobs": []}
    assert client.get("/").status_code == 200  # the page itself is public: it asks for the token


def test_cross_site_writes_are_refused(client):
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert "cross-site" in error_of(client.post("/api/jobs", data=SAMPLES, headers=evil), 403)
    assert "cross-site" in error_of(
        client.delete("/api/faces/people/Anyone", headers={"Origin": "http://evil.example"}), 403
    )
    same = client.post("/api/jobs", data=SAMPLES, headers={"Origin": "http://testserver"})
    assert same.status_code == 202
    client.post(f"/api/jobs/{same.json()['id']}/cancel")


def test_dns_rebinding_guard_on_loopback(make_client):
    client = make_client(allowed_hosts=("127.0.0.1", "localhost"))
    assert client.get("/api/info", headers={"Host": "attacker.example"}).status_code == 400
    assert client.get("/api/info", headers={"Host": "127.0.0.1:8000"}).status_code == 200


def test_binding_elsewhere_than_loopback_needs_a_token(capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "long-enough-token")
    with pytest.raises(NeuralensError, match="access token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(NeuralensError, match="at least 8"):
        check_bind("0.0.0.0", "short")
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "set an access token" in capsys.readouterr().err
    assert main(["serve", "--queue", "-1"]) == 2
    assert "--queue must be at least 0" in capsys.readouterr().err
