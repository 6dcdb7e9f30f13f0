"""`neuralens stylize | reconstruct` end to end, and every bad input's one-line error and exit status."""
import json

import pytest
from PIL import Image

from neuralens import cli
from neuralens.style import Objective

FAST = ["--size", "40", "--iterations", "4", "--quiet", "--device", "cpu"]


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_stylize_writes_an_image_of_the_right_size(tmp_path, image_files, capsys):
    content, style = image_files
    out = tmp_path / "out.jpg"
    code, _, err = run(capsys, "stylize", content, style, "-o", out, *FAST, "--report", tmp_path / "run.json",
                       "--save-every", "2")
    assert code == 0, err
    image = Image.open(out)
    assert image.format == "JPEG" and max(image.size) == 40 and image.size == (40, 30)
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["settings"]["size"] == 40 and len(report["runs"][0]["history"]) == 4
    assert {"content_loss", "style_loss", "loss", "elapsed"} <= set(report["runs"][0]["history"][0])
    assert (tmp_path / "out.0002.jpg").exists() and (tmp_path / "out.0004.jpg").exists()


def test_stylize_a_folder_with_two_blended_styles(tmp_path, image_files, capsys):
    content, style = image_files
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(content).save(photos / "a.png")
    Image.open(content).rotate(90, expand=True).save(photos / "b.jpg")
    grey = tmp_path / "grey.png"
    Image.open(style).convert("L").save(grey)
    out = tmp_path / "results"
    code, _, err = run(capsys, "stylize", photos, style, grey, "--style-blend", "2", "1", "-o", out, *FAST)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert Image.open(out / "b.png").size == (30, 40)


def test_reconstruct_cli(tmp_path, image_files, capsys):
    content, _ = image_files
    for flag, value in [("--content-layer", "relu2_1"), ("--style-layers", "relu1_1,relu2_1")]:
        out = tmp_path / f"{value}.png"
        code, _, err = run(capsys, "reconstruct", content, flag, value, "-o", out, *FAST)
        assert code == 0, err
        assert Image.open(out).size == (40, 30)


def test_interrupted_run_still_writes_the_image(tmp_path, image_files, capsys, monkeypatch):
    content, style = image_files
    original = Objective.__call__
    calls = []

    def interrupt_on_third_call(self, image):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, image)

    monkeypatch.setattr(Objective, "__call__", interrupt_on_third_call)
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "stylize", content, style, "-o", out, "--size", "40", "--iterations", "20", "--quiet")
    assert code == 130
    assert "stopped early" in err and out.exists()


def _one_line_error(code, err, expected_code=2):
    assert code == expected_code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("not_image", "not an image"),
    ("truncated", "truncated"),
    ("too_large", "over the limit"),
    ("size0", "size"),
    ("negative_weight", "style-weight"),
    ("unknown_layer", "unknown layer"),
    ("bad_output", "unknown output format"),
    ("bad_number", "expected a number"),
    ("bad_weights_file", "not a readable"),
])
def test_bad_input_gives_one_line_error(tmp_path, image_files, capsys, monkeypatch, case, message):
    content, style = image_files
    out = tmp_path / "out.png"
    args = ["stylize", content, style, "-o", out, *FAST]
    if case == "missing":
        args[1] = tmp_path / "nope.jpg"
    elif case == "not_image":
        (tmp_path / "text.jpg").write_text("hello")
        args[1] = tmp_path / "text.jpg"
    elif case == "truncated":
        data = content.read_bytes()
        (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
        args[2] = tmp_path / "cut.jpg"
    elif case == "too_large":
        monkeypatch.setenv("NEURALENS_MAX_PIXELS", "100")
        from neuralens import imageio
        monkeypatch.setattr(imageio, "MAX_PIXELS", 100)
    elif case == "size0":
        args += ["--size", "0"]
    elif case == "negative_weight":
        args += ["--style-weight", "-3"]
    elif case == "unknown_layer":
        args += ["--style-layers", "relu1_1,relu9_1"]
    elif case == "bad_output":
        args[4] = tmp_path / "out.xyz"
    elif case == "bad_number":
        args += ["--content-weight", "lots"]
    elif case == "bad_weights_file":
        (tmp_path / "w.pth").write_text("junk")
        args += ["--weights", tmp_path / "w.pth"]
    code, _, err = run(capsys, *args)
    assert message in _one_line_error(code, err)
    assert not out.exists()


def test_existing_output_survives_a_failed_run(tmp_path, image_files, capsys):
    content, _ = image_files
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    code, _, err = run(capsys, "stylize", content, tmp_path / "missing-style.jpg", "-o", out, *FAST)
    _one_line_error(code, err)
    assert out.read_bytes() == b"keep me"


def test_help_lists_commands_and_examples(capsys):
    assert cli.main(["stylize", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--style-weight", "--preserve-color", "--style-blend", "--save-every", "--report", "--weights",
                   "--precision", "examples:"):
        assert option in text


def test_style_masks_and_fine_style_from_the_command_line(tmp_path, image_files, capsys):
    content, style = image_files
    mask = tmp_path / "left.png"
    Image.new("L", (20, 15), 255).crop((0, 0, 20, 15)).save(mask)
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "stylize", content, f"{style}:{mask}", "--content-mask", mask,
                       "--fine-style", content, "-o", out, *FAST)
    assert code == 0, err
    assert Image.open(out).size == (40, 30)
    black = tmp_path / "black.png"
    Image.new("L", (8, 8), 0).save(black)
    code, _, err = run(capsys, "stylize", content, f"{style}:{black}", "-o", out, *FAST)
    assert "empty" in _one_line_error(code, err)


def test_demo_writes_its_results(tmp_path, capsys):
    code, out, err = run(capsys, "demo", "-o", tmp_path / "demo", "--size", "40", "--quiet")
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert files == ["tubingen_starry_night.png", "tubingen_the_scream.png"]
    assert Image.open(tmp_path / "demo" / files[0]).size == (40, 30)
    assert "demo done" in out
