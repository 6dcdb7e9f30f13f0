"""The small weights-file format that style models, AdaIN decoders and classifiers share: a dict with "format",
"version", "info", "state" (tensors, fp16 where that loses nothing visible) and the kind's own fields, read with
``torch.load(weights_only=True)`` (no pickled code runs) and written atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import torch
from torch import nn

from .errors import NeuralensError


@dataclass(frozen=True)
class FileKind:
    """What one kind of file is called in messages, and the format name and newest version it is read with."""

    format: str
    version: int
    file: str  # "model file": no such ..., is a folder, not a ...
    noun: str  # "style model": not a readable neuralens ...
    foreign: str  # what a file of another kind is told it is not
    incomplete: str
    size_field: Optional[str] = "width"  # a positive whole number the file must have (the network's width)


def half_state(network: nn.Module) -> Dict[str, torch.Tensor]:
    """The weights as stored: fp16 on the CPU (half the size; measured: outputs within 1/255 of fp32)."""
    return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in network.state_dict().items()}


def write(data: dict, path: Union[str, os.PathLike]) -> Path:
    """``torch.save`` ``data`` to ``path`` through a temporary file and a rename; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return path


def read(path: Union[str, os.PathLike], kind: FileKind) -> dict:
    """The checked contents of a file of ``kind``; NeuralensError (one line) for a missing, corrupt or foreign
    file, one written by a newer neuralens, or one without weights (or without its kind's ``size_field``)."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NeuralensError(f"{path}: no such {kind.file}") from None
    except IsADirectoryError:
        raise NeuralensError(f"{path}: is a folder, not a {kind.file}") from None
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise NeuralensError(f"{path}: not a readable neuralens {kind.noun} ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != kind.format:
        raise NeuralensError(f"{path}: {kind.foreign}")
    version = data.get("version")
    if not isinstance(version, int) or version > kind.version:
        word = kind.file.split()[0]
        raise NeuralensError(
            f"{path}: made by a newer neuralens ({word} format {version}, this one reads {kind.version}); "
            "upgrade neuralens"
        )
    size = data.get(kind.size_field) if kind.size_field else 1
    if not isinstance(data.get("state"), dict) or not isinstance(size, int) or size <= 0:
        raise NeuralensError(f"{path}: {kind.incomplete}")
    return data
