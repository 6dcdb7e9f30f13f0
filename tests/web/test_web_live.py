"""Live previews (POST /api/fast, POST /api/paintings, GET /api/live) and the webcam WebSocket (/ws/webcam):
a frame answered by a stylized frame of the same size, frames dropped (never queued) when the server is busy,
the token and the Origin checked as on the API, a non-image frame answered by an error message.

The built-in models are the width-8 stand-in of ``tiny_models``; the arbitrary-style engine is a stand-in
(``FakeEngine``) handed to the app, so these tests never load VGG19 or depend on the shipped decoder."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat
from starlette.websockets import WebSocketDisconnect
from web_helpers import png

from neuralens.web import create_app
from neuralens.web.live import Engine
from neuralens.web.models_api import ModelCache

TOKEN = "live-test-token"


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def frame(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    """A camera-like frame: a gradient with a block that moves with ``seed``."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image.paste((200, 40, 40), (10 + seed * 7 % 200, 60, 70 + seed * 7 % 200, 120))
    return jpeg(image)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


class FakeEngine:
    """Stands in for ``neuralens.fast.load_arbitrary()``: the style code is the painting's mean colour and
    stylizing blends the photo with it (enough to see which painting was used, and cheap)."""

    def __init__(self):
        self.encoded = 0

    def encode_style(self, image):
        self.encoded += 1
        return tuple(round(v) for v in ImageStat.Stat(image.convert("RGB")).mean)

    def stylize(self, content, code, strength=1.0, size=None, preserve_color=None):
        image = content.convert("RGB")
        if size is not None:
            scale = size / max(image.size)
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        return Image.blend(image, Image.new("RGB", image.size, code), 0.8 * strength)


