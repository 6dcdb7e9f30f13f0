"""The Classify tab in headless Chromium against a real `neuralens serve` (with a token): add two classes, upload
photos into each, train and watch the curve and the result table, try a photo, then the webcam (Chromium's fake
camera). Screenshot: test-artifacts/web-classify.png."""

from __future__ import annotations

import re

from test_web_browser import ARTIFACTS, assert_no_errors, server  # noqa: F401 -- the module's server fixture
from test_web_classify import SAMPLES, images, small_jpeg  # noqa: F401 -- images: the photos fixture
from test_web_webcam_browser import camera_browser, open_page  # noqa: F401 -- the fake-camera browser fixture


def test_classes_training_and_trying_in_the_browser(camera_browser, server, images, tmp_path):  # noqa: F811
    files = {}
    for kind, photos in images.items():
        files[kind] = []
        for number, data in enumerate(photos):
            target = tmp_path / f"{kind}-{number}.jpg"
            target.write_bytes(data)
            files[kind].append(str(target))
    (tmp_path / "starry.jpg").write_bytes(small_jpeg(SAMPLES / "starry_night.jpg", 160))

    page = open_page(camera_browser, server)
    page.click(".tab[data-tab='classify']")
    assert page.is_visible("#tab-classify") and page.is_visible("#cls-empty")
    assert page.input_value("#cls-opt-backbone") == "efficientnet-lite0"  # the form built from the options
    for name in ("photo", "painting"):
        page.fill("#cls-new-name", name)
        page.click("#cls-add")
        page.wait_for_selector(f"#cls-classes .cls-class:has-text('{name}')")
    for index, name in enumerate(("photo", "painting")):
        page.locator("#cls-classes .cls-class input[type=file]").nth(index).set_input_files(files[name])
        page.wait_for_selector(f"#cls-classes .cls-class:nth-child({index + 1})[data-count='5']")
    page.wait_for_function("document.querySelectorAll('#cls-classes img[src^=\"blob:\"]').length === 10")
    assert "5 photos" in page.inner_text("#cls-classes .cls-class:nth-child(1) .cls-count")

    page.fill("#cls-opt-epochs", "30")
    page.click("#cls-train")
    page.wait_for_selector("#cls-result:not([hidden]) #cls-confusion", timeout=180_000)
    assert page.eval_on_selector("#cls-curve", "c => Number(c.dataset.points)") == 30
    assert page.inner_text("#cls-stat-status") == "done"
    assert re.match(r"Validation accuracy \d+ %", page.inner_text("#cls-accuracy"))
    assert page.locator("#cls-per-class tr").count() == 3  # a header and two classes
    assert page.locator("#cls-confusion tr").count() == 3

    page.set_input_files("#cls-try-file", str(tmp_path / "starry.jpg"))
    page.wait_for_selector("#cls-label[data-label]")
    assert page.get_attribute("#cls-label", "data-label") == "painting"
    assert page.locator("#cls-bars li").count() == 2
    page.locator("#tab-classify").screenshot(path=str(ARTIFACTS / "web-classify.png"))

    page.click("#cls-cam-start")
    page.wait_for_function("Number(document.getElementById('cls-label').dataset.frames || 0) >= 3", timeout=60_000)
    assert re.fullmatch(r"\d+\.\d|…", page.inner_text("#cls-cam-fps"))
    page.click(".tab[data-tab='style']")  # leaving the tab turns the camera off
    assert page.is_disabled("#cls-cam-stop")
    assert_no_errors(page)
