"""The paper's losses against values computed by hand."""

import math

import pytest
import torch

from neuralens.errors import NeuralensError
from neuralens.style import content_loss, gram_matrix, parse_layers, style_layer_loss, style_loss, tv_loss
from neuralens.style.losses import feature_style_loss

# Two feature maps (N=2) of 2x2 positions (M=4).
F = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])


def test_gram_is_f_times_f_transposed():
    # Rows of F: a = (1, 2, 3, 4), b = (0, 1, 0, 1): a.a = 30, a.b = 6, b.b = 2.
    assert gram_matrix(F).tolist() == [[[30.0, 6.0], [6.0, 2.0]]]


def test_gram_is_fp32_for_bf16_features():
    assert gram_matrix(F.bfloat16()).dtype == torch.float32


def test_content_loss_is_half_the_squared_error():
    target = torch.zeros_like(F)
    # 1/2 * (1 + 4 + 9 + 16 + 0 + 1 + 0 + 1) = 16
    assert content_loss(F, target).item() == pytest.approx(16.0)


def test_style_layer_loss_follows_the_paper():
    target = torch.tensor([[[28.0, 6.0], [6.0, 0.0]]])
    # sum (G - A)^2 = 2^2 + 2^2 = 8; 1 / (4 N^2 M^2) = 1 / (4 * 4 * 16) = 1/256
    assert style_layer_loss(gram_matrix(F), target, 2, 4).item() == pytest.approx(8 / 256)


def test_gram_of_channels_last_features_is_the_same():
    assert gram_matrix(F.contiguous(memory_format=torch.channels_last)).tolist() == [[[30.0, 6.0], [6.0, 2.0]]]


def test_feature_style_loss_matches_the_paper_value():
    target = torch.tensor([[[28.0, 6.0], [6.0, 0.0]]])
    assert feature_style_loss(F, target).item() == pytest.approx(8 / 256)
    assert feature_style_loss(F, target, n_positions=2).item() == pytest.approx(8 / (4 * 4 * 4))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_feature_style_loss_gradient_is_autograds(layout):
    torch.manual_seed(0)
    features = torch.randn(1, 5, 6, 7, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_(True)
    a = torch.randn(5, 5, dtype=torch.float64)
    target = (a @ a.T)[None]
    assert torch.autograd.gradcheck(lambda f: feature_style_loss(f, target), (features,))
    (fused,) = torch.autograd.grad(feature_style_loss(features, target), features)
    flat = features.reshape(1, 5, -1)
    (plain,) = torch.autograd.grad(style_layer_loss(flat @ flat.transpose(1, 2), target, 5, 42), features)
    assert torch.allclose(fused, plain, rtol=1e-6, atol=1e-12)
    assert fused.is_contiguous(memory_format=layout)  # the gradient keeps the network's layout


def test_feature_style_loss_on_bf16_features_is_close_to_fp32():
    torch.manual_seed(0)
    features = torch.rand(1, 8, 16, 16)
    target = gram_matrix(torch.rand(1, 8, 16, 16))
    exact = feature_style_loss(features, target)
    low = features.bfloat16().requires_grad_(True)
    approx = feature_style_loss(low, target)
    approx.backward()
    assert approx.dtype == torch.float32 and low.grad.dtype == torch.bfloat16
    assert approx.item() == pytest.approx(exact.item(), rel=2e-2)


def test_style_loss_weights_each_layer():
    a = torch.tensor([[[28.0, 6.0], [6.0, 0.0]]])
    features = {"relu1_1": F, "relu2_1": F}
    targets = {"relu1_1": a, "relu2_1": gram_matrix(F)}
    loss = style_loss(features, targets, {"relu1_1": 0.5, "relu2_1": 3.0})
    assert loss.item() == pytest.approx(0.5 * 8 / 256)


def test_total_variation():
    image = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # horizontal: (1)^2 + (2)^2 = 5; vertical: (2)^2 + (3)^2 = 13
    assert tv_loss(image).item() == pytest.approx(18.0)


def test_parse_layers_default_weights_share_one():
    weights = parse_layers("relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    assert list(weights) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert all(math.isclose(w, 0.2) for w in weights.values())


def test_parse_layers_explicit_weights():
    assert parse_layers("relu1_1:0.5, relu2_1:2") == {"relu1_1": 0.5, "relu2_1": 2.0}
    assert parse_layers("relu1_1:0.5,relu2_1") == {"relu1_1": 0.5, "relu2_1": 0.5}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("relu9_9", "unknown layer"),
        ("relu1_1:-1", ">= 0"),
        ("relu1_1:abc", "bad weight"),
        ("", "no style layers"),
    ],
)
def test_parse_layers_rejects_bad_specs(spec, message):
    with pytest.raises(NeuralensError, match=message):
        parse_layers(spec, "style layers")
