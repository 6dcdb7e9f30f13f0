"""The live parts of the page in headless Chromium: the webcam tab with Chromium's fake camera
(``--use-fake-device-for-media-stream --use-fake-ui-for-media-stream``) sees stylized frames arrive and its
frames/s; "any painting" in the real-time card previews through POST /api/fast and follows the slider.

The server runs in this process (uvicorn on a free port, with a token) so that it offers the stand-in
built-in model of ``tiny_models`` and a stand-in painting engine. Screenshots: test-artifacts/web-webcam.png,
web-fast-painting.png."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Iterator

import pytest
from test_web_browser import ARTIFACTS, CHROMIUM_ARGS, TOKEN, assert_no_errors, chromium_path, set_range
from test_web_live import FakeEngine

from neuralens.web.live import Engine

FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def camera_browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    executable = chromium_path()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS + FAKE_CAMERA, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture()
def live_server(tiny_models, tmp_path) -> Iterator[tuple]:
    """(URL, app) of a server in this process with a token, the 'tiny' model and the stand-in engine."""
    import uvicorn

    from neuralens.web import create_app

    app = create_app(device="cpu", gallery=str(tmp_path / "gallery.sqlite3"), token=TOKEN)
    app.state.engine = FakeEngine()
    app.state.live.engine = Engine("cpu", loader=lambda device: app.state.engine)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the in-process server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/", app
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


def open_page(browser, url: str):
    """The page with the token typed into its dialog; errors and foreign requests recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    page.errors, page.requested = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda request: page.requested.append(request.url))
    page.on("response", lambda r: page.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(url)
    page.wait_for_selector("#token-dialog[open]")
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-ready='1']")
    return page


def test_the_webcam_tab_shows_stylized_frames_and_their_rate(camera_browser, live_server):
    url, app = live_server
    page = open_page(camera_browser, url)
    page.click(".tab[data-tab='webcam']")
    assert page.is_visible("#tab-webcam") and not page.is_visible("#tab-style")
    assert page.input_value("#webcam-style") == "model:tiny"  # the first built-in model
    options = page.eval_on_selector_all("#webcam-style option", "els => els.map(e => e.value)")
    assert "sample:starry_night.jpg" in options and "chosen" in options  # any painting: the engine is there
    page.click("#webcam-start")
    # The fake camera's frames go out over the WebSocket (token in the first message) and come back painted.
    page.wait_for_function("Number(document.getElementById('webcam-result').dataset.frames || 0) >= 6", timeout=60_000)
    size = page.eval_on_selector("#webcam-result", "img => [img.naturalWidth, img.naturalHeight]")
    assert size == [320, 240]
    assert re.fullmatch(r"\d+\.\d", page.inner_text("#webcam-fps")), page.inner_text("#webcam-fps")
    assert float(page.inner_text("#webcam-fps")) > 0
    assert page.inner_text("#webcam-dropped") == "0"  # the page waits for answers: the server drops none
    assert re.fullmatch(r"\d+ ms", page.inner_text("#webcam-model-ms"))
    assert page.inner_text("#webcam-message") == "Live."
    page.screenshot(path=str(ARTIFACTS / "web-webcam.png"))

    # Another style while live: a bundled painting through the (stand-in) arbitrary engine.
    seen = int(page.eval_on_selector("#webcam-result", "img => img.dataset.frames"))
    page.select_option("#webcam-style", "sample:the_scream.jpg")
    page.wait_for_function(
        f"Number(document.getElementById('webcam-result').dataset.frames) >= {seen + 4}", timeout=60_000
    )
    assert app.state.engine.encoded == 1
    page.click("#webcam-stop")
    assert page.inner_text("#webcam-message") == "Stopped."
    assert page.is_enabled("#webcam-start")
    # Leaving the tab turns the camera off too.
    page.click("#webcam-start")
    page.wait_for_function("Number(document.getElementById('webcam-result').dataset.frames) >= 2")
    page.click(".tab[data-tab='style']")
    assert page.is_disabled("#webcam-stop")
    unexpected = [e for e in page.errors if "401" not in e]
    assert unexpected == [], page.errors
    assert all(u.startswith((url, "blob:", "data:", url.replace("http", "ws"))) for u in page.requested), page.requested


def test_any_painting_previews_live(camera_browser, live_server):
    url, app = live_server
    page = open_page(camera_browser, url)
    assert page.is_visible("#fast-painting")
    page.click("#fast-painting")  # nothing chosen yet: the page says what to do
    assert "Choose a content photo first" in page.inner_text("#fast-message")
    page.click("#content-samples .sample[data-sample='tubingen.jpg']")
    assert "Choose a painting first" in page.inner_text("#fast-message")
    with page.expect_request(lambda r: r.url.endswith("/api/fast")) as request_info:
        page.click("#style-samples .sample[data-sample='starry_night.jpg']")
    assert 'name="painting_sample"\r\n\r\nstarry_night.jpg' in request_info.value.post_data
    page.wait_for_selector("#fast-result[data-model='painting'][data-size='384x288']", timeout=30_000)
    assert re.search(r"painting: \d+\.\d\d s on the server", page.inner_text("#fast-message"))
    # Moving the slider is enough: the preview follows at once, with the new strength.
    with page.expect_response(lambda r: r.url.endswith("/api/fast")) as response_info:
        set_range(page, "#fast-strength", 0.3)
    assert 'name="strength"\r\n\r\n0.3\r\n' in response_info.value.request.post_data
    assert response_info.value.status == 200
    page.locator("#fast").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "web-fast-painting.png"))
    assert app.state.engine.encoded == 1  # the painting's style code was computed once
    assert_no_errors(page)
