"""Pretrained CNN backbones shared by every capability: VGG19 (style, visualisation, classify) and, for
classify, EfficientNet-Lite0 (``efficientnet_lite.py``). ``load_backbone(name)`` gives either as a
``Backbone`` (named feature layers, a frozen front and a last block to fine-tune, a weights fingerprint)."""

from __future__ import annotations

import torch

from ..errors import NeuralensError
from .base import Backbone
from .vgg19 import LAYER_NAMES, POOLING, VGG19, check_layer, layer_index, load_vgg19, load_vgg19_weights

# The --backbone choices of classify, in the order --help lists them.
BACKBONES = ("vgg19", "efficientnet-lite0")


def load_backbone(name: str, device: torch.device | str = "cpu") -> Backbone:
    """The backbone called ``name`` (one of BACKBONES) with its pretrained ImageNet weights, frozen, on
    ``device``. NeuralensError for an unknown name or weights that are not installed."""
    if name == "vgg19":
        from .vgg19 import load_vgg19_backbone  # noqa: PLC0415 -- keeps this module's import light

        return load_vgg19_backbone(device)
    if name == "efficientnet-lite0":
        from .efficientnet_lite import load_efficientnet_lite0  # noqa: PLC0415

        return load_efficientnet_lite0(device)
    raise NeuralensError(f"unknown backbone '{name}' (choose from {', '.join(BACKBONES)})")


__all__ = [
    "BACKBONES",
    "Backbone",
    "LAYER_NAMES",
    "POOLING",
    "VGG19",
    "check_layer",
    "layer_index",
    "load_backbone",
    "load_vgg19",
    "load_vgg19_weights",
]
