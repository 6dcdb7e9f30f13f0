"""The threads that overlap a video run's stages (neuralens/video/pipeline.py): order kept, errors carried to the
caller, nothing left running; and a run through them gives the same frames as painting one frame at a time."""

import threading

import numpy as np
import pytest
from PIL import Image

from neuralens import video
from neuralens.errors import NeuralensError
from neuralens.video.pipeline import Background, Beside, prefetch

MODEL = "starry-night"


def test_prefetch_keeps_order_and_raises_the_producers_error_in_place():
    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise NeuralensError("clip.mp4: cannot decode the video")

    seen = []
    with pytest.raises(NeuralensError, match="cannot decode"):
        for item in prefetch(failing()):
            seen.append(item)
    assert seen == [1, 2]


def test_leaving_a_prefetch_early_stops_its_thread_and_closes_the_source():
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    before = threading.active_count()
    for item in prefetch(endless(), depth=2):
        if item == 3:
            break
    assert closed.is_set() and threading.active_count() == before


def test_background_runs_in_order_and_reports_the_first_error():
    done = []
    behind = Background("test", depth=2)
    for n in range(20):
        behind.submit(done.append, n)
    behind.wait()
    assert done == list(range(20))

    def fail(n):
        raise OSError(f"disk full at {n}")

    behind.submit(fail, 20)
    behind.submit(done.append, 21)  # skipped: an earlier call failed
    with pytest.raises(OSError, match="disk full at 20"):
        behind.close()
    assert done == list(range(20))
    behind.close()  # twice is fine


def test_beside_returns_the_value_or_raises():
    beside = Beside("test")
    beside.start(sum, [1, 2, 3])
    assert beside.result() == 6
    beside.start(int, "not a number")
    with pytest.raises(ValueError):
        beside.result()


def test_the_overlapped_run_writes_the_frames_a_frame_at_a_time_run_makes(pan, make_clip, tmp_path):
    frames, _ = pan
    clip = make_clip(frames, fps=12)
    result = video.stylize(clip, tmp_path / "out", model=MODEL, progress=False)  # a folder of PNG frames: lossless
    written = [np.asarray(image) for image in video.stylize_frames(list(video.read_video(clip)), model=MODEL)]
    assert result.frames == len(written) == 12
    for index, expected in enumerate(written):
        with Image.open(tmp_path / "out" / f"{index + 1:06d}.png") as image:
            assert np.array_equal(np.asarray(image.convert("RGB")), expected), index
