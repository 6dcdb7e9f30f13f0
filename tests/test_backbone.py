"""VGG19: layer names, truncation, weight formats, and that the pretrained features are sane."""

import pytest
import torch
import torch.nn.functional as F

from neuralens.backbone import LAYER_NAMES, load_vgg19, load_vgg19_weights
from neuralens.backbone.vgg19 import CONV_NAMES, default_weights_path
from neuralens.errors import NeuralensError
from neuralens.imageio import image_to_tensor


def test_layer_names():
    assert len(LAYER_NAMES) == 16 * 2 + 5
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-3:] == ("conv5_4", "relu5_4", "pool5")
    assert len(CONV_NAMES) == 16


def test_network_is_cut_after_the_deepest_layer_and_frozen():
    model = load_vgg19("relu2_1")
    assert model.layer_names[-1] == "relu2_1"
    assert "conv2_2" not in model.layers
    assert all(not p.requires_grad for p in model.parameters())
    out = model(torch.rand(1, 3, 32, 32), ["relu1_1", "pool1", "relu2_1"])
    assert out["relu1_1"].shape == (1, 64, 32, 32)
    assert out["pool1"].shape == (1, 64, 16, 16)
    assert out["relu2_1"].shape == (1, 128, 16, 16)
    with pytest.raises(NeuralensError, match="beyond"):
        model(torch.rand(1, 3, 32, 32), ["relu3_1"])
    with pytest.raises(NeuralensError, match="unknown layer"):
        load_vgg19("relu6_1")


def test_average_pooling():
    model = load_vgg19("pool1", pooling="avg")
    x = torch.rand(1, 3, 8, 8)
    relu = model(x, ["relu1_2"])["relu1_2"]
    assert torch.allclose(model(x, ["pool1"])["pool1"], F.avg_pool2d(relu, 2))


def test_dequantised_weights_match_a_direct_table_lookup():
    raw = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    weights, prep = load_vgg19_weights()
    assert prep == "caffe"
    for conv, keras in [("conv1_1", "block1_conv1"), ("conv3_2", "block3_conv2"), ("conv5_4", "block5_conv4")]:
        idx, table = raw[f"{keras}_W_q"], raw[f"{keras}_W_table"]
        w, b = weights[conv]
        flat = idx.flatten()
        for i in (0, 1, 7, flat.numel() // 2, flat.numel() - 1):
            assert w.flatten()[i].item() == table[int(flat[i])].item()
        assert torch.equal(b, raw[f"{keras}_b"].float())
    model = load_vgg19("relu1_1")
    assert torch.equal(model.layers["conv1_1"].weight, weights["conv1_1"][0])


def test_pretrained_features_of_a_photo_are_sane(content_image):
    model = load_vgg19("relu4_2")
    photo = image_to_tensor(content_image.resize((64, 48)))
    shifted = torch.roll(photo, shifts=1, dims=3)  # the same photo moved by one pixel
    noise = torch.rand_like(photo, generator=torch.Generator().manual_seed(0))

    def feature(x):
        return model(x, ["relu4_2"])["relu4_2"].flatten()

    f_photo, f_shift, f_noise = feature(photo), feature(shifted), feature(noise)
    similar = F.cosine_similarity(f_photo, f_shift, dim=0).item()
    different = F.cosine_similarity(f_photo, f_noise, dim=0).item()
    assert similar > 0.8
    assert different < similar - 0.3
    assert (f_photo > 0).float().mean() < 0.6  # ReLU features of a photo are sparse


def test_torchvision_state_dict_is_detected(tmp_path):
    weights, _ = load_vgg19_weights()
    tv_index = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
    state = {}
    for conv, i in zip(CONV_NAMES, tv_index):
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = weights[conv]
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg19-tv.pth"
    torch.save(state, path)
    model = load_vgg19("relu1_1", weights=str(path))
    assert model.preprocessing == "torchvision"
    assert torch.equal(model.layers["conv1_1"].weight, weights["conv1_1"][0])
    # torchvision weights expect RGB normalised by ImageNet mean/std
    x = torch.full((1, 3, 2, 2), 0.485)
    assert model.preprocess(x)[0, 0].abs().max() < 1e-6


def test_bad_weight_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(NeuralensError, match="not a readable"):
        load_vgg19_weights(str(junk))
    wrong = tmp_path / "wrong.pth"
    torch.save({"something": torch.zeros(1)}, wrong)
    with pytest.raises(NeuralensError, match="unrecognised"):
        load_vgg19_weights(str(wrong))
    with pytest.raises(NeuralensError, match="no such"):
        load_vgg19_weights(str(tmp_path / "missing.pth"))
