"""What a classification backbone offers: named feature layers, a fixed part and a last block to fine-tune.

Transfer learning (``neuralens.classify``) needs four things of a pretrained ImageNet CNN, whatever its
architecture: the names of the layers whose activations make good features, a forward pass to one of them,
a way to split that pass into a frozen front and a trainable last block (``--fine-tune``), and a fingerprint
of its weights (feature caches and saved classifiers are only valid for the exact weights they came from).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Tuple

import torch
from torch import nn

from ..errors import NeuralensError
from ..labelled import file_sha256


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


def load_state_file(path: Path) -> dict:
    """A torch weight file as a state dict (a saved module or {"state_dict": ...} unwrapped), read with
    weights_only; NeuralensError (one line) for a missing or unreadable file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NeuralensError(f"{path}: no such weight file") from None
    except Exception as exc:  # torch raises many types for a bad file
        raise NeuralensError(f"{path}: not a readable torch weight file ({type(exc).__name__})") from None
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise NeuralensError(f"{path}: expected a dict of tensors (a state dict)")
    return state


@functools.lru_cache(maxsize=8)
def file_digest(path: str) -> str:
    """First 16 hex digits of the SHA-256 of a weight file (the fingerprint's hash), cached per path."""
    return file_sha256(Path(path))[:16]
