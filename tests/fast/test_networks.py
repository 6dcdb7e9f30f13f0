"""The two network designs and the two engines: both keep any size, model files record the design (old files
without it load as Johnson networks), onnxruntime gives PyTorch's numbers, and `train-style --teacher` distils
a trained model into another design."""

import pytest
import torch
import torch.nn.functional as F

from neuralens.errors import NeuralensError
from neuralens.fast import ShuffleNet, StyleModel, TransformerNet, build_network, load_model, runtime
from neuralens.fast.model import read_model_file
from neuralens.fast.network import BORDER_MARGIN
from neuralens.fast.training import train

NETWORKS = [("shuffle", 8), ("johnson", 8)]


def _saved(tmp_path, architecture="shuffle", width=8, name="tiny"):
    torch.manual_seed(0)
    network = build_network(architecture, width)
    return StyleModel(network, {"name": name}, None, "cpu", "fp32", "torch").save(tmp_path / f"{name}.pt")


@pytest.mark.parametrize("architecture,width", NETWORKS)
def test_output_size_equals_input_size_for_odd_sizes(architecture, width):
    network = build_network(architecture, width).eval()
    with torch.no_grad():
        for h, w in [(37, 53), (5, 7), (64, 48), (1, 9), (8, 8)]:
            assert network(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


@pytest.mark.parametrize("architecture,width", NETWORKS)
def test_the_photos_edge_is_painted_with_the_photo_mirrored_around_it(architecture, width):
    """Stylizing (eval mode) mirrors BORDER_MARGIN pixels around the photo and crops them off again, so its
    outermost pixels are painted as its inside is; training on crops (train mode) does without."""
    torch.manual_seed(0)
    network = build_network(architecture, width)
    x, m = torch.rand(1, 3, 36, 44), BORDER_MARGIN
    with torch.no_grad():
        mirrored = network.train()(F.pad(x, (m, m, m, m), mode="reflect"))[:, :, m:-m, m:-m]
        stylized = network.eval()(x)
        assert network.train()(x).shape == stylized.shape
    assert (stylized - mirrored).abs().max() < 1e-5


def test_build_network_defaults_and_refusals():
    assert isinstance(build_network(), ShuffleNet) and build_network().width == 24
    assert isinstance(build_network("johnson"), TransformerNet) and build_network("johnson").width == 32
    with pytest.raises(ValueError, match="unknown architecture"):
        build_network("resnet")


def test_model_files_record_the_architecture_and_old_files_load_as_johnson(tmp_path):
    path = _saved(tmp_path)
    data = read_model_file(path)
    assert data["version"] == 2 and data["architecture"] == "shuffle" and data["width"] == 8
    model = load_model(path, device="cpu", engine="torch")
    assert isinstance(model.network, ShuffleNet) and model.to_dict()["architecture"] == "shuffle"

    johnson = torch.load(_saved(tmp_path, "johnson", name="old"), weights_only=True)
    del johnson["architecture"]
    johnson["version"] = 1  # as written before ShuffleNet
    torch.save(johnson, tmp_path / "v1.pt")
    assert isinstance(load_model(tmp_path / "v1.pt", device="cpu").network, TransformerNet)

    torch.save({**johnson, "version": 2, "architecture": "resnet"}, tmp_path / "odd.pt")
    with pytest.raises(NeuralensError, match="unknown network architecture"):
        load_model(tmp_path / "odd.pt")


@pytest.mark.parametrize("architecture,width", NETWORKS)
def test_onnxruntime_engine_gives_pytorchs_numbers(tmp_path, architecture, width):
    path = _saved(tmp_path, architecture, width)
    by_torch = load_model(path, device="cpu", precision="fp32", engine="torch")
    by_onnx = load_model(path, device="cpu", precision="fp32", engine="onnxruntime")
    assert by_torch.engine_in_use == "torch" and by_onnx.engine_in_use == "onnxruntime"
    for h, w in [(37, 53), (64, 48), (5, 7)]:  # 5x7: too small for the graph's border margin, run by torch
        x = torch.rand(1, 3, h, w)
        assert (by_torch.stylize_tensor(x) - by_onnx.stylize_tensor(x)).abs().max() < 1e-4
    # The export is cached by the weights' hash: a second model of the same file reuses it.
    assert load_model(path, device="cpu", engine="onnxruntime")._forward(torch.rand(1, 3, 16, 16)).shape[2:] == (16, 16)
    assert len(list((runtime.cache_folder() / "onnx").glob(f"{architecture}-{width}-*.onnx"))) >= 1


def test_engine_choice():
    cpu = torch.device("cpu")
    assert runtime.pick_engine("torch", cpu, "fp32") == "torch"
    assert runtime.pick_engine("auto", cpu, "bf16") == "torch"  # onnxruntime runs fp32 here
    assert runtime.pick_engine("auto", cpu, "fp32") == "onnxruntime"  # installed with the dev requirements
    with pytest.raises(NeuralensError, match="fp32 on the CPU only"):
        runtime.pick_engine("onnxruntime", cpu, "bf16")
    with pytest.raises(NeuralensError, match="unknown engine"):
        runtime.pick_engine("tensorrt", cpu, "fp32")


def test_onnxruntime_engine_falls_back_to_a_temporary_folder_when_the_cache_is_unwritable(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("NEURALENS_CACHE", str(blocked / "cache"))
    path = runtime.exported_file(build_network("shuffle", 8))
    assert path.is_file() and blocked not in path.parents


def test_distillation_lowers_the_difference_to_the_teacher(tmp_path, tiny_photos):
    photos, style = tiny_photos
    teacher = _saved(tmp_path, "johnson", 8, name="teacher")
    settings = {"size": 32, "batch_size": 2, "device": "cpu", "precision": "fp32", "progress": False}
    result = train(style, photos, tmp_path / "student.pt", iterations=15, teacher=str(teacher), width=8, **settings)
    assert set(result.final_losses) == {"distill", "total"}
    assert result.final_losses["distill"] < result.history[0]["distill"]
    student = load_model(result.model_path, device="cpu")
    assert isinstance(student.network, ShuffleNet)
    assert student.info["options"]["teacher"] == str(teacher)


def test_a_shufflenet_exports_to_onnx_and_torchscript_checked(tmp_path):
    from neuralens.fast.export import export_onnx, export_torchscript

    path = _saved(tmp_path)
    onnx = export_onnx(path, tmp_path / "s.onnx", check_sizes=((32, 48), (35, 21)))
    script = export_torchscript(path, tmp_path / "s.ts", check_sizes=((32, 48), (35, 21)))
    assert onnx.max_abs_diff < 1e-4 and script.max_abs_diff < 1e-4
