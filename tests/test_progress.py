"""Progress: a live bar on a terminal, a plain line every few seconds anywhere else."""

import io

from neuralens import progress
from neuralens.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_every_interval_when_not_a_terminal(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    stream = io.StringIO()
    with Progress(100, what="train", unit="image", stream=stream, interval=5.0) as bar:
        for i in range(100):
            clock.now += 0.1  # 10 s of work in all
            bar.update(1, f"loss {100 - i}")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert 2 <= len(lines) <= 4  # at 0.1 s, 5.1 s, 10 s (+ the final line)
    assert lines[0].startswith("train 1/100 image (1 %) loss 100")
    assert lines[-1].startswith("train 100/100 image (100 %) loss 1, 10 s elapsed")
    assert "left" not in lines[-1]
    assert "about" in lines[1] and "left" in lines[1]


def test_disabled_progress_writes_nothing():
    stream = io.StringIO()
    bar = Progress(10, stream=stream, enabled=False)
    bar.update(5)
    bar.close()
    assert stream.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with Progress(3, what="x", stream=stream) as bar:
        bar.update(3)
    assert "\r" in stream.getvalue() and "3/3" in stream.getvalue()


def test_format_seconds():
    assert [format_seconds(s) for s in (4.4, 95, 4000)] == ["4 s", "1 min 35 s", "1 h 06 min"]


def test_a_resumed_run_counts_on_but_times_only_its_own_work(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    bar = Progress(1000, what="train", enabled=False, initial=900)
    clock.now += 10.0
    bar.update(10)  # 10 steps in 10 s, 90 left: 90 s, not the 0.9 s that counting the 900 earlier steps gives
    assert bar.count == 910 and bar.time_left() == 90.0


def test_a_resumed_terminal_bar_starts_at_the_steps_done():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with Progress(10, what="x", stream=stream, initial=7) as bar:
        bar.update(1)
    assert "8/10" in stream.getvalue()
