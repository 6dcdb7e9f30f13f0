"""The measured memory layout: measured once per machine, cached, re-measured for another machine."""

import json

import pytest
import torch

from neuralens import autotune
from neuralens.style import StyleOptions
from neuralens.style.network import StyleNetwork

CPU = torch.device("cpu")


@pytest.fixture
def tuning(monkeypatch, tmp_path):
    """Measuring on, with an empty cache folder of this test's own."""
    monkeypatch.setenv(autotune.AUTOTUNE_ENV, "1")
    monkeypatch.setenv("NEURALENS_CACHE", str(tmp_path))
    return tmp_path


def fake(seconds, calls):
    """A measure() that says channels-last takes seconds[True] and NCHW seconds[False], counting its calls."""

    def make():
        calls.append("made")

        def measure(precision, channels_last):
            calls.append((precision, channels_last))
            return seconds[channels_last]

        return measure

    return make


def test_the_faster_layout_is_chosen_measured_once_and_reused(tuning):
    calls = []
    notes = []
    make = fake({True: 1.0, False: 2.0}, calls)
    assert autotune.channels_last_for(CPU, "fp32", "net", make, notes.append) is True
    assert calls == ["made"] + [("fp32", False), ("fp32", True)] * autotune.MEASURE_REPEATS and len(notes) == 1
    # The second run reads the cache: nothing measured, nothing said.
    count = len(calls)
    assert autotune.channels_last_for(CPU, "fp32", "net", fake({True: 9.0, False: 1.0}, calls), notes.append)
    assert len(calls) == count and len(notes) == 1
    entry = next(iter(json.loads((tuning / autotune.CACHE_NAME).read_text())["entries"].values()))
    assert entry["seconds"] == {"nchw": 2.0, "channels_last": 1.0} and entry["signature"]["cpu"] is not None
    # Another precision or network is another question.
    assert autotune.channels_last_for(CPU, "bf16", "net", fake({True: 3.0, False: 1.0}, calls)) is False
    assert autotune.channels_last_for(CPU, "fp32", "other", fake({True: 3.0, False: 1.0}, calls)) is False


def test_a_cache_from_another_machine_is_measured_again(tuning, monkeypatch):
    calls = []
    assert autotune.channels_last_for(CPU, "fp32", "net", fake({True: 1.0, False: 2.0}, calls)) is True
    real = autotune.cpu_signature()
    monkeypatch.setattr(autotune, "cpu_signature", lambda: {**real, "cpu": "another CPU", "units": ["avx2"]})
    assert autotune.channels_last_for(CPU, "fp32", "net", fake({True: 2.0, False: 1.0}, calls)) is False
    assert calls.count("made") == 2
    entries = json.loads((tuning / autotune.CACHE_NAME).read_text())["entries"]
    assert len(entries) == 2  # both machines' answers kept (a shared home folder serves both)


def test_a_choice_measured_another_way_is_measured_again(tuning, monkeypatch):
    calls = []
    assert autotune.channels_last_for(CPU, "fp32", "net", fake({True: 2.0, False: 1.0}, calls)) is False
    monkeypatch.setattr(autotune, "MEASURE_SHAPE", (96, 128))  # a later version measures on another image
    assert autotune.channels_last_for(CPU, "fp32", "net", fake({True: 1.0, False: 2.0}, calls)) is True
    assert calls.count("made") == 2


@pytest.mark.parametrize("text", ["not json", '{"format": "other", "entries": {}}', '{"format": "neuralens-autotune"}'])
def test_an_unreadable_cache_is_ignored_and_rewritten(tuning, text):
    (tuning / autotune.CACHE_NAME).write_text(text)
    calls = []
    assert autotune.channels_last_for(CPU, "fp32", "net", fake({True: 1.0, False: 2.0}, calls)) is True
    assert json.loads((tuning / autotune.CACHE_NAME).read_text())["format"] == autotune.FORMAT


def test_an_unwritable_cache_folder_does_not_fail_the_run(tuning, monkeypatch):
    blocker = tuning / "file"
    blocker.write_text("")
    monkeypatch.setenv("NEURALENS_CACHE", str(blocker / "below"))  # a folder under a file cannot exist
    assert autotune.channels_last_for(CPU, "fp32", "net", fake({True: 1.0, False: 2.0}, [])) is True


def test_off_cuda_and_mps_need_no_measurement(tuning, monkeypatch):
    calls = []
    make = fake({True: 1.0, False: 2.0}, calls)
    assert autotune.channels_last_for(torch.device("cuda"), "fp32", "net", make) is True
    assert autotune.channels_last_for(torch.device("mps"), "fp32", "net", make) is False
    monkeypatch.setenv(autotune.AUTOTUNE_ENV, "off")
    assert autotune.channels_last_for(CPU, "fp32", "net", make) is False  # the fixed rule
    assert autotune.channels_last_for(CPU, "bf16", "net", make) is True
    assert calls == []


def test_the_style_network_takes_the_measured_layout_and_an_explicit_one_wins(tuning, monkeypatch):
    monkeypatch.setattr(autotune, "vgg_measure", lambda *a: lambda precision, cl: 1.0 if cl else 2.0)
    assert StyleNetwork(StyleOptions(precision="fp32")).channels_last is True
    assert StyleNetwork(StyleOptions(precision="fp32", channels_last=False)).channels_last is False


def test_the_real_measurement_times_both_layouts(monkeypatch):
    monkeypatch.setattr(autotune, "MEASURE_SHAPE", (32, 48))
    measure = autotune.vgg_measure(["relu2_1"], ["relu1_1", "relu2_1"])
    assert 0 < measure("fp32", False) < 60 and 0 < measure("fp32", True) < 60


def test_a_close_call_keeps_the_fixed_rule(tuning):
    assert autotune.channels_last_for(CPU, "fp32", "net", fake({True: 0.99, False: 1.0}, [])) is False
    assert autotune.channels_last_for(CPU, "bf16", "net", fake({True: 1.0, False: 0.99}, [])) is True
