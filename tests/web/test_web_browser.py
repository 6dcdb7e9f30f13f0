"""The page in a real headless Chromium (Debian's package, driven by Playwright) against a real
`neuralens serve` process: stylize with live previews and download; real-time style with a built-in model; enrol and identify a face;
the token.

Screenshots go to test-artifacts/ (web-style.png, web-samples.png, web-fast.png, web-faces.png, web-token.png,
web-docs.png)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image
from web_helpers import DATA, png, start_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "browser-test-token"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    for candidate in (
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("Chromium not found (install Debian's 'chromium' package; scripts/test-services.sh does it as root)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    executable = chromium_path()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """One `neuralens serve` process with a token for the whole module (starting one costs seconds)."""
    process, url = start_server(tmp_path_factory.mktemp("serve"), env={"NEURALENS_TOKEN": TOKEN})
    yield url
    process.terminate()
    process.wait(timeout=30)


def new_page(browser, url: str):
    """A page that records errors and every URL it loads (to prove nothing comes from elsewhere)."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.errors, page.requested = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda request: page.requested.append(request.url))
    page.on("response", lambda r: page.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(url)
    return page


def signed_in_page(browser, url: str):
    """A fresh browser context on the page, with the token typed into the dialog the page shows."""
    page = new_page(browser, url)
    page.wait_for_selector("#token-dialog[open]")
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-ready='1']")
    return page


def assert_no_errors(page) -> None:
    """Nothing failed, apart from the first API call made before the token was given (401)."""
    unexpected = [e for e in page.errors if "401" not in e]
    assert unexpected == [], page.errors
    assert len([e for e in page.errors if e.startswith("401 ")]) <= 1, page.errors


def set_range(page, selector: str, value: int) -> None:
    page.eval_on_selector(selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(value))


def assert_only_own_requests(page, url: str) -> None:
    foreign = [u for u in page.requested if not u.startswith((url, "blob:", "data:"))]
    assert foreign == [], foreign


def test_stylize_in_the_browser(browser, server, tmp_path, content_image, style_image):
    (tmp_path / "photo.png").write_bytes(png(content_image))
    page = signed_in_page(browser, server)
    assert page.locator("#content-samples .sample").count() == 2

    page.set_input_files("#content-file", str(tmp_path / "photo.png"))
    # The style image is dropped onto its zone, as a user would drag it from their files.
    drop = page.evaluate_handle(
        """(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], 'painting.png', {type: 'image/png'}));
        return data;
    }""",
        base64.b64encode(png(style_image)).decode(),
    )
    page.dispatch_event("#style-drop", "drop", {"dataTransfer": drop})
    assert page.locator("#style-chosen li").count() == 1
    set_range(page, "#opt-size", 64)
    # Enough evaluations (a preview every 2) that a fast machine still shows several previews before the end.
    set_range(page, "#opt-iterations", 24)
    assert page.inner_text("#opt-size-value") == "64 px" and page.inner_text("#opt-iterations-value") == "24"
    # Record every image the result element shows, to see the preview change while it optimises.
    page.evaluate("""() => {
        window.shown = [];
        const img = document.getElementById('result');
        new MutationObserver(() => window.shown.push([img.dataset.iteration, img.dataset.final]))
            .observe(img, {attributes: true, attributeFilter: ['src']});
    }""")
    page.click("#stylize")
    page.wait_for_selector("#result[data-final='1']", timeout=120_000)
    shown = page.evaluate("window.shown")
    previews = {iteration for iteration, final in shown if final == "0"}
    assert len(previews) >= 2, shown  # the preview changed at least once before the end
    assert shown[-1][1] == "1"  # then the final image
    assert page.inner_text("#stat-status") == "done"
    assert page.inner_text("#stat-iteration").startswith("24 / 24")
    assert "Done in" in page.inner_text("#style-message")

    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert re.fullmatch(r"neuralens-[0-9a-f]{8}\.png", download.suggested_filename)
    saved = tmp_path / "downloaded.png"
    download.save_as(saved)
    assert Image.open(saved).size == (64, 48)

    page.wait_for_selector("#gallery li")
    assert page.locator("#gallery li").count() == 1
    # A bundled sample as a second style, then the page's screenshot.
    page.click("#style-samples .sample[data-sample='starry_night.jpg']")
    assert page.locator("#style-chosen li").count() == 2
    page.screenshot(path=str(ARTIFACTS / "web-style.png"), full_page=True)
    assert_no_errors(page)
    assert_only_own_requests(page, server)


