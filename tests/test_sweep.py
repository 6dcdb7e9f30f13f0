"""Tuning sweeps: `neuralens sweep` renders every combination and lays out one captioned tile per run."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuralens.cli import main
from neuralens.errors import NeuralensError
from neuralens.imageio import resize_long_side
from neuralens.visualize import normalise_vary, parse_vary, sweep
from neuralens.visualize.sheets import BACKGROUND

SAMPLES = Path(__file__).resolve().parent.parent / "neuralens" / "samples"
FAST = ["--size", "32", "--iterations", "4", "--scales", "1", "--device", "cpu"]


@pytest.fixture
def pair(tmp_path):
    """A small photo and painting (downscaled samples) written to tmp_path."""
    content, style = tmp_path / "photo.png", tmp_path / "painting.png"
    resize_long_side(Image.open(SAMPLES / "chelsea.jpg").convert("RGB"), 48).save(content)
    resize_long_side(Image.open(SAMPLES / "the_scream.jpg").convert("RGB"), 48).save(style)
    return content, style


def test_parse_vary_spellings():
    assert parse_vary("style-weight=1e3,1e4") == ("style_weight", ["1e3", "1e4"])
    assert parse_vary("content_layers=relu2_2,relu4_2") == ("content_layers", ["relu2_2", "relu4_2"])
    # '+' joins the parts of one list value; numbers keep their exponent sign.
    assert parse_vary("style-layers=relu1_1+relu2_1,relu3_1") == ("style_layers", ["relu1_1,relu2_1", "relu3_1"])
    assert parse_vary("style-weight=1e+3") == ("style_weight", ["1e+3"])
    axes = normalise_vary(["size=32,4e1", "seed=none,3", "style-blend=0.7+0.3"])
    assert axes == [
        ("size", [("32", 32), ("4e1", 40)]),
        ("seed", [("none", None), ("3", 3)]),
        ("style_blend", [("0.7+0.3", [0.7, 0.3])]),
    ]
    assert normalise_vary({"style-weight": [1e3, 1e5]}) == [("style_weight", [("1000", 1e3), ("100000", 1e5)])]


@pytest.mark.parametrize(
    "spec, message",
    [
        (["colour=1,2"], "not a stylize option"),
        (["progress=true"], "not a stylize option"),
        (["style-weight"], "NAME=VALUE"),
        (["style-weight="], "no values"),
        (["size=big"], "whole number"),
        (["size=1.5"], "whole number"),
        (["tv-weight=x"], "a number"),
        (["size=32", "size=64"], "given twice"),
        ([], "nothing to vary"),
    ],
)
def test_bad_vary_specs(spec, message):
    with pytest.raises(NeuralensError, match=message):
        normalise_vary(spec)


def test_bad_values_fail_before_any_run(pair):
    content, style = pair
    with pytest.raises(NeuralensError, match="unknown layer.*content-layers=relu9_9"):
        sweep(content, style, ["content-layers=relu2_2,relu9_9"], size=32, iterations=1, device="cpu")
    with pytest.raises(NeuralensError, match="style_weight must be"):
        sweep(content, style, {"style_weight": [1.0, -1.0]}, size=32, iterations=1, device="cpu")


def test_sweep_sheet_has_one_labelled_tile_per_combination(pair, tmp_path, capsys):
    content, style = pair
    out = tmp_path / "out" / "sheet.png"
    rc = main(
        [
            "sweep",
            str(content),
            str(style),
            "--vary",
            "style-weight=1e-3,1e3",
            "--vary",
            "content-layers=relu2_2,relu3_2",
            "--tv-weight",
            "0",
            *FAST,
            "-o",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "run 4/4" in err

    report = json.loads(out.with_suffix(".json").read_text())
    runs = report["runs"]
    combos = list(itertools.product(["1e-3", "1e3"], ["relu2_2", "relu3_2"]))
    assert [(r["settings"]["style-weight"], r["settings"]["content-layers"]) for r in runs] == combos
    assert [r["values"]["style_weight"] for r in runs] == [1e-3, 1e-3, 1e3, 1e3]
    assert report["vary"] == {"style-weight": ["1e-3", "1e3"], "content-layers": ["relu2_2", "relu3_2"]}
    assert report["options"]["size"] == 32 and report["options"]["iterations"] == 4
    assert report["grid"]["columns"] == 2 and report["grid"]["rows"] == 2 and report["planned"] == 4

    sheet = Image.open(out).convert("RGB")
    assert list(sheet.size) == report["grid"]["sheet_size"]
    boxes = [tuple(r["box"]) for r in runs]
    assert len(set(boxes)) == 4
    # Row by row: same top within a row, same left within a column.
    assert boxes[0][1] == boxes[1][1] < boxes[2][1] == boxes[3][1]
    assert boxes[0][0] == boxes[2][0] < boxes[1][0] == boxes[3][0]
    for r in runs:
        assert (
            r["caption"]
            == f"style-weight={r['settings']['style-weight']}\ncontent-layers={r['settings']['content-layers']}"
        )
        assert set(r["losses"]) == {"content", "style", "tv", "total"}
        assert all(math.isfinite(v) for v in r["losses"].values())
        assert r["steps"] >= 1 and r["timings"]["total"] > 0 and not r["stopped"]
        tile = Image.open(out.parent / r["tile"]).convert("RGB")
        assert tile.size == tuple(r["size"]) and max(tile.size) == 32
        # The tile on the sheet is the run's image, pixel for pixel ...
        assert np.array_equal(np.asarray(sheet.crop(r["box"])), np.asarray(tile))
        # ... and the strip under it carries its caption.
        left, top, right, bottom = r["box"]
        caption = np.asarray(sheet.crop((left - 20, bottom, right + 20, bottom + 24)))
        assert (caption != BACKGROUND).any(axis=2).sum() > 20
    # The settings reached the runs: a 1e6x style weight gives a far larger loss and another picture. (The two
    # weights must put the balance on either side: L-BFGS is invariant to scaling the loss, so 1e3 and 1e5, where
    # the style term dominates both, gave the same fp32 picture; only bf16 rounding had told them apart.)
    assert runs[2]["losses"]["total"] > 10 * runs[0]["losses"]["total"]
    tiles = [np.asarray(Image.open(out.parent / r["tile"]), dtype=np.int16) for r in runs]
    assert np.abs(tiles[0] - tiles[2]).max() > 10


def test_sweep_api_single_setting(pair):
    content, style = pair
    seen = []
    result = sweep(
        content,
        style,
        {"style-weight": [1e2, 1e6]},
        size=32,
        iterations=1,
        scales=1,
        device="cpu",
        callback=lambda i, n, c: seen.append(c),
    )
    assert seen == ["style-weight=100", "style-weight=1e+06"]
    assert len(result.runs) == 2 and result.planned == 2 and not result.stopped
    assert (result.layout.columns, result.layout.rows) == (2, 1)
    assert result.sheet.size == result.layout.size
    assert [r.values for r in result.runs] == [{"style_weight": 1e2}, {"style_weight": 1e6}]


def test_sweep_stops_early_with_the_runs_so_far(pair):
    content, style = pair
    result = sweep(
        content,
        style,
        ["style-weight=1e3,1e4,1e5"],
        size=32,
        iterations=3,
        scales=1,
        device="cpu",
        should_stop=lambda: True,
    )
    assert result.stopped and result.planned == 3 and len(result.runs) == 1
    assert result.sheet.size == result.layout.size and result.layout.columns == 1
    with pytest.raises(NeuralensError, match="not a stylize option"):
        sweep(content, style, ["size=32"], colour=1)


def test_sweep_cli_errors_are_one_line(pair, tmp_path, cli_error):
    content, style = map(str, pair)
    out = str(tmp_path / "s.png")
    assert "not a stylize option" in cli_error("sweep", content, style, "--vary", "colour=1", "-o", out)
    assert "expected a number" in cli_error("sweep", content, style, "--vary", "style-weight=1e3,x", "-o", out)
    assert "unknown layer" in cli_error("sweep", content, style, "--vary", "content-layers=relu2_2,conv9_1", "-o", out)
    assert "both fixed and varied" in cli_error("sweep", content, style, "--vary", "size=32", "--size", "64", "-o", out)
    assert "whole number" in cli_error(
        "sweep", content, style, "--vary", "style-weight=1", "--iterations", "many", "-o", out
    )
    assert "no such file" in cli_error("sweep", str(tmp_path / "nope.jpg"), style, "--vary", "size=32", "-o", out)
    assert "unknown output format" in cli_error(
        "sweep", content, style, "--vary", "size=32", "-o", str(tmp_path / "s.txt")
    )
    fake = tmp_path / "fake.png"
    fake.write_text("no picture")
    assert "not an image" in cli_error("sweep", content, str(fake), "--vary", "size=32", "-o", out)
