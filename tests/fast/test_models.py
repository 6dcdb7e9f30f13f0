"""`neuralens models list | info | export` on temporary models: what is printed, and one-line errors for bad
model files, formats and outputs."""

import json
import sys

import pytest
import torch

from neuralens import cli
from neuralens.fast import model as fast_model
from neuralens.fast.model import FORMAT, StyleModel
from neuralens.fast.network import TransformerNet

INFO = {
    "name": "tiny",
    "painting": "starry_night.jpg",
    "options": {"width": 8, "style_weight": 100000.0, "size": 256},
    "iterations": 120,
    "seconds": 185.0,
    "images_per_second": 2.6,
    "final_losses": {"content": 1.5, "style": 0.25},
    "photos": 12,
    "stopped": False,
}
REPORT = {"neuralens": "0.1.0", "style": "starry_night.jpg", "result": {"iterations": 120, "history": [{}] * 30}}


@pytest.fixture(autouse=True)
def models_command(monkeypatch):
    """`neuralens models` on the command line (until neuralens/cli.py lists it itself)."""
    if "neuralens.fast.models_cli" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "neuralens.fast.models_cli"])


@pytest.fixture()
def builtin(tmp_path, monkeypatch):
    """A built-in models folder with one width-8 model ('tiny') and its training report."""
    folder = tmp_path / "builtin"
    torch.manual_seed(0)
    path = StyleModel(TransformerNet(8), dict(INFO), None, "cpu", "fp32").save(folder / "tiny.pt")
    (folder / "tiny.json").write_text(json.dumps(REPORT))
    monkeypatch.setattr(fast_model, "BUILTIN", folder)
    return path


def test_models_alone_prints_its_help(run_cli):
    code, out, _ = run_cli("models")
    assert code == 2 and "list" in out and "export" in out


def test_list(run_cli, builtin):
    code, out, err = run_cli("models", "list")
    assert code == 0 and not err
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "PAINTING", "NETWORK", "SIZE", "TRAINED"]
    assert row.split()[:5] == ["tiny", "starry_night.jpg", "johnson", "8", f"{builtin.stat().st_size / 1e3:.1f}"]
    assert "120 steps, 3 min" in row


def test_list_json(run_cli, builtin):
    code, out, _ = run_cli("models", "list", "--json")
    (row,) = json.loads(out)
    assert code == 0
    assert row["name"] == "tiny" and row["painting"] == "starry_night.jpg" and row["width"] == 8
    assert row["architecture"] == "johnson"
    assert row["bytes"] == builtin.stat().st_size and row["iterations"] == 120 and row["minutes"] == 3.1


def test_list_with_no_models_and_with_an_unreadable_one(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(fast_model, "BUILTIN", tmp_path)
    code, out, _ = run_cli("models", "list")
    assert code == 0 and "no built-in models" in out
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    code, out, _ = run_cli("models", "list")
    assert code == 0 and "broken" in out and "unreadable" in out
    assert "error" in json.loads(run_cli("models", "list", "--json")[1])[0]


def test_info_by_name(run_cli, builtin):
    code, out, err = run_cli("models", "info", "tiny")
    assert code == 0 and not err
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert lines["name"] == "tiny" and lines["network"] == "johnson, width 8" and lines["parameters"] == "108,771"
    assert lines["painting"] == "starry_night.jpg" and lines["trained"] == "120 steps, 3 min"
    assert lines["info.options.style_weight"] == "100000"
    assert lines["info.final_losses.style"] == "0.25"
    assert lines["report.result.history"] == "[30 entries]"
    assert lines["file"] == str(builtin)


def test_info_json_by_path(run_cli, builtin):
    code, out, _ = run_cli("models", "info", builtin, "--json")
    data = json.loads(out)
    assert code == 0
    assert data["info"] == INFO and data["report"] == REPORT and data["width"] == 8 and data["parameters"] == 108771


def test_export_torchscript_prints_the_difference(run_cli, builtin, tmp_path):
    out_file = tmp_path / "tiny.ts"
    code, out, err = run_cli("models", "export", "tiny", "-o", out_file)
    assert code == 0 and not err and out_file.is_file()
    assert "TorchScript, scripted" in out and "192x256 and 189x251" in out and "max abs difference" in out


def test_export_onnx_json(run_cli, builtin, tmp_path):
    pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install neuralens[export])")
    code, out, _ = run_cli("models", "export", builtin, "-o", tmp_path / "tiny.onnx", "--no-check", "--json")
    data = json.loads(out)
    assert code == 0 and data["format"] == "onnx" and data["max_abs_diff"] is None and data["opset"] == 20


def test_export_without_onnxruntime_says_it_was_not_checked(run_cli, builtin, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install neuralens[export])")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, out, err = run_cli("models", "export", "tiny", "-o", tmp_path / "tiny.onnx")
    assert code == 0 and "wrote" in out
    assert err.strip() == (
        "warning: onnxruntime is not installed: the export was not checked (pip install neuralens[export])"
    )


def _newer(path):
    torch.save({"format": FORMAT, "version": 99, "width": 8, "info": {}, "state": {}}, path)
    return path


@pytest.mark.parametrize("command", ["info", "export"])
def test_bad_model_files_give_one_line(cli_error, tmp_path, command):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02 definitely not a zip")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    extra = ["-o", tmp_path / "out.ts"] if command == "export" else []
    assert "not a readable neuralens style model" in cli_error("models", command, corrupt, *extra)
    assert "not a neuralens style model" in cli_error("models", command, foreign, *extra)
    line = cli_error("models", command, _newer(tmp_path / "newer.pt"), *extra)
    assert "made by a newer neuralens (model format 99" in line and "upgrade neuralens" in line
    assert "no such model file or built-in model" in cli_error("models", command, "no-such-model", *extra)
    assert not (tmp_path / "out.ts").exists()


def test_bad_outputs_give_one_line(cli_error, builtin, tmp_path):
    assert "unknown export format '.png'" in cli_error("models", "export", "tiny", "-o", tmp_path / "x.png")
    assert "use .torchscript or .ts" in cli_error("models", "export", "tiny", "-o", tmp_path / "x.pt")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot write there" in cli_error("models", "export", "tiny", "-o", blocker / "x.ts")
    assert "--opset must be a whole number >= 11" in cli_error(
        "models", "export", "tiny", "-o", tmp_path / "x.onnx", "--opset", "7"
    )
    assert "expected a whole number" in cli_error("models", "export", "tiny", "-o", tmp_path / "x.onnx", "--opset", "x")
    assert "the following arguments are required: -o/--output" in cli_error("models", "export", "tiny")
