"""`neuralens stylize | reconstruct` end to end, and every bad input's one-line error and exit status."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from neuralens import cli
from neuralens.style import Objective

FAST = ["--size", "40", "--iterations", "4", "--quiet", "--device", "cpu"]


def test_stylize_writes_an_image_of_the_right_size(tmp_path, image_files, run_cli):
    content, style = image_files
    out = tmp_path / "out.jpg"
    code, _, err = run_cli(
        "stylize", content, style, "-o", out, *FAST, "--report", tmp_path / "run.json", "--save-every", "2"
    )
    assert code == 0, err
    image = Image.open(out)
    assert image.format == "JPEG" and max(image.size) == 40 and image.size == (40, 30)
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["settings"]["size"] == 40 and len(report["runs"][0]["history"]) == 4
    assert {"content_loss", "style_loss", "loss", "elapsed"} <= set(report["runs"][0]["history"][0])
    assert (tmp_path / "out.0002.jpg").exists() and (tmp_path / "out.0004.jpg").exists()


def test_stylize_a_folder_with_two_blended_styles(tmp_path, image_files, run_cli):
    content, style = image_files
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(content).save(photos / "a.png")
    Image.open(content).rotate(90, expand=True).save(photos / "b.jpg")
    grey = tmp_path / "grey.png"
    Image.open(style).convert("L").save(grey)
    out = tmp_path / "results"
    code, _, err = run_cli("stylize", photos, style, grey, "--style-blend", "2", "1", "-o", out, *FAST)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert Image.open(out / "b.png").size == (30, 40)


def test_reconstruct_cli(tmp_path, image_files, run_cli):
    content, _ = image_files
    for flag, value in [("--content-layer", "relu2_1"), ("--style-layers", "relu1_1,relu2_1")]:
        out = tmp_path / f"{value}.png"
        code, _, err = run_cli("reconstruct", content, flag, value, "-o", out, *FAST)
        assert code == 0, err
        assert Image.open(out).size == (40, 30)


def test_interrupted_run_still_writes_the_image(tmp_path, image_files, run_cli, monkeypatch):
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
    code, _, err = run_cli("stylize", content, style, "-o", out, "--size", "40", "--iterations", "20", "--quiet")
    assert code == 130
    assert "stopped early" in err and out.exists()


@pytest.mark.parametrize(
    "case, message",
    [
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
    ],
)
def test_bad_input_gives_one_line_error(tmp_path, image_files, cli_error, monkeypatch, case, message):
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
    assert message in cli_error(*args)
    assert not out.exists()


def test_existing_output_survives_a_failed_run(tmp_path, image_files, cli_error):
    content, _ = image_files
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    cli_error("stylize", content, tmp_path / "missing-style.jpg", "-o", out, *FAST)
    assert out.read_bytes() == b"keep me"


def test_help_lists_commands_and_examples(capsys):
    assert cli.main(["stylize", "--help"]) == 0
    text = capsys.readouterr().out
    for option in (
        "--style-weight",
        "--preserve-color",
        "--style-blend",
        "--save-every",
        "--report",
        "--weights",
        "--precision",
        "examples:",
    ):
        assert option in text


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`neuralens models list --json | head -0`: the reader has gone before the listing is written (the
    program takes a second to start; the pipe is closed at once)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "neuralens", "models", "list", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader leaves, as `head` does once it has its lines
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == cli.EXIT_BROKEN_PIPE
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_style_masks_and_fine_style_from_the_command_line(tmp_path, image_files, cli_error, run_cli):
    content, style = image_files
    mask = tmp_path / "left.png"
    Image.new("L", (20, 15), 255).crop((0, 0, 20, 15)).save(mask)
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        "stylize", content, f"{style}:{mask}", "--content-mask", mask, "--fine-style", content, "-o", out, *FAST
    )
    assert code == 0, err
    assert Image.open(out).size == (40, 30)
    black = tmp_path / "black.png"
    Image.new("L", (8, 8), 0).save(black)
    assert "empty" in cli_error("stylize", content, f"{style}:{black}", "-o", out, *FAST)


def test_demo_writes_its_results(tmp_path, run_cli):
    code, out, err = run_cli("demo", "-o", tmp_path / "demo", "--size", "40", "--quiet")
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "demo").iterdir())
    from neuralens.fast import builtin_names

    fast = [f"tubingen_fast_{name}.png" for name in builtin_names()]
    assert files == sorted(["tubingen_starry_night.png", "tubingen_the_scream.png", *fast]) and len(fast) == 4
    for name in files:
        assert Image.open(tmp_path / "demo" / name).size == (40, 30), name
    assert "demo done" in out


def _never_optimise(monkeypatch):
    """Make any loss evaluation fail the test: the command must refuse before optimising."""

    def fail(self, image):
        raise AssertionError("optimised although the request had to be refused first")

    monkeypatch.setattr(Objective, "__call__", fail)


def test_unwritable_output_is_refused_before_any_work(tmp_path, image_files, cli_error, monkeypatch):
    content, style = image_files
    _never_optimise(monkeypatch)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")  # unwritable even for root
    assert "cannot write there" in cli_error("stylize", content, style, "-o", blocker / "out.png", *FAST)
    assert "cannot write there" in cli_error(
        "stylize", content, style, "-o", tmp_path / "out.png", "--report", blocker / "run.json", *FAST
    )


def test_result_is_kept_when_the_final_save_fails(tmp_path, image_files, cli_error, monkeypatch):
    content, style = image_files
    out = tmp_path / "out.png"
    from neuralens import imageio

    real_save = imageio.save_image

    def refuse_the_output(image, path):
        if str(path) == str(out):
            raise PermissionError(13, "Permission denied")
        return real_save(image, path)

    monkeypatch.setattr(imageio, "save_image", refuse_the_output)
    line = cli_error("stylize", content, style, "-o", out, *FAST)
    assert "could not write" in line and "saved the result as" in line
    kept = line.rsplit("saved the result as ", 1)[1].split(" instead")[0]
    assert Image.open(kept).size == (40, 30)


@pytest.mark.parametrize(
    "size, extra", [("100000", ["--tile-size", "0"]), ("100000", []), ("20000", ["--tile-size", "0"])]
)
def test_huge_size_is_refused_before_allocating(tmp_path, image_files, cli_error, monkeypatch, size, extra):
    content, style = image_files
    _never_optimise(monkeypatch)
    from neuralens.style import transfer

    def no_resize(image, long_side):  # the refusal is arithmetic: no image of that size is ever made
        raise AssertionError(f"resized to {long_side} px before refusing")

    monkeypatch.setattr(transfer, "resize_long_side", no_resize)
    args = ["stylize", content, style, "-o", tmp_path / "out.png", "--quiet", "--device", "cpu", "--size", size]
    assert "largest size that fits is --size" in cli_error(*args, *extra)


@pytest.mark.parametrize("which", ["content", "style"])
def test_too_thin_image_gives_one_line_error(tmp_path, image_files, cli_error, monkeypatch, which):
    content, style = image_files
    _never_optimise(monkeypatch)
    thin = tmp_path / "thin.png"
    Image.new("RGB", (4000, 4), (200, 100, 50)).save(thin)
    args = [thin, style] if which == "content" else [content, thin]
    line = cli_error("stylize", *args, "-o", tmp_path / "out.png", *FAST)
    assert "too thin" in line and "at least 16 px" in line


def test_wide_panorama_starts_at_a_scale_where_it_fits(tmp_path, image_files, run_cli):
    content, style = image_files
    wide = tmp_path / "wide.png"
    Image.open(content).resize((400, 20)).save(wide)  # 20:1 -- too thin for the coarse scales only
    out = tmp_path / "out.png"
    code, _, err = run_cli(
        "stylize",
        wide,
        style,
        "-o",
        out,
        "--size",
        "400",
        "--iterations",
        "2",
        "--coarse-iterations",
        "1",
        "--min-scale-size",
        "200",
        "--quiet",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert Image.open(out).size == (400, 20)


def test_existing_folder_as_output_of_one_image(tmp_path, image_files, run_cli):
    content, style = image_files
    folder = tmp_path / "results"
    folder.mkdir()
    code, _, err = run_cli("stylize", content, style, "-o", folder, *FAST)
    assert code == 0, err
    assert (folder / f"{content.stem}.png").exists()


def test_progress_is_a_few_lines_when_stderr_is_not_a_terminal(tmp_path, image_files, run_cli, monkeypatch):
    from neuralens import progress

    monkeypatch.setattr(progress, "LINE_SECONDS", 3600.0)  # only the first and the final line
    content, style = image_files
    code, _, err = run_cli(
        "stylize", content, style, "-o", tmp_path / "out.png", "--size", "40", "--iterations", "12", "--device", "cpu"
    )
    assert code == 0, err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("stylize ")]
    assert len(lines) == 2, err
    assert "elapsed" in lines[-1] and " step " in lines[-1]
