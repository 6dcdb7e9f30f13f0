"""Video jobs over HTTP (neuralens/web/video_api.py): upload a tiny synthetic clip, follow the job, preview and
download a playable video with its audio; bad uploads and the server's limits refused with one clear line; cancel
keeps the frames painted. The built-in model is the width-8 stand-in of ``tiny_models``."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_web_browser import ARTIFACTS, assert_only_own_requests, browser, fast_server, new_page  # noqa: F401
from web_helpers import FINISHED, png

from neuralens.video.engines import ModelEngine
from neuralens.video.synthetic import pan_clip, write_clip

SAMPLES = Path(__file__).resolve().parents[2] / "neuralens" / "samples"


@pytest.fixture(autouse=True)
def no_flow_cache(monkeypatch):
    monkeypatch.setenv("NEURALENS_FLOW_CACHE", "off")


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    """A 12-frame 64x48 pan over the Tübingen photo, 12 fps, with a second of AAC audio: an mp4 file's bytes."""
    photo = Image.open(SAMPLES / "tubingen.jpg").convert("RGB").resize((128, 96), Image.LANCZOS)
    frames, _ = pan_clip(photo, (64, 48), 12, (3, 1))
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_clip(path, frames, fps=12, audio_hz=440)
    return path.read_bytes()


def upload(clip: bytes, name: str = "clip.mp4"):
    return {"video": (name, clip, "video/mp4")}


