"""What a classification backbone offers: named feature layers, a fixed part and a last block to fine-tune.

Transfer learning (``neuralens.classify``) needs four things of a pretrained ImageNet CNN, whatever its
architecture: the names of the layers whose activations make good features, a forward pass to one of them,
a way to split that pass into a frozen front and a trainable last block (``--fine-tune``), and a fingerprint
of its weights (feature caches and saved classifiers are only valid for the exact weights they came from).
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn


class Backbone(nn.Module):
    """A frozen pretrained CNN seen as a feature extractor.

    Subclasses set ``name`` (the ``--backbone`` choice), ``layers`` (feature layer name -> channels, in
    network order), ``default_layer``, ``input_size`` (the side length the network was trained at; images
    are resized so that their short side has it) and ``fingerprint`` (name + a hash of the weights), and
    implement ``split(layer)``. Inputs are RGB in [0, 1], shape (B, 3, H, W); each backbone applies its own
    preprocessing.
    """

    name: str = ""
    layers: Dict[str, int] = {}
    default_layer: str = ""
    input_size: int = 224
    fingerprint: str = ""

    def split(self, layer: str) -> Tuple[nn.Module, nn.Module]:
        """(front, block): ``block(front(images))`` is the activation of ``layer``; ``block`` holds the
        last block's layers up to ``layer`` (what ``--fine-tune`` trains), ``front`` everything before it,
        preprocessing included. Both share this backbone's parameters. NeuralensError for an unknown layer."""
        raise NotImplementedError

    def features(self, images: torch.Tensor, layer: str) -> torch.Tensor:
        """The activation of ``layer`` for ``images``: (B, C, h, w)."""
        front, block = self.split(layer)
        return block(front(images))
