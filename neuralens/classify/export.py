"""``neuralens classify export``: a classifier as one ONNX graph (backbone front, last block, pooling, head,
softmax), checked against onnxruntime on the bundled sample photos.

The graph takes ``image``: float32 (N, 3, S, S) RGB in [0, 1], S the backbone's input size (resize the short
side to S and centre-crop, as ``features.centre_view`` does), and gives ``probabilities`` (N, K) in the class
order stored in the metadata (``neuralens.classes``, a JSON list)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import NeuralensError
from ..fast.export import quiet_exporter
from ..fast.export_check import onnxruntime_runner
from ..imageio import SAMPLES, check_output_path
from .features import image_batch
from .model import Classifier

# Probabilities are in [0, 1]; measured differences from PyTorch are about 1e-6.
TOLERANCE = 1e-4


@dataclass
class ClassifierExport:
    """An exported classifier: where, how big, and the largest probability difference from PyTorch."""

    path: Path
    bytes: int
    max_abs_diff: Optional[float]
    seconds: float
    opset: int

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "max_abs_diff": self.max_abs_diff,
            "seconds": round(self.seconds, 3),
            "opset": self.opset,
            "tolerance": TOLERANCE,
        }


class ClassifierNetwork(nn.Module):
    """Image in [0, 1] -> class probabilities: front, block, global average pooling, head, softmax."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        front, block, _ = classifier.network()
        self.front, self.block, self.head = front.cpu(), block.cpu(), classifier.head.cpu()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pooled = self.block(self.front(image)).mean(dim=(2, 3))
        return torch.softmax(self.head(pooled), dim=1)


def export_onnx(
    classifier: Classifier, output: Union[str, os.PathLike], opset: int = 17, check: bool = True
) -> ClassifierExport:
    """Write ``classifier`` as ONNX to ``output`` (atomically) and, with ``check``, compare it with PyTorch on the
    sample photos through onnxruntime (NeuralensError above TOLERANCE). Returns a ClassifierExport."""
    started = time.perf_counter()
    path = Path(output)
    if path.suffix.lower() != ".onnx":
        raise NeuralensError(f"{path}: the export is written as .onnx")
    check_output_path(path.with_suffix(".png"))
    try:
        import onnx  # noqa: PLC0415
    except ImportError:
        raise NeuralensError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    network = ClassifierNetwork(classifier).eval()
    size = classifier.input_size
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with quiet_exporter(), torch.no_grad():
            torch.onnx.export(
                network,
                (torch.rand(1, 3, size, size),),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=["image"],
                output_names=["probabilities"],
                dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many kinds; its first line says what went wrong
        tmp.unlink(missing_ok=True)
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NeuralensError(f"ONNX export failed: {detail}") from None
    proto = onnx.load(str(tmp))
    proto.producer_name, proto.producer_version = "neuralens", __version__
    proto.doc_string = (
        f"neuralens classifier on {classifier.backbone} {classifier.layer}. Input 'image': float32 (N, 3, {size}, "
        f"{size}) RGB in [0, 1]; output 'probabilities': (N, {len(classifier.classes)}) in the order of "
        "metadata neuralens.classes."
    )
    for key, value in {
        "neuralens.classes": json.dumps(classifier.classes),
        "neuralens.backbone": classifier.backbone,
        "neuralens.layer": classifier.layer,
        "neuralens.input_size": str(size),
    }.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(tmp))
    difference = None
    if check:
        run = onnxruntime_runner(tmp)
        if run is None:
            tmp.unlink(missing_ok=True)
            raise NeuralensError("checking the export needs onnxruntime: pip install onnxruntime (or --no-check)")
        images = image_batch(sorted(SAMPLES.glob("*.jpg")), size)
        with torch.no_grad():
            expected = network(images).numpy()
        difference = float(np.abs(run(images.numpy()) - expected).max())
        if difference > TOLERANCE:
            tmp.unlink(missing_ok=True)
            raise NeuralensError(f"the ONNX export differs from PyTorch by {difference:.2g} (over {TOLERANCE:g})")
    os.replace(tmp, path)
    return ClassifierExport(path, path.stat().st_size, difference, time.perf_counter() - started, opset)
