"""``video.plan``: what a run will read and write, before it starts (the web app checks it against its limits)."""

import pytest
from conftest import colour_bars

from neuralens import video
from neuralens.options import OptionError


def test_the_plan_says_size_rate_range_and_frames(make_clip):
    clip = make_clip(colour_bars(25, 96, 64), fps=25, audio_hz=440)  # one second
    whole = video.plan(clip)
    assert whole.size == (96, 64) and whole.fps == 25 and whole.frames == 25
    assert whole.seconds == pytest.approx(1.0, abs=0.05) and whole.info.audio == "aac"
    part = video.plan(clip, size=48, start=0.2, end=0.6, fps=10)
    assert part.size == (48, 32) and part.frames == 4 and part.seconds == pytest.approx(0.4)
    data = part.to_dict()
    assert data["frames"] == 4 and data["size"] == [48, 32] and data["input"]["width"] == 96
    # stylize paints what the plan says
    result = video.stylize(
        clip, clip.with_name("out.mp4"), model="starry-night", size=48, start=0.2, end=0.6, fps=10, progress=False
    )
    assert result.frames == part.frames and tuple(result.size) == part.size


def test_a_start_after_the_end_is_refused_naming_the_field(make_clip):
    clip = make_clip(colour_bars(6), fps=12)
    with pytest.raises(OptionError, match="start 5 s is after the end") as error:
        video.plan(clip, start=5)
    assert error.value.cli_message().startswith("--start 5 s")
