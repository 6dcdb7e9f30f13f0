"""VGG19 as a style-transfer run uses it: the layers it reads, the device, precision and memory layout."""
from __future__ import annotations

from typing import Dict, Iterable

import torch

from .. import devices
from ..backbone import layer_index, load_vgg19
from .options import StyleOptions, parse_layers


class StyleNetwork:
    """The frozen VGG19 of a run, cut after the deepest layer in use, on the chosen device and precision.

    Channels-last is chosen where it is the fast layout (measured: faster with bf16 on the CPU and on CUDA,
    slower for fp32 on the CPU; MPS does not support it)."""

    def __init__(self, options: StyleOptions):
        self.content_layers: Dict[str, float] = parse_layers(options.content_layers, "content layers")
        self.style_layers: Dict[str, float] = parse_layers(options.style_layers, "style layers")
        self.device = devices.pick_device(options.device)
        self.precision = devices.pick_precision(options.precision, self.device)
        devices.configure_threads()
        deepest = max(list(self.content_layers) + list(self.style_layers), key=layer_index)
        channels_last = options.channels_last
        if channels_last is None:
            channels_last = self.precision == "bf16" or self.device.type == "cuda"
        channels_last = channels_last and self.device.type != "mps"
        self.model = load_vgg19(deepest, options.pooling, options.weights, self.device, channels_last)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def to_device(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` on the run's device, in the network's memory layout."""
        return image.to(self.device).contiguous(memory_format=self.memory_format)

    def __call__(self, image: torch.Tensor, layers: Iterable[str]) -> Dict[str, torch.Tensor]:
        """Activations at ``layers`` with gradients, in the run's precision (for the objective). The optimised
        tensor stays NCHW-contiguous (L-BFGS flattens its gradient); the network gets a copy in its layout."""
        with devices.autocast(image.device, self.precision):
            return self.model(image.contiguous(memory_format=self.memory_format), layers)

    @torch.no_grad()
    def features(self, image: torch.Tensor, layers: Iterable[str]) -> Dict[str, torch.Tensor]:
        """Activations of ``image`` at ``layers`` (computed without gradients, fp32 copies)."""
        with devices.autocast(self.device, self.precision):
            feats = self.model(self.to_device(image), layers)
        return {k: v.float() for k, v in feats.items()}
