"""Pretrained CNN backbones shared by every capability (today: VGG19)."""

from .vgg19 import LAYER_NAMES, POOLING, VGG19, check_layer, layer_index, load_vgg19, load_vgg19_weights

__all__ = ["LAYER_NAMES", "POOLING", "VGG19", "check_layer", "layer_index", "load_vgg19", "load_vgg19_weights"]