def test_sample_pickers_show_photos_and_paintings(browser, server):
    """At 1280x900 the content picker shows the two photos and the style picker the two paintings, each
    thumbnail loaded and on screen."""
    page = signed_in_page(browser, server)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_load_state("networkidle")
    pickers = {
        "#content-samples": ["chelsea.jpg", "tubingen.jpg"],
        "#style-samples": ["starry_night.jpg", "the_scream.jpg"],
    }
    for picker, names in pickers.items():
        thumbnails = page.locator(f"{picker} .sample")
        assert thumbnails.count() == len(names)
        assert sorted(thumbnails.evaluate_all("els => els.map(e => e.dataset.sample)")) == names
        for index in range(len(names)):
            thumbnail = thumbnails.nth(index)
            assert thumbnail.is_visible()
            box = thumbnail.bounding_box()
            assert box["width"] >= 40 and box["height"] >= 40 and box["y"] + box["height"] <= 900, box
            assert thumbnail.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    # No two thumbnails of a picker are drawn on top of each other.
    for picker in pickers:
        boxes = [page.locator(f"{picker} .sample").nth(i).bounding_box() for i in range(2)]
        assert abs(boxes[0]["x"] - boxes[1]["x"]) >= boxes[0]["width"], boxes
    page.screenshot(path=str(ARTIFACTS / "web-samples.png"))
    assert_no_errors(page)


def test_the_settings_come_from_the_server_and_are_sent(browser, server):
    """The page builds every option of /api/info (four main controls, the rest under "More settings") with
    the server's defaults, and sends what the user changed."""
    page = signed_in_page(browser, server)
    options = page.evaluate("info.options")
    assert len(options) > 10
    assert page.locator("#options-main .control").count() == 4
    assert page.locator("#options-more .control").count() == len(options) - 4
    assert page.input_value("#opt-size") == "512" and page.inner_text("#opt-iterations-value") == "auto"
    page.click("#options-advanced summary")
    for option in options:
        if option["name"] in ("style_weight", "size", "iterations", "preserve_color"):
            continue
        control = page.locator(f"#opt-{option['name'].replace('_', '-')}")
        assert control.is_visible(), option["name"]
        if option["kind"] in ("int", "float") and option["default"] is not None:
            assert float(control.input_value()) == option["default"], option["name"]
    page.select_option("#opt-pooling", "avg")
    page.fill("#opt-seed", "7")
    page.click("#content-samples .sample[data-sample='tubingen.jpg']")
    page.click("#style-samples .sample[data-sample='the_scream.jpg']")
    set_range(page, "#opt-size", 64)
    set_range(page, "#opt-iterations", 2)
    with page.expect_request(lambda r: r.url.endswith("/api/jobs") and r.method == "POST") as request_info:
        page.click("#stylize")
    sent = request_info.value.post_data
    for name, value in (("pooling", "avg"), ("seed", "7"), ("size", "64"), ("iterations", "2")):
        assert f'name="{name}"\r\n\r\n{value}\r\n' in sent, (name, sent)
    assert 'name="learning_rate"' not in sent  # unchanged: left to the server's default
    page.wait_for_selector("#result[data-final='1']", timeout=120_000)
    assert page.inner_text("#stat-status") == "done"
    assert_no_errors(page)


@pytest.fixture()
def fast_server(tiny_models, tmp_path) -> Iterator[str]:
    """A server in this process (so that the stand-in built-in model of ``tiny_models`` is the one it offers),
    on a free port, without a token."""
    import uvicorn

    from neuralens.web import create_app

    app = create_app(device="cpu", gallery=str(tmp_path / "gallery.sqlite3"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the in-process server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


def test_real_time_style_in_the_browser(browser, fast_server):
    """Click a built-in model: the stylized photo appears at once, with the time it took and a download."""
    page = new_page(browser, fast_server)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_selector("body[data-ready='1']")
    model = page.locator("#fast-models .fast-model[data-model='tiny']")
    assert model.count() == 1 and "Van Gogh, The Starry Night" in model.inner_text()
    assert page.input_value("#fast-size") == "384"
    model.click()  # no photo yet: the page says what to do
    assert "Choose a content photo first" in page.inner_text("#fast-message")
    assert model.get_attribute("aria-pressed") == "true"
    page.click("#content-samples .sample[data-sample='tubingen.jpg']")  # the chosen model follows the photo
    page.wait_for_selector("#fast-result[data-model='tiny'][data-size='384x288']", timeout=30_000)
    assert re.search(r"tiny: \d+\.\d\d s on the server, \d+\.\d\d s in all", page.inner_text("#fast-message"))
    assert page.is_visible("#fast-download")
    assert page.get_attribute("#fast-download", "download") == "neuralens-tiny.png"

    # A lower strength and a smaller size: sent with the next picture.
    set_range(page, "#fast-strength", 0.5)
    set_range(page, "#fast-size", 128)
    assert page.inner_text("#fast-strength-value") == "50 %"
    with page.expect_request(lambda r: r.url.endswith("/api/models/tiny/stylize")) as request_info:
        page.click("#fast-models .fast-model[data-model='tiny']")
    sent = request_info.value.post_data
    assert 'name="strength"\r\n\r\n0.5\r\n' in sent and 'name="size"\r\n\r\n128\r\n' in sent, sent
    page.wait_for_selector("#fast-result[data-size='128x96']", timeout=30_000)
    page.locator("#fast").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "web-fast.png"))
    assert_no_errors(page)
    assert_only_own_requests(page, fast_server)


