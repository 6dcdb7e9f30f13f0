"""Exporting a style model to ONNX and TorchScript: same numbers as PyTorch, any size, fp32 weights, one-line
errors, and nothing left behind when an export fails."""

import json
import os
import sys

import numpy as np
import pytest
import torch

from neuralens.errors import NeuralensError
from neuralens.fast import export
from neuralens.fast.export import export_model, export_onnx, export_torchscript, format_for
from neuralens.fast.model import StyleModel, load_model
from neuralens.fast.network import TransformerNet

SIZES = ((32, 48), (35, 21))  # (height, width): a multiple of 4, and both sides odd


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A width-8 network with random weights, saved as a model file (fp16 weights)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    return StyleModel(TransformerNet(8), {"name": "tiny"}, None, "cpu", "fp32").save(path)


def _reference(model_path, x: torch.Tensor) -> np.ndarray:
    """PyTorch fp32 eval of the saved model, clamped as the exports are."""
    network = load_model(model_path, device="cpu", precision="fp32").network
    with torch.inference_mode():
        return network(x).clamp(0, 1).numpy()


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_onnx_export_matches_onnxruntime_at_any_size(tiny_model, tmp_path):
    pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install neuralens[export])")
    ort = pytest.importorskip("onnxruntime", reason="the check needs onnxruntime (pip install neuralens[export])")
    import onnx

    out = tmp_path / "tiny.onnx"
    result = export_onnx(tiny_model, out, check_sizes=SIZES)
    assert result.path == out and out.is_file() and result.bytes == out.stat().st_size
    assert result.format == "onnx" and result.method == "legacy" and result.opset == 20
    assert result.checked_on == list(SIZES)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    assert result.to_dict()["checked_on"] == [[32, 48], [35, 21]]
    assert not _leftovers(tmp_path)

    # Free batch, height and width; fp32 weights (the model file holds fp16).
    proto = onnx.load(str(out))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert {i.data_type for i in proto.graph.initializer} == {onnx.TensorProto.FLOAT}
    assert {p.key: p.value for p in proto.metadata_props}["neuralens.width"] == "8"

    # A size and batch the check did not use: odd height, width 2 mod 4.
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 29, 38)
    got = session.run(None, {"image": x.numpy()})[0]
    assert got.shape == (2, 3, 29, 38)
    assert np.abs(got - _reference(tiny_model, x)).max() < 1e-4


def test_onnx_export_with_an_older_opset(tiny_model, tmp_path):
    pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install neuralens[export])")
    pytest.importorskip("onnxruntime", reason="the check needs onnxruntime (pip install neuralens[export])")
    result = export_onnx(tiny_model, tmp_path / "old.onnx", opset=11, check_sizes=SIZES[1:])
    assert result.opset == 11 and result.max_abs_diff < 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_round_trip(tiny_model, tmp_path):
    out = tmp_path / "tiny.ts"
    result = export_torchscript(tiny_model, out, check_sizes=SIZES)
    assert result.format == "torchscript" and result.method == "script"
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-5
    assert result.checked_on == list(SIZES)
    extra = {"neuralens.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["neuralens.json"])["width"] == 8
    x = torch.rand(1, 3, 35, 21)
    with torch.inference_mode():
        got = loaded(x).numpy()
    assert np.abs(got - _reference(tiny_model, x)).max() < 1e-5
    assert not _leftovers(tmp_path)


def test_export_takes_a_model_object_and_keeps_it_as_it_was(tmp_path):
    model = StyleModel(TransformerNet(8), {"name": "inline"}, None, "cpu", "fp32")
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    result = export_torchscript(model, tmp_path / "inline.torchscript", check=False)
    assert result.model == "inline" and result.max_abs_diff is None and result.checked_on == []
    assert all(torch.equal(before[k], v) for k, v in model.network.state_dict().items())


def test_without_onnxruntime_the_export_is_written_unchecked(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install neuralens[export])")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    result = export_onnx(tiny_model, tmp_path / "unchecked.onnx")
    assert result.path.is_file() and result.max_abs_diff is None and not result.checked
    assert "onnxruntime is not installed" in result.note and "pip install neuralens[export]" in result.note


def test_without_onnx_the_error_names_the_extra(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(NeuralensError, match=r"needs the onnx package: pip install neuralens\[export\]") as info:
        export_onnx(tiny_model, tmp_path / "x.onnx")
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_a_failed_check_writes_nothing(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install neuralens[export])")
    monkeypatch.setattr(export, "onnxruntime_runner", lambda path: lambda x: np.zeros_like(x))
    out = tmp_path / "bad.onnx"
    with pytest.raises(NeuralensError, match="differs from PyTorch"):
        export_onnx(tiny_model, out, check_sizes=SIZES[1:])
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.onnx", "onnx"), ("a.ONNX", "onnx"), ("a.ts", "torchscript"), ("a.torchscript", "torchscript")],
)
def test_format_for_known_suffixes(name, expected):
    assert format_for(name) == expected


@pytest.mark.parametrize(
    ("name", "message"),
    [("a.pt", "for TorchScript use .torchscript or .ts"), ("a.png", "unknown export format '.png'"), ("a", "''")],
)
def test_format_for_refuses_other_suffixes(name, message):
    with pytest.raises(NeuralensError, match=message):
        format_for(name)


def test_bad_settings_are_refused_before_any_work(tiny_model, tmp_path):
    with pytest.raises(NeuralensError, match="opset must be a whole number >= 11"):
        export_onnx(tiny_model, tmp_path / "a.onnx", opset=9)
    with pytest.raises(NeuralensError, match="legacy ONNX exporter writes opsets 11-20"):
        export_onnx(tiny_model, tmp_path / "a.onnx", opset=21, exporter="legacy")
    with pytest.raises(NeuralensError, match="exporter must be one of"):
        export_onnx(tiny_model, tmp_path / "a.onnx", exporter="magic")
    with pytest.raises(NeuralensError, match="opset is for ONNX"):
        export_model(tiny_model, tmp_path / "a.ts", opset=17)
    with pytest.raises(NeuralensError, match="not an ONNX file name"):
        export_onnx(tiny_model, tmp_path / "a.ts")
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(NeuralensError, match="is a folder"):
        export_onnx(tiny_model, tmp_path / "folder.onnx")
    with pytest.raises(NeuralensError, match="no such model file"):
        export_torchscript(tmp_path / "missing.pt", tmp_path / "a.ts")


@pytest.mark.skipif(
    not os.environ.get("NEURALENS_TEST_DYNAMO"),
    reason="the dynamo exporter takes 15-40 s on a CPU; set NEURALENS_TEST_DYNAMO=1 to run it",
)
def test_dynamo_exporter(tiny_model, tmp_path):
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    pytest.importorskip("onnxruntime", reason="the check needs onnxruntime")
    result = export_onnx(tiny_model, tmp_path / "d.onnx", exporter="dynamo", check_sizes=SIZES)
    assert result.method == "dynamo" and result.max_abs_diff < 1e-4
    assert result.inputs["image"] == ["batch", 3, "height", "width"]
    assert [p.name for p in tmp_path.iterdir()] == ["d.onnx"]  # weights inside, no .onnx.data beside it
