"""VGG19 as a style-transfer run uses it: the layers it reads, the device, precision and memory layout."""

from __future__ import annotations

import time
from typing import Dict, Iterable, Optional

import torch

from .. import autotune, devices
from ..backbone import layer_index, load_vgg19
from .options import StyleOptions, parse_layers


class StyleNetwork:
    """The frozen VGG19 of a run, cut after the deepest layer in use, on the chosen device and precision.

    Channels-last is chosen where it is the fast layout: on CUDA always, never on MPS (unsupported), on the CPU
    as measured once per machine (``neuralens.autotune``: it depends on the CPU). The weights are read on first use, so that a
    run can be planned (and refused) before paying for them."""

    def __init__(self, options: StyleOptions):
        self.content_layers: Dict[str, float] = parse_layers(options.content_layers, "content layers")
        self.style_layers: Dict[str, float] = parse_layers(options.style_layers, "style layers")
        self.device = devices.pick_device(options.device)
        self.precision = devices.pick_precision(options.precision, self.device)
        devices.configure_threads()
        self.deepest = max(list(self.content_layers) + list(self.style_layers), key=layer_index)
        self.pooling, self.weights = options.pooling, options.weights
        channels_last = options.channels_last
        if channels_last is None:
            workload = f"vgg19-{self.deepest}-{self.pooling}-{len(self.style_layers)}-style-layers"
            channels_last = autotune.channels_last_for(
                self.device,
                self.precision,
                workload,
                measure=lambda: autotune.vgg_measure(
                    list(self.content_layers), list(self.style_layers), self.pooling, self.weights
                ),
                say=autotune.stderr_note if options.progress else None,
            )
        self.channels_last = channels_last and self.device.type != "mps"
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self._model = None
        self.load_seconds: Optional[float] = None

    @property
    def model(self) -> torch.nn.Module:
        """The network, loaded on first use (``load_seconds`` then says how long that took)."""
        if self._model is None:
            started = time.perf_counter()
            self._model = load_vgg19(self.deepest, self.pooling, self.weights, self.device, self.channels_last)
            self.load_seconds = time.perf_counter() - started
        return self._model

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