def test_api_docs_work_offline(browser, server):
    page = new_page(browser, server + "docs")
    page.wait_for_selector(".swagger-ui .info", timeout=30_000)
    page.wait_for_selector(".opblock-summary-path[data-path='/api/jobs']")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(ARTIFACTS / "web-docs.png"))
    assert page.errors == []
    assert_only_own_requests(page, server)


def test_reload_resumes_and_cancel_keeps_the_image(browser, server):
    page = signed_in_page(browser, server)
    page.click("#content-samples .sample[data-sample='chelsea.jpg']")
    page.click("#style-samples .sample[data-sample='the_scream.jpg']")
    set_range(page, "#opt-size", 64)
    set_range(page, "#opt-iterations", 500)
    page.click("#stylize")
    page.wait_for_selector("#result[data-final='0']", timeout=60_000)  # the first preview
    page.screenshot(path=str(ARTIFACTS / "web-style-running.png"), full_page=True)

    page.reload()  # the page finds the job still running and follows it again
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#cancel:not([disabled])")
    assert "already running" in page.inner_text("#style-message")
    page.wait_for_selector("#result[data-final='0']", timeout=60_000)
    assert page.inner_text("#stat-status") == "running"

    page.click("#cancel")
    page.wait_for_selector("#result[data-final='1']", timeout=60_000)
    assert page.inner_text("#stat-status") == "cancelled"
    assert "the image reached so far is kept" in page.inner_text("#style-message")
    assert page.is_visible("#download")
    done, total = page.inner_text("#stat-iteration").split(" at ")[0].split(" / ")
    assert int(done) < int(total)
    assert page.locator("#stylize").is_enabled()
    assert_no_errors(page)


def test_faces_in_the_browser(browser, server):
    page = signed_in_page(browser, server)
    page.click(".tab[data-tab='faces']")
    page.wait_for_selector("#people-empty:not([hidden])")

    page.fill("#enroll-name", "Barack Obama")
    page.set_input_files("#enroll-photo", str(DATA / "obama.jpg"))
    page.click("#enroll")
    page.wait_for_selector("#people li[data-name='Barack Obama']")
    assert "Enrolled Barack Obama" in page.inner_text("#enroll-message")
    assert page.locator("#verify-name option").all_inner_texts() == ["Barack Obama"]

    page.set_input_files("#identify-photo", str(DATA / "two_people.jpg"))
    page.click("#identify")
    page.wait_for_selector(".face-box.known")
    assert page.locator(".face-box.known").all_inner_texts() == ["Barack Obama"]
    assert page.locator(".face-box.unknown").count() == 1
    assert "2 face(s), 1 recognised" in page.inner_text("#identify-message")
    page.screenshot(path=str(ARTIFACTS / "web-faces.png"), full_page=True)

    # Remove takes two clicks (no confirm() dialog).
    remove = page.locator("#people li[data-name='Barack Obama'] button")
    remove.click()
    remove.click()
    page.wait_for_selector("#people li", state="detached")
    assert "Removed Barack Obama" in page.inner_text("#enroll-message")
    assert_no_errors(page)
    assert_only_own_requests(page, server)


def test_the_page_asks_for_the_token_once(browser, server):
    page = new_page(browser, server)
    page.wait_for_selector("#token-dialog[open]")
    page.screenshot(path=str(ARTIFACTS / "web-token.png"))
    page.fill("#token-input", "not-the-token")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#notice:not([hidden])")
    assert "wrong access token" in page.inner_text("#notice")
    page.reload()  # the wrong token is stored: the page says so and asks again
    page.wait_for_selector("#token-dialog[open]")
    assert "wrong access token" in page.inner_text("#token-message")
    page.fill("#token-input", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#content-samples .sample").count() == 2
    page.reload()  # kept in the browser: not asked again
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#token-dialog[open]").count() == 0