def wait(client, job_id: str, until=FINISHED, timeout: float = 120.0, frames: int = 0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/videos/{job_id}").json()
        if job["status"] in until and job["progress"].get("frame", 0) >= frames:
            return job
        if job["status"] in FINISHED and job["status"] not in until:
            raise AssertionError(f"job ended {job['status']}: {job}")
        assert time.monotonic() < deadline, f"job still {job['status']} after {timeout} s: {job}"
        time.sleep(0.02)


def decode(data: bytes):
    """(frames as arrays, audio codec or None, frame rate) of a video file's bytes, read with PyAV."""
    import av

    with av.open(io.BytesIO(data)) as container:
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return frames, audio, rate


def test_a_clip_is_painted_with_progress_preview_and_a_playable_download(client, tiny_models, clip_bytes):
    info = client.get("/api/videos/info").json()
    assert "tiny" in info["models"] and [e["name"] for e in info["engines"]] == ["model", "fast", "optimisation"]
    options = {o["name"]: o for o in info["options"]}
    assert options["size"]["default"] == 640 and options["consistency"]["choices"] == ["flow", "none"]
    assert "resume" not in options and "keep_frames" not in options and "progress" not in options
    assert options["strength"]["maximum"] == 1 and options["preserve_color"]["default"] == "none"

    response = client.post("/api/videos", files=upload(clip_bytes), data={"model": "tiny", "strength": "0.8"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("queued", "running") and job["engine"]["model"] == "tiny"
    assert job["video"]["frames"] == 12 and job["video"]["size"] == [64, 48] and job["video"]["input"]["audio"]
    assert "path" not in job["video"]["input"]  # no server paths in answers
    done = wait(client, job["id"])
    assert done["status"] == "done", done
    progress = done["progress"]
    assert progress["frame"] == progress["total_frames"] == 12 and progress["eta"] == 0
    assert progress["frames_per_second"] > 0 and done["preview_frame"] == 12
    assert done["result"]["frames"] == 12 and done["result"]["audio"] == "copied"

    preview = client.get(done["urls"]["preview"])
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(preview.content)).size == (64, 48)
    result = client.get(done["urls"]["result"])
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    assert f"neuralens-{job['id'][:8]}.mp4" in result.headers["content-disposition"]
    frames, audio, rate = decode(result.content)
    assert len(frames) == 12 and frames[0].shape == (48, 64, 3) and audio == "aac" and rate == 12

    listed = client.get("/api/videos").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert client.get("/api/jobs").json() == {"jobs": []}  # the picture jobs are another list
    assert client.delete(f"/api/videos/{job['id']}").json() == {"deleted": job["id"]}
    assert client.get(f"/api/videos/{job['id']}").status_code == 404


def test_options_reach_the_run(client, tiny_models, clip_bytes):
    response = client.post(
        "/api/videos",
        files=upload(clip_bytes),
        data={"model": "tiny", "size": "32", "end": "0.5", "consistency": "none", "audio": "false", "format": "webm"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["options"]["size"] == 32 and job["options"]["consistency"] == "none" and job["video"]["frames"] == 6
    done = wait(client, job["id"])
    result = client.get(done["urls"]["result"])
    assert result.headers["content-type"] == "video/webm"
    frames, audio, _ = decode(result.content)
    assert len(frames) == 6 and frames[0].shape == (24, 32, 3) and audio is None


@pytest.mark.parametrize(
    "name, data, status, words",
    [
        ("photo.png", png(Image.new("RGB", (64, 48), "red")), 415, "still image, not a video"),
        ("clip.mp4", b"this is not a video at all " * 40, 415, "not a video file"),
        ("clip.mp4", b"", 400, "the file is empty"),
    ],
)
def test_an_upload_that_is_not_a_video_is_refused_with_one_line(client, tiny_models, name, data, status, words):
    response = client.post("/api/videos", files=upload(data, name), data={"model": "tiny"})
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert words in message and name in message and "\n" not in message
    assert "/tmp" not in message and "uploads" not in message  # the server's staging path is never shown
    assert client.get("/api/videos").json() == {"jobs": []}
    assert list((client.app.state.videos.root / "uploads").iterdir()) == []  # nothing left behind


def test_the_servers_limits_are_refused_before_queueing(make_client, tiny_models, clip_bytes):
    from neuralens.web.video_api import VideoLimits

    client = make_client(max_upload_bytes=len(clip_bytes) - 1)
    too_big = client.post("/api/videos", files=upload(clip_bytes), data={"model": "tiny"})
    assert too_big.status_code == 413 and "larger than the limit" in too_big.json()["error"]

    client = make_client(max_size=32)
    client.app.state.video_limits = VideoLimits(max_seconds=0.5, max_frames=4, max_optimisation_frames=2)
    checks = [
        ({"model": "tiny", "size": "48"}, "over this server's limit of 32 px"),
        ({"model": "tiny", "size": "32"}, "1.0 s taken, over this server's limit of 0.5 s"),
        ({"model": "tiny", "size": "32", "end": "0.5"}, "6 frames, over this server's limit of 4 for engine=model"),
        (
            {"engine": "optimisation", "style_sample": "starry_night.jpg", "size": "32", "end": "0.25"},
            "3 frames, over this server's limit of 2 for engine=optimisation",
        ),
        ({"model": "tiny", "size": "32", "start": "5"}, "start 5 s is after the end of video (clip.mp4)"),
    ]
    for data, words in checks:
        response = client.post("/api/videos", files=upload(clip_bytes), data=data)
        assert response.status_code == 422 and words in response.json()["error"], (data, response.text)
    assert client.get("/api/videos").json() == {"jobs": []}


@pytest.mark.parametrize(
    "data, status, words",
    [
        ({}, 400, "engine=model needs 'model'"),
        ({"model": "no-such-model"}, 404, "no built-in style model called 'no-such-model'"),
        ({"model": "tiny", "style_sample": "starry_night.jpg"}, 400, "takes no paintings"),
        ({"engine": "optimisation"}, 400, "needs a painting"),
        ({"engine": "optimisation", "style_sample": "nope.jpg"}, 404, "no bundled sample called 'nope.jpg'"),
        ({"model": "tiny", "consistency": "sometimes"}, 400, "consistency"),
        ({"model": "tiny", "strength": "2"}, 400, "strength"),
        ({"model": "tiny", "frame_iterations": "0"}, 400, "frame_iterations"),
    ],
)
def test_bad_requests_say_what_is_wrong(client, tiny_models, clip_bytes, data, status, words):
    response = client.post("/api/videos", files=upload(clip_bytes), data=data)
    assert response.status_code == status and words in response.json()["error"], response.text


def test_cancel_stops_after_the_frame_and_keeps_a_playable_video(client, tiny_models, clip_bytes, monkeypatch):
    """The stand-in model waits after its second frame until the test has cancelled: no timing involved."""
    cancelled = threading.Event()
    painted = []
    original = ModelEngine.stylize

    def slow(self, rgb):
        if len(painted) == 2:
            assert cancelled.wait(60)
        painted.append(1)
        return original(self, rgb)

    monkeypatch.setattr(ModelEngine, "stylize", slow)
    job = client.post("/api/videos", files=upload(clip_bytes), data={"model": "tiny"}).json()
    running = wait(client, job["id"], until=("running",), frames=2)
    assert running["urls"]["result"] is None and client.get(f"/api/videos/{job['id']}/result").status_code == 409
    assert client.get(running["urls"]["preview"]).status_code == 200  # the latest frame, while it runs
    answer = client.post(f"/api/videos/{job['id']}/cancel")
    assert answer.status_code == 200
    cancelled.set()
    done = wait(client, job["id"])
    assert done["status"] == "cancelled" and done["stopped_early"]
    assert 3 <= done["result"]["frames"] < 12
    frames, audio, _ = decode(client.get(done["urls"]["result"]).content)
    assert len(frames) == done["result"]["frames"] and audio == "aac"


def test_a_waiting_job_is_dropped_by_cancel_and_a_full_queue_refuses(make_client, tiny_models, clip_bytes, monkeypatch):
    release = threading.Event()
    original = ModelEngine.stylize

    def blocked(self, rgb):
        assert release.wait(60)
        return original(self, rgb)

    monkeypatch.setattr(ModelEngine, "stylize", blocked)
    client = make_client(max_queue=1)
    first = client.post("/api/videos", files=upload(clip_bytes), data={"model": "tiny", "end": "0.2"}).json()
    wait(client, first["id"], until=("running",))
    second = client.post("/api/videos", files=upload(clip_bytes), data={"model": "tiny"}).json()
    assert second["status"] == "queued" and second["queue_position"] == 1
    full = client.post("/api/videos", files=upload(clip_bytes), data={"model": "tiny"})
    assert full.status_code == 429 and "the queue is full" in full.json()["error"]
    dropped = client.post(f"/api/videos/{second['id']}/cancel").json()
    assert dropped["status"] == "cancelled" and dropped["urls"]["result"] is None
    release.set()
    assert wait(client, first["id"])["status"] == "done"


def test_the_painted_frames_are_the_librarys(client, tiny_models, clip_bytes, tmp_path):
    """The web layer adds nothing: the job's video is what neuralens.video.stylize writes for the same request."""
    from neuralens import video
    from neuralens.fast import model as fast_model

    job = client.post("/api/videos", files=upload(clip_bytes), data={"model": "tiny", "format": "gif"}).json()
    done = wait(client, job["id"])
    ours = tmp_path / "clip.mp4"
    ours.write_bytes(clip_bytes)
    video.stylize(ours, tmp_path / "direct.gif", model=str(fast_model.BUILTIN / "tiny.pt"), progress=False)
    served = client.get(done["urls"]["result"]).content
    assert served == (tmp_path / "direct.gif").read_bytes()
    frames, _, _ = decode(served)
    assert len(frames) == 12 and np.asarray(frames[0]).dtype == np.uint8


# ---- the page, in a real headless Chromium (skipped without it) ---------------------------------------------------
def test_a_video_painted_from_the_page(browser, fast_server, clip_bytes, tmp_path):  # noqa: F811 -- fixtures
    """The Video tab: choose the clip and the built-in model, paint, watch the frames count up, play, download."""
    import av

    (tmp_path / "clip.mp4").write_bytes(clip_bytes)
    page = new_page(browser, fast_server)
    page.wait_for_selector("body[data-ready='1']")
    page.click(".tab[data-tab='video']")
    assert "60 s and 1500 frames" in page.inner_text("#video-limits")
    assert page.input_value("#video-opt-size") == "640" and page.input_value("#video-opt-consistency") == "flow"
    page.click("#video-start")  # no video yet: the page says what to do
    assert "Choose a video first" in page.inner_text("#video-message")

    page.set_input_files("#video-file", str(tmp_path / "clip.mp4"))
    assert "clip.mp4" in page.inner_text("#video-file-name")
    page.select_option("#video-engine", "model:tiny")
    assert page.is_hidden("#video-painting")
    page.click("#video-start")
    page.wait_for_selector("#video-result[data-job]", timeout=120_000)
    assert page.inner_text("#video-status") == "done" and page.inner_text("#video-frames") == "12 / 12"
    assert "Done: 12 frames" in page.inner_text("#video-message") and page.inner_text("#video-audio") == "kept"
    assert page.get_attribute("#video-preview", "data-frame") is not None  # the latest frame was shown meanwhile
    page.screenshot(path=str(ARTIFACTS / "web-video.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#video-download")
    assert download.value.suggested_filename.endswith(".mp4")
    with av.open(download.value.path()) as container:
        assert container.streams.audio and len(list(container.decode(video=0))) == 12
    assert page.errors == []
    assert_only_own_requests(page, fast_server)


def test_optimisation_reports_its_evaluations_while_a_frame_is_painted(client, clip_bytes, monkeypatch):
    from neuralens.web.video_api import VideoJobs

    seen = []
    touch = VideoJobs._touch

    def spy(self, job):
        seen.append(dict(job.progress))
        touch(self, job)

    monkeypatch.setattr(VideoJobs, "_touch", spy)
    data = {"engine": "optimisation", "style_sample": "starry_night.jpg", "size": "48", "end": "0.17"}
    job = client.post("/api/videos", files=upload(clip_bytes), data={**data, "frame_iterations": "2"}).json()
    assert job["engine"]["engine"] == "optimisation" and job["engine"]["styles"] == ["starry_night.jpg"]
    done = wait(client, job["id"], timeout=300)
    assert done["status"] == "done" and done["result"]["frames"] == 2, done
    during = [p for p in seen if "evaluation" in p]
    assert during and during[-1]["evaluations"] == 2 and during[-1]["frame"] == 1  # frame 2's 2 evaluations


class FakeArbitrary:
    """Stands in for ``neuralens.fast.load_arbitrary()`` in the video engine: a painting's code is its mean colour,
    and a frame is blended half-way towards it (cheap, and the painting used shows)."""

    class Code:
        def __init__(self, image):
            self.name, self.colour = "painting", np.asarray(image.convert("RGB")).reshape(-1, 3).mean(0)

    def codes(self, styles):
        return [self.Code(image) for image in styles]

    def stylize(self, image, codes, strength=1.0, preserve_color=None, style_weights=None):
        rgb = np.asarray(image.convert("RGB"), np.float32)
        return Image.fromarray(np.uint8(np.clip(0.5 * rgb + 0.5 * codes[0].colour, 0, 255)))


def test_any_painting_through_the_arbitrary_style_engine(client, clip_bytes, monkeypatch):
    import neuralens.fast
    from neuralens.web.live import Engine

    monkeypatch.setattr(neuralens.fast, "load_arbitrary", lambda *args: FakeArbitrary())
    client.app.state.live.engine = Engine(loader=lambda device: FakeArbitrary())  # "installed"
    red = ("red.png", png(Image.new("RGB", (32, 32), (255, 0, 0))), "image/png")
    files = [*upload(clip_bytes).items(), ("style", red)]
    job = client.post("/api/videos", files=files, data={"engine": "fast", "end": "0.25"})
    assert job.status_code == 202, job.text
    assert job.json()["engine"]["styles"] == ["style 1"] and job.json()["inputs"]["styles"] == ["upload"]
    done = wait(client, job.json()["id"])
    frames, _, _ = decode(client.get(done["urls"]["result"]).content)
    assert len(frames) == 3 and frames[0][..., 0].mean() > frames[0][..., 2].mean() + 40  # painted towards red

    monkeypatch.setattr(Engine, "installed", lambda self: False)
    refused = client.post("/api/videos", files=files, data={"engine": "fast"})
    assert refused.status_code == 422 and "no arbitrary-style engine" in refused.json()["error"]
    info = client.get("/api/videos/info").json()
    assert {e["name"]: e["available"] for e in info["engines"]} == {"model": True, "fast": False, "optimisation": True}
    not_image = client.post(
        "/api/videos",
        files=[*upload(clip_bytes).items(), ("style", ("x.png", b"nope" * 50, "image/png"))],
        data={"engine": "optimisation"},
    )
    assert not_image.status_code == 415 and "style 1 (x.png): not an image" in not_image.json()["error"]
