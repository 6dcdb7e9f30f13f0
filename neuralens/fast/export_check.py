"""Checking an exported style model against PyTorch: the Tübingen photo at a normal and an odd size through
both, the largest difference reported, and an export refused above the tolerance."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, List, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from ..errors import NeuralensError
from ..imageio import SAMPLES, image_to_tensor
from .network import StyleNetwork

if TYPE_CHECKING:
    from .export import ExportResult

# Largest difference from PyTorch fp32 accepted by the check (outputs are in [0, 1]; one 8-bit level is 0.0039).
# Measured: about 1e-5 for ONNX (onnxruntime's fused kernels sum in another order), 0 for TorchScript.
TOLERANCE = 1e-3
# The check runs on the Tübingen photo at these (height, width): 4:3 with the long side 256, and both sides odd
# (the in-graph padding is exercised).
CHECK_SIZES: Tuple[Tuple[int, int], ...] = ((192, 256), (189, 251))
CHECK_IMAGE = SAMPLES / "tubingen.jpg"
INSTALL_HINT = "pip install neuralens[export]"


def onnxruntime_runner(path: Path):
    """A function running the ONNX file at ``path`` with onnxruntime on the CPU, or None when onnxruntime is
    not installed."""
    try:
        import onnxruntime  # noqa: PLC0415
    except ImportError:
        return None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NeuralensError(f"onnxruntime cannot load the export: {detail}") from None
    return lambda x: session.run(None, {"image": x})[0]


def check_images(sizes: Sequence[Tuple[int, int]] = CHECK_SIZES) -> List[torch.Tensor]:
    """The Tübingen photo as (1, 3, h, w) tensors, one per (h, w) in ``sizes``: centre-cropped to each aspect
    ratio, then resized (Lanczos)."""
    photo = Image.open(CHECK_IMAGE).convert("RGB")
    out = []
    for h, w in sizes:
        scale = min(photo.width / w, photo.height / h)
        cw, ch = round(w * scale), round(h * scale)
        left, top = (photo.width - cw) // 2, (photo.height - ch) // 2
        crop = photo.crop((left, top, left + cw, top + ch)).resize((w, h), Image.LANCZOS)
        out.append(image_to_tensor(crop))
    return out


def check_exported(result: ExportResult, network: StyleNetwork, run, sizes: Sequence[Tuple[int, int]]) -> None:
    """Fill in ``result``'s check (or its note when ``run`` is None); NeuralensError above the tolerance."""
    if run is None:
        result.note = f"onnxruntime is not installed: the export was not checked ({INSTALL_HINT})"
        return
    started = time.perf_counter()
    sizes = [(int(h), int(w)) for h, w in sizes]
    worst = 0.0
    for image in check_images(sizes):
        with torch.inference_mode():
            expected = network(image).clamp(0.0, 1.0).numpy()
        try:
            got = run(image.numpy())
        except Exception as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise NeuralensError(f"the export fails on a {image.shape[2]}x{image.shape[3]} image: {detail}") from None
        if got.shape != expected.shape:
            raise NeuralensError(f"the export gives shape {tuple(got.shape)} for an input of {tuple(expected.shape)}")
        worst = max(worst, float(np.abs(got - expected).max()))
    result.max_abs_diff = worst
    result.checked_on = sizes
    result.check_seconds = time.perf_counter() - started
    if not worst <= TOLERANCE:  # also catches NaN
        raise NeuralensError(
            f"{result.path}: the export differs from PyTorch by {worst:.3g} (more than {TOLERANCE:g}); not written"
        )
