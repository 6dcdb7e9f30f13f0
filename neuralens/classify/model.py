"""A trained classifier: the backbone it reads (by name and weights fingerprint), the layer, the classes in
their stored order, the head, and the fine-tuned last block if there is one. One file (``.pt``, read with
``torch.load(weights_only=True)``), written atomically through ``neuralens.weightsfile``."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from .. import devices, weightsfile
from ..backbone import BACKBONES, Backbone, load_backbone
from ..errors import NeuralensError
from ..imageio import ImageLike
from .features import FeatureCache, extract, image_batch
from .head import Head
from .options import HEADS

FORMAT = "neuralens-classifier"
VERSION = 1
MODEL_SUFFIX = ".pt"
FILE_KIND = weightsfile.FileKind(
    FORMAT,
    VERSION,
    "classifier file",
    "classifier",
    "not a neuralens classifier (train one with `neuralens classify train`)",
    "incomplete neuralens classifier file",
    size_field=None,
)


@dataclass
class Prediction:
    """What the classifier says about one image: the best label and its probability, and the top-k."""

    label: str
    probability: float
    top: List[Tuple[str, float]]
    source: Optional[str] = None

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "label": self.label,
            "probability": self.probability,
            "top": [{"label": name, "probability": p} for name, p in self.top],
        }


@dataclass
class Classifier:
    """A trained classifier. ``predict(image)`` -> Prediction; ``save(path)``; ``Classifier.load(path)``."""

    classes: List[str]
    backbone: str
    fingerprint: str
    layer: str
    input_size: int
    head: Head
    block_state: Optional[Dict[str, torch.Tensor]] = None  # the fine-tuned last block, None when not fine-tuned
    info: Dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    report: Optional[Any] = field(default=None, repr=False, compare=False)  # TrainReport, right after training
    _network: Optional[Tuple[nn.Module, nn.Module, torch.device]] = field(default=None, repr=False)

    @property
    def fine_tuned(self) -> bool:
        return self.block_state is not None

    # --- the network ---------------------------------------------------------------------------------
    def load_backbone(self) -> Backbone:
        """The backbone this classifier was trained on; NeuralensError if the installed weights differ."""
        backbone = load_backbone(self.backbone, devices.pick_device(self.device))
        if backbone.fingerprint != self.fingerprint:
            raise NeuralensError(
                f"this classifier was trained on {self.backbone} weights {self.fingerprint}, but the installed "
                f"ones are {backbone.fingerprint}; retrain it here"
            )
        if self.layer not in backbone.layers:
            raise NeuralensError(f"the classifier reads layer '{self.layer}', which {self.backbone} does not have")
        channels = backbone.layers[self.layer]
        if channels != self.head.mean.numel():
            raise NeuralensError(
                f"the head expects {self.head.mean.numel()} features, {self.backbone} {self.layer} gives {channels}"
            )
        return backbone

    def network(self) -> Tuple[nn.Module, nn.Module, torch.device]:
        """(front, block, device) of the backbone, the block with the fine-tuned weights if any; built once."""
        if self._network is None:
            backbone = self.load_backbone()
            front, block = backbone.split(self.layer)
            if self.block_state is not None:
                block = copy.deepcopy(block)
                try:
                    block.load_state_dict({k: v.float() for k, v in self.block_state.items()})
                except RuntimeError:
                    raise NeuralensError("the fine-tuned block does not fit the backbone's last block") from None
                block.eval()
            self._network = (front, block, devices.pick_device(self.device))
        return self._network

    def features(
        self,
        items: Sequence[Tuple[Path, str]],
        cache: Optional[os.PathLike] = None,
        batch_images: int = 16,
        progress: Optional[Callable[[int, int], None]] = None,
    ) -> Tuple[Dict[str, np.ndarray], List[Tuple[Path, str]]]:
        """Centre-view features of (path, content hash) items: cached when the block is the pretrained one.
        Returns ({hash: (1, C)}, [(path, reason) unreadable])."""
        front, block, device = self.network()
        feature_cache = None if self.fine_tuned else FeatureCache(self.fingerprint, self.layer, self.input_size, cache)
        return extract(
            nn.Sequential(front, block), self.input_size, items, 1, feature_cache, batch_images, device, progress
        )

    def probabilities_of_features(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (n, K) of features (n, C)."""
        with torch.no_grad():
            logits = self.head(torch.from_numpy(np.asarray(features, np.float32)))
        return torch.softmax(logits, dim=1).numpy()

    def probabilities(self, images: Sequence[ImageLike], batch_images: int = 16) -> np.ndarray:
        """Class probabilities (n, K) of images (paths or PIL images), in ``classes`` order."""
        front, block, device = self.network()
        out = []
        for start in range(0, len(images), batch_images):
            batch = image_batch(images[start : start + batch_images], self.input_size).to(device)
            with torch.no_grad():
                pooled = block(front(batch)).float().mean(dim=(2, 3)).cpu()
            out.append(self.probabilities_of_features(pooled.numpy()))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def prediction(self, probabilities: np.ndarray, top_k: int = 1, source: Optional[str] = None) -> Prediction:
        """A Prediction from one row of probabilities: the best label and the ``top_k`` best."""
        order = np.argsort(-probabilities, kind="stable")[: max(1, top_k)]
        top = [(self.classes[i], float(probabilities[i])) for i in order]
        return Prediction(top[0][0], top[0][1], top, source)

    def predict(self, image: ImageLike, top_k: int = 1) -> Prediction:
        """The label of one image (a path or a PIL image) with its probability, and the ``top_k`` best."""
        source = None if hasattr(image, "size") and not isinstance(image, (str, os.PathLike)) else str(image)
        return self.prediction(self.probabilities([image])[0], top_k, source)

    # --- the file ------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "classes": list(self.classes),
            "backbone": self.backbone,
            "fingerprint": self.fingerprint,
            "layer": self.layer,
            "input_size": self.input_size,
            "head": self.head.kind,
            "hidden": self.head.hidden if self.head.kind == "mlp" else None,
            "fine_tuned": self.fine_tuned,
            "info": self.info,
        }

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the classifier to ``path`` (atomically); returns the path."""
        data = {
            "format": FORMAT,
            "version": VERSION,
            **{k: v for k, v in self.to_dict().items() if k not in ("fine_tuned",)},
            "state": {k: v.detach().cpu().float() for k, v in self.head.state_dict().items()},
            "block": ({k: v.detach().cpu().half() for k, v in self.block_state.items()} if self.block_state else None),
        }
        return weightsfile.write(data, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], device: str = "auto") -> Classifier:
        """Read a classifier file; NeuralensError (one line) for a missing, corrupt or foreign one."""
        data = weightsfile.read(path, FILE_KIND)
        try:
            classes = [str(c) for c in data["classes"]]
            backbone, layer = str(data["backbone"]), str(data["layer"])
            head = Head(data["state"]["mean"].numel(), len(classes), str(data["head"]), int(data.get("hidden") or 256))
            head.load_state_dict(data["state"])
            classifier = cls(
                classes=classes,
                backbone=backbone,
                fingerprint=str(data["fingerprint"]),
                layer=layer,
                input_size=int(data["input_size"]),
                head=head.eval(),
                block_state=data.get("block"),
                info=dict(data.get("info") or {}),
                device=device,
            )
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError):
            raise NeuralensError(f"{path}: {FILE_KIND.incomplete}") from None
        if backbone not in BACKBONES:
            raise NeuralensError(
                f"{path}: trained on an unknown backbone '{backbone}' (this neuralens has {BACKBONES})"
            )
        if len(classes) < 2 or head.net[-1].out_features != len(classes) or head.kind not in HEADS:
            raise NeuralensError(f"{path}: {FILE_KIND.incomplete}")
        return classifier