class SlowModel:
    """A built-in model that takes ``seconds`` per frame (and inverts it): slower than a burst of frames."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def stylize(self, image, strength=1.0, preserve_color=None, size=None):
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1
        return Image.eval(image, lambda v: 255 - v)


@pytest.fixture()
def live_client(make_client, tiny_models):
    """A client whose app has the 'tiny' built-in model and the stand-in painting engine."""
    client = make_client()
    client.engine = FakeEngine()
    client.app.state.live.engine = Engine("cpu", loader=lambda device: client.engine)
    return client


def receive_answer(ws) -> tuple:
    """The next answer to a frame: ('frame', meta, image bytes) or ('error', message, None)."""
    while True:
        message = ws.receive_json()
        if message["type"] == "frame":
            return "frame", message, ws.receive_bytes()
        if message["type"] == "error" and "frame" in message:
            return "error", message, None


# ---- the webcam stream ------------------------------------------------------------------------------------
def test_a_frame_is_answered_by_a_stylized_frame_of_the_same_size(live_client):
    with live_client.websocket_connect("/ws/webcam?model=tiny&strength=1") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["settings"]["model"] == "tiny", ready
        sent = frame()
        for number in (1, 2):
            ws.send_bytes(sent)
            kind, meta, data = receive_answer(ws)
            assert kind == "frame" and meta["frame"] == number, meta
            image = decoded(data)
            assert image.format == "JPEG" and image.size == (320, 240)
        assert meta["received"] == 2 and meta["answered"] == 2 and meta["dropped"] == 0
        assert set(meta["seconds"]) >= {"wait", "decode", "model", "encode"}
        assert meta["fps"] is not None and meta["fps"] > 0
        # Stylized, not echoed: the picture differs clearly from the frame that was sent.
        difference = ImageStat.Stat(ImageChops.difference(image.convert("RGB"), decoded(sent).convert("RGB")))
        assert max(difference.mean) > 10, difference.mean
        # Other sizes come back at their own size too.
        ws.send_bytes(png(Image.new("RGB", (64, 48), "olive")))
        kind, meta, data = receive_answer(ws)
        assert kind == "frame" and decoded(data).size == (64, 48)


def test_frames_are_dropped_not_queued_when_the_server_is_busy(live_client):
    """A burst sent much faster than the model answers: the server keeps at most one frame waiting (the
    newest), answers fewer than were sent, and reports how many it dropped."""
    slow = SlowModel(0.15)
    live_client.app.state.models = ModelCache("cpu", loader=lambda path, device: slow)
    burst = 30
    with live_client.websocket_connect("/ws/webcam?model=tiny") as ws:
        assert ws.receive_json()["type"] == "ready"
        for number in range(burst):
            ws.send_bytes(frame(seed=number))
        answers = []
        while not answers or answers[-1]["frame"] < burst:  # the last frame is always answered
            kind, meta, data = receive_answer(ws)
            assert kind == "frame" and decoded(data).size == (320, 240)
            answers.append(meta)
    last = answers[-1]
    assert len(answers) < burst and slow.calls == len(answers)
    assert last["received"] == burst and last["answered"] == len(answers)
    assert last["dropped"] == burst - len(answers) > 0
    assert last["held_peak"] <= 2  # memory bounded: one frame being painted, at most one waiting
    assert [a["frame"] for a in answers] == sorted(a["frame"] for a in answers)  # newest wins, in order
    assert slow.most_at_once == 1


def test_one_model_run_at_a_time_across_connections(live_client):
    slow = SlowModel(0.05)
    live_client.app.state.models = ModelCache("cpu", loader=lambda path, device: slow)
    with (
        live_client.websocket_connect("/ws/webcam?model=tiny") as a,
        live_client.websocket_connect("/ws/webcam?model=tiny") as b,
    ):
        for ws in (a, b):
            assert ws.receive_json()["type"] == "ready"
        for _ in range(3):
            a.send_bytes(frame())
            b.send_bytes(frame())
            assert receive_answer(a)[0] == "frame" and receive_answer(b)[0] == "frame"
    assert slow.most_at_once == 1 and slow.calls == 6


def test_a_non_image_frame_gets_an_error_message_and_the_stream_goes_on(live_client):
    with live_client.websocket_connect("/ws/webcam?model=tiny") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(b"this is not a picture")
        kind, message, _ = receive_answer(ws)
        assert kind == "error" and message["frame"] == 1
        assert "not an image" in message["error"] and "JPEG" in message["error"], message
        ws.send_bytes(png(Image.new("RGB", (2000, 10), "red")))  # wider than the server's max_size
        kind, message, _ = receive_answer(ws)
        assert kind == "error" and "over this server's limit" in message["error"], message
        ws.send_bytes(frame())
        kind, meta, _ = receive_answer(ws)
        assert kind == "frame" and meta["frame"] == 3 and meta["errors"] == 2


def test_settings_messages_change_the_style_or_are_refused(live_client):
    with live_client.websocket_connect("/ws/webcam") as ws:
        assert ws.receive_json()["settings"]["model"] is None
        ws.send_bytes(frame())  # no style yet
        kind, message, _ = receive_answer(ws)
        assert kind == "error" and "choose a style first" in message["error"]
        ws.send_text('{"model": "no-such-model"}')
        error = ws.receive_json()
        assert error["type"] == "error" and "no built-in style model called 'no-such-model'" in error["error"]
        ws.send_text('{"strength": 2}')
        assert "strength must be a number >= 0 and <= 1, got 2" in ws.receive_json()["error"]
        ws.send_text('{"colour": "red"}')
        assert "unknown setting 'colour'" in ws.receive_json()["error"]
        ws.send_text('{"model": 5}')
        assert "model must be text, got 5" in ws.receive_json()["error"]
        ws.send_text('{"preserve_color": ["x"]}')
        assert "preserve_color must be text" in ws.receive_json()["error"]
        ws.send_text("not json")
        assert "JSON object" in ws.receive_json()["error"]
        ws.send_text('{"model": "tiny", "strength": "0.25", "preserve_color": "luminance"}')
        settings = ws.receive_json()
        assert settings["type"] == "settings", settings
        assert settings["settings"] == ws_settings(model="tiny", strength=0.25, preserve_color="luminance")
        ws.send_bytes(frame())
        assert receive_answer(ws)[0] == "frame"


def test_the_token_is_required_when_the_server_has_one(make_client, tiny_models):
    client = make_client(token=TOKEN)
    # Without it: an error message saying what to send, then a close with code 4401.
    with client.websocket_connect("/ws/webcam?model=tiny") as ws:
        ws.send_text('{"strength": 1}')
        error = ws.receive_json()
        assert error["type"] == "error" and "access token is required" in error["error"], error
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401
    with client.websocket_connect("/ws/webcam?model=tiny") as ws:
        ws.send_text('{"token": "not-the-token"}')
        assert ws.receive_json()["error"] == "wrong access token"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4401
    with client.websocket_connect("/ws/webcam?model=tiny") as ws:
        ws.send_bytes(frame())  # a frame instead of the token
        assert "access token is required" in ws.receive_json()["error"]
    # With it: in the first message (what the page does), in the query, or as a bearer header.
    with client.websocket_connect("/ws/webcam") as ws:
        ws.send_text(f'{{"token": "{TOKEN}", "model": "tiny"}}')
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["settings"]["model"] == "tiny"
        ws.send_bytes(frame())
        assert receive_answer(ws)[0] == "frame"
    with client.websocket_connect(f"/ws/webcam?model=tiny&token={TOKEN}") as ws:
        assert ws.receive_json()["type"] == "ready"
    with client.websocket_connect("/ws/webcam?model=tiny", headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        assert ws.receive_json()["type"] == "ready"


def test_a_page_of_another_site_is_refused(live_client):
    with live_client.websocket_connect("/ws/webcam?model=tiny", headers={"Origin": "http://evil.example"}) as ws:
        error = ws.receive_json()
        assert error["type"] == "error" and "cross-site" in error["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4403
    with live_client.websocket_connect("/ws/webcam?model=tiny", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "ready"  # the page served by this server


def test_a_foreign_host_header_is_refused_on_a_loopback_server(make_client, tiny_models):
    client = make_client(allowed_hosts=("127.0.0.1", "localhost"))
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws/webcam?model=tiny", headers={"Host": "evil.example"}) as ws:
            ws.receive_json()
    with client.websocket_connect("/ws/webcam?model=tiny", headers={"Host": "127.0.0.1:8000"}) as ws:
        assert ws.receive_json()["type"] == "ready"


def test_the_webcam_with_any_painting(live_client):
    painting = png(Image.new("RGB", (60, 40), (20, 40, 200)))
    answer = live_client.post("/api/paintings", files={"painting": ("blue.png", painting, "image/png")})
    assert answer.status_code == 200, answer.text
    painting_id = answer.json()["id"]
    assert answer.json()["cached"] is False and len(painting_id) == 32
    again = live_client.post("/api/paintings", files={"painting": ("same.png", painting, "image/png")}).json()
    assert again == {**again, "id": painting_id, "cached": True}
    assert live_client.engine.encoded == 1  # the style code is computed once per painting
    with live_client.websocket_connect(f"/ws/webcam?painting={painting_id}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(frame())
        kind, meta, data = receive_answer(ws)
        assert kind == "frame"
        red, green, blue = ImageStat.Stat(decoded(data)).mean
        assert blue > red + 40  # painted towards the blue painting
        ws.send_text('{"painting_sample": "the_scream.jpg"}')
        assert ws.receive_json()["settings"] == ws_settings(painting_sample="the_scream.jpg")
        ws.send_bytes(frame())
        assert receive_answer(ws)[0] == "frame"
        ws.send_text('{"painting": "0123456789abcdef0123456789abcdef"}')
        assert "no painting" in ws.receive_json()["error"]
        ws.send_text('{"painting": "../../etc/passwd"}')
        assert "must be a painting id" in ws.receive_json()["error"]


def ws_settings(**changes) -> dict:
    base = {"model": None, "painting": None, "painting_sample": None, "strength": 1.0}
    return {**base, "preserve_color": None, "quality": 80, **changes}


# ---- the live preview endpoint ------------------------------------------------------------------------------
def test_fast_preview_with_a_built_in_model(live_client, content_image):
    answer = live_client.post("/api/fast", data={"content_sample": "tubingen.jpg", "model": "tiny"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/jpeg" and float(answer.headers["x-seconds"]) >= 0
    assert answer.headers["x-style"] == "model:tiny"
    assert max(decoded(answer.content).size) == 384  # the preview size by default
    upload = {"content": ("photo.png", png(content_image), "image/png")}
    answer = live_client.post(
        "/api/fast", data={"model": "tiny", "size": "32", "strength": "0.5", "format": "png"}, files=upload
    )
    assert answer.status_code == 200, answer.text
    image = decoded(answer.content)
    assert image.format == "PNG" and max(image.size) == 32


def test_fast_preview_with_any_painting_caches_the_style_code(live_client, content_image):
    painting = ("painting.png", png(Image.new("RGB", (50, 50), (230, 200, 20))), "image/png")
    photo = ("photo.png", png(content_image), "image/png")
    for strength in ("1", "0.5", "0"):
        answer = live_client.post(
            "/api/fast", data={"strength": strength, "size": "48"}, files={"content": photo, "painting": painting}
        )
        assert answer.status_code == 200, answer.text
    assert live_client.engine.encoded == 1  # three previews, one style code
    assert len(live_client.app.state.live.contents) == 1  # and the photo decoded once
    painting_id = answer.headers["x-style"].split(":", 1)[1]
    by_id = live_client.post("/api/fast", data={"painting_id": painting_id, "size": "48"}, files={"content": photo})
    assert by_id.status_code == 200 and by_id.headers["x-style"] == f"painting:{painting_id}"
    sample = live_client.post(
        "/api/fast", data={"content_sample": "chelsea.jpg", "painting_sample": "starry_night.jpg"}
    )
    assert sample.status_code == 200 and sample.headers["x-style"] == "painting:sample:starry_night.jpg"
    assert live_client.engine.encoded == 2


@pytest.mark.parametrize(
    "data, status, words",
    [
        ({"model": "tiny"}, 400, "exactly one content image"),
        ({"content_sample": "tubingen.jpg"}, 400, "exactly one style"),
        ({"content_sample": "tubingen.jpg", "model": "tiny", "painting_sample": "the_scream.jpg"}, 400, "got model"),
        ({"content_sample": "tubingen.jpg", "model": "nope"}, 404, "no built-in style model called 'nope'"),
        ({"content_sample": "nope.jpg", "model": "tiny"}, 404, "content: no bundled sample"),
        ({"content_sample": "tubingen.jpg", "painting_id": "f" * 32}, 404, "upload it again"),
        ({"content_sample": "tubingen.jpg", "painting_id": "../x"}, 400, "painting_id"),
        ({"content_sample": "tubingen.jpg", "model": "tiny", "size": "5000"}, 400, "size"),
        ({"content_sample": "tubingen.jpg", "model": "tiny", "strength": "2"}, 400, "strength"),
    ],
)
def test_fast_preview_refusals(live_client, data, status, words):
    answer = live_client.post("/api/fast", data=data)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"], answer.json()


def test_fast_preview_refuses_a_non_image(live_client):
    answer = live_client.post(
        "/api/fast", data={"model": "tiny"}, files={"content": ("photo.png", b"not an image", "image/png")}
    )
    assert answer.status_code == 415 and "content (photo.png): not an image" in answer.json()["error"]


def test_without_the_engine_paintings_are_refused_in_one_line(make_client, tiny_models):
    client = make_client()

    def missing(device):
        raise __import__("neuralens").NeuralensError("the shipped AdaIN decoder is missing; reinstall neuralens")

    client.app.state.live.engine = Engine("cpu", loader=missing)
    answer = client.post("/api/fast", data={"content_sample": "tubingen.jpg", "painting_sample": "the_scream.jpg"})
    assert answer.status_code == 422 and "decoder is missing" in answer.json()["error"]
    painting = ("p.png", png(Image.new("RGB", (20, 20))), "image/png")
    assert client.post("/api/paintings", files={"painting": painting}).status_code == 422


def test_live_info(live_client):
    data = live_client.get("/api/live").json()
    assert data["arbitrary"] is True and data["models"] == ["tiny"] and data["preview_size"] == 384
    assert data["webcam"] == {"url": "/ws/webcam", "width": 320, "height": 240}


def test_a_preview_whose_client_went_away_is_skipped(tiny_models, tmp_path):
    """The page aborts a preview that a newer one superseded; if it has not started yet, the server does not
    run it. Driven at the ASGI level: the client disconnects right after sending its form."""
    app = create_app(device="cpu", gallery=str(tmp_path / "g.sqlite3"))
    request = httpx.Request(
        "POST", "http://testserver/api/fast", data={"content_sample": "tubingen.jpg", "model": "tiny"}
    )
    body = request.read()
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/fast",
        "raw_path": b"/api/fast",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 409
    assert app.state.live.runs == 0


@pytest.fixture(scope="module")
def real_engine():
    """The real arbitrary-style model (VGG19 encoder, a decoder with random weights: the contract, not the
    looks, is under test here); skipped where neuralens has no arbitrary-style engine."""
    arbitrary = pytest.importorskip("neuralens.fast.arbitrary")
    import torch

    from neuralens.fast.adain import Decoder

    torch.manual_seed(0)
    return arbitrary.ArbitraryModel(Decoder(), device="cpu", precision="fp32")


def test_the_real_engine_behind_the_preview_and_the_webcam(make_client, tiny_models, real_engine, content_image):
    client = make_client()
    client.app.state.live.engine = Engine("cpu", loader=lambda device: real_engine)
    painting = ("p.png", png(Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 50).convert("RGB")), "image/png")
    answer = client.post("/api/paintings", files={"painting": painting})
    assert answer.status_code == 200, answer.text
    painting_id = answer.json()["id"]
    upload = {"content": ("photo.png", png(content_image), "image/png")}
    preview = client.post("/api/fast", data={"painting_id": painting_id, "size": "40", "strength": "0.5"}, files=upload)
    assert preview.status_code == 200, preview.text
    assert max(decoded(preview.content).size) == 40
    with client.websocket_connect("/ws/webcam?painting_sample=the_scream.jpg&preserve_color=luminance") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_bytes(frame(64, 48))
        kind, meta, data = receive_answer(ws)
        assert kind == "frame" and decoded(data).size == (64, 48), meta
