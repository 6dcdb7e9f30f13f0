"""Exporting a style model for other runtimes: ONNX (onnxruntime, browsers, phones) and TorchScript (C++/Python
without neuralens), each checked against PyTorch before the file is put in place.

    from neuralens.fast.export import export_onnx, export_torchscript
    result = export_onnx("starry-night", "starry-night.onnx")    # a built-in name, a model file or a StyleModel
    print(result.max_abs_diff)                                    # vs PyTorch fp32, on the Tübingen photo

The exported graph takes a float32 RGB image batch (N, 3, H, W) in [0, 1] named ``image`` and returns the
stylized batch ``stylized`` of the same shape, clamped to [0, 1]. N, H and W are free: the pad to a multiple of 4
and the crop back are part of the graph (the network's own ``forward`` decides whether to pad with a Python
``if``, which a trace would freeze at the example's size, so the export runs the same steps without the branch).
The weights are fp32 (the model file keeps fp16; they are widened on loading). Images need sides of at least
5 pixels, as in PyTorch.

ONNX needs ``onnx`` (and ``onnxscript`` for the dynamo exporter), the check needs ``onnxruntime``:
``pip install neuralens[export]``. Without onnxruntime the export is written unchecked and the result says so.
See docs/fast-export.md.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..errors import NeuralensError
from ..imageio import check_writable_folder
from ..options import check as check_options
from ..options import option
from .export_check import CHECK_SIZES, INSTALL_HINT, TOLERANCE, check_exported, onnxruntime_runner
from .model import MODEL_SUFFIX, StyleModel, load_model
from .network import StyleNetwork

ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".torchscript", ".ts")
FORMATS = ("onnx", "torchscript")
EXPORTERS = ("auto", "legacy", "dynamo")
# Opsets (torch 2.13): the pad amounts are computed in the graph, which ONNX's Pad takes as an input from opset
# 11 on; the legacy (TorchScript-based) exporter writes up to 20, the dynamo one 18 to 23.
MIN_OPSET = 11
LEGACY_MAX_OPSET = 20
DYNAMO_MIN_OPSET = 18
MAX_OPSET = 23
ModelLike = Union[StyleModel, StyleNetwork, str, os.PathLike]


@dataclass
class ExportOptions:
    """The settings of an export (``neuralens models export``)."""

    opset: Optional[int] = option(
        None,
        "ONNX opset to write",
        kind="int",
        minimum=MIN_OPSET,
        maximum=MAX_OPSET,
        none_help=f"the exporter's default: 20 with the legacy exporter, {DYNAMO_MIN_OPSET}+ with dynamo",
    )
    check: bool = option(True, "run the export on a real photo and compare it with PyTorch fp32")
    exporter: str = option(
        "auto",
        "ONNX exporter: legacy (TorchScript-based, fast), dynamo (torch.export-based, needs onnxscript); "
        "auto: legacy up to opset 20",
        choices=EXPORTERS,
    )

    def validate(self) -> ExportOptions:
        check_options(self)
        return self


@dataclass
class ExportResult:
    """What an export wrote and how closely it matches PyTorch.

    ``max_abs_diff`` is over every pixel and channel of the check images (None when not checked, and then
    ``note`` says why); ``checked_on`` lists their (height, width)."""

    path: Path
    format: str  # onnx or torchscript
    bytes: int
    max_abs_diff: Optional[float]
    checked_on: List[Tuple[int, int]]
    seconds: float  # export and check together
    model: str = "model"  # the model's name
    width: int = 0  # the network's width
    method: str = ""  # how it was made: legacy or dynamo (ONNX), script or trace (TorchScript)
    opset: Optional[int] = None  # ONNX only
    check_seconds: float = 0.0
    tolerance: float = TOLERANCE
    note: Optional[str] = None  # why the check was skipped
    inputs: Dict[str, Any] = field(default_factory=dict)  # name -> shape (symbolic sizes as text)

    @property
    def checked(self) -> bool:
        return self.max_abs_diff is not None

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format,
            "bytes": self.bytes,
            "max_abs_diff": self.max_abs_diff,
            "checked_on": [list(size) for size in self.checked_on],
            "seconds": round(self.seconds, 3),
            "model": self.model,
            "width": self.width,
            "method": self.method,
            "opset": self.opset,
            "check_seconds": round(self.check_seconds, 3),
            "tolerance": self.tolerance,
            "note": self.note,
            "inputs": self.inputs,
        }


class ExportedNetwork(nn.Module):
    """A ``StyleNetwork`` as exported: the same steps as its ``forward`` with the padding unconditional (a pad of
    0 is a no-op, so the graph is right for every size), and the output clamped to [0, 1].

    Reflection padding only: the network's ``forward`` falls back to replicate padding for sides of
    its border margin + 3 pixels or fewer, which this graph refuses."""

    def __init__(self, network: StyleNetwork):
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[2], image.shape[3]
        pad_h = (4 - h % 4) % 4
        pad_w = (4 - w % 4) % 4
        m = self.network.border_margin
        x = F.pad(image - 0.5, (m, m + pad_w, m, m + pad_h), mode="reflect")
        y = self.network.body(x) + 0.5
        return y[:, :, m : m + h, m : m + w].clamp(0.0, 1.0)


class _Clamped(nn.Module):
    """The network's own ``forward`` (scripted with its branch), clamped to [0, 1]: the TorchScript export."""

    def __init__(self, network: StyleNetwork):
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.network(image).clamp(0.0, 1.0)


# --- the public functions ---------------------------------------------------------------------------------
def export_onnx(
    model_or_name_or_path: ModelLike,
    output: Union[str, os.PathLike],
    opset: Optional[int] = None,
    check: bool = True,
    exporter: str = "auto",
    *,
    check_sizes: Sequence[Tuple[int, int]] = CHECK_SIZES,
) -> ExportResult:
    """Write the model as ONNX at ``output`` (dynamic batch, height and width; fp32 weights) and, with ``check``,
    compare onnxruntime's output with PyTorch fp32 on the Tübingen photo at ``check_sizes`` (height, width). The
    file appears only once complete and checked; a difference above ``TOLERANCE`` is a NeuralensError and nothing
    is written.

    ``exporter``: 'legacy' (torch's TorchScript-based exporter: a second, needs ``onnx``), 'dynamo' (torch.export-
    based, tens of seconds on a CPU, needs ``onnx`` and ``onnxscript``), 'auto' (legacy up to opset 20)."""
    started = time.perf_counter()
    options = ExportOptions(opset=opset, check=check, exporter=exporter).validate()
    output = _check_output(output, "onnx")
    method = _pick_exporter(options)
    onnx = _require("onnx", "ONNX export")
    if method == "dynamo":
        _require("onnxscript", "ONNX export with the dynamo exporter")
    network, name = _network(model_or_name_or_path)
    tmp = _temporary(output)
    try:
        _write_onnx(ExportedNetwork(network).eval(), tmp, method, options.opset)
        written = onnx.load(str(tmp))
        _add_metadata(written, network, name)
        onnx.save(written, str(tmp))
        actual_opset = next((o.version for o in written.opset_import if o.domain in ("", "ai.onnx")), None)
        inputs = {
            i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in written.graph.input
        }
        result = ExportResult(
            output, "onnx", 0, None, [], 0.0, name, network.width, method, actual_opset, inputs=inputs
        )
        if options.check:
            check_exported(result, network, onnxruntime_runner(tmp), check_sizes)
        os.replace(tmp, output)
    except OSError as exc:  # a full disk, a folder that went away
        raise NeuralensError(f"{output}: cannot write it ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    result.bytes = output.stat().st_size
    result.seconds = time.perf_counter() - started
    return result


def export_torchscript(
    model_or_name_or_path: ModelLike,
    output: Union[str, os.PathLike],
    check: bool = True,
    *,
    check_sizes: Sequence[Tuple[int, int]] = CHECK_SIZES,
) -> ExportResult:
    """Write the model as TorchScript at ``output`` (``torch.jit.load`` runs it without neuralens; fp32 weights,
    output clamped to [0, 1]) and, with ``check``, reload it and compare with the eager network on the Tübingen
    photo. Scripted (the network's branch on the size is kept); traced only if scripting fails."""
    started = time.perf_counter()
    ExportOptions(check=check).validate()
    output = _check_output(output, "torchscript")
    network, name = _network(model_or_name_or_path)
    tmp = _temporary(output)
    try:
        with quiet_exporter():
            try:
                program, method = torch.jit.script(_Clamped(network).eval()), "script"
            except Exception:  # a network change TorchScript cannot compile: fall back to a shape-free trace
                example = torch.rand(1, 3, 64, 64)
                program, method = torch.jit.trace(ExportedNetwork(network).eval(), example), "trace"
            meta = json.dumps(
                {"neuralens": __version__, "model": name, "architecture": network.architecture, "width": network.width}
            )
            torch.jit.save(program, str(tmp), _extra_files={"neuralens.json": meta})
        result = ExportResult(output, "torchscript", 0, None, [], 0.0, name, network.width, method)
        result.inputs = {"image": ["batch", 3, "height", "width"]}
        if check:
            with quiet_exporter():
                loaded = torch.jit.load(str(tmp), map_location="cpu").eval()

            def run(x: np.ndarray) -> np.ndarray:
                # Plain interpretation: the JIT's profiling passes would recompile for each check size.
                with torch.jit.optimized_execution(False), torch.inference_mode():
                    return loaded(torch.from_numpy(x)).numpy()

            check_exported(result, network, run, check_sizes)
        os.replace(tmp, output)
    except OSError as exc:  # a full disk, a folder that went away
        raise NeuralensError(f"{output}: cannot write it ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    result.bytes = output.stat().st_size
    result.seconds = time.perf_counter() - started
    return result


def format_for(output: Union[str, os.PathLike]) -> str:
    """'onnx' or 'torchscript' from the output's suffix; NeuralensError (one line) for any other."""
    suffix = Path(output).suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in TORCHSCRIPT_SUFFIXES:
        return "torchscript"
    if suffix == MODEL_SUFFIX:
        raise NeuralensError(
            f"{output}: {MODEL_SUFFIX} is the neuralens model format; for TorchScript use .torchscript or .ts, "
            f"for ONNX .onnx"
        )
    known = ", ".join(ONNX_SUFFIXES + TORCHSCRIPT_SUFFIXES)
    raise NeuralensError(f"{output}: unknown export format '{suffix}' (use one of {known})")


def export_model(
    model_or_name_or_path: ModelLike,
    output: Union[str, os.PathLike],
    opset: Optional[int] = None,
    check: bool = True,
    exporter: str = "auto",
    *,
    check_sizes: Sequence[Tuple[int, int]] = CHECK_SIZES,
) -> ExportResult:
    """``export_onnx`` or ``export_torchscript``, chosen by the suffix of ``output`` (``format_for``)."""
    if format_for(output) == "onnx":
        return export_onnx(
            model_or_name_or_path, output, opset=opset, check=check, exporter=exporter, check_sizes=check_sizes
        )
    if opset is not None:
        raise NeuralensError(f"{output}: an opset is for ONNX exports (.onnx), not TorchScript")
    return export_torchscript(model_or_name_or_path, output, check=check, check_sizes=check_sizes)


# --- pieces -----------------------------------------------------------------------------------------------
def _network(model: ModelLike) -> Tuple[StyleNetwork, str]:
    """A private fp32, contiguous, CPU, eval-mode copy of the network, and the model's name."""
    if isinstance(model, StyleModel):
        network, name = model.network, model.name
    elif isinstance(model, StyleNetwork):
        network, name = model, "model"
    else:
        loaded = load_model(model, device="cpu", precision="fp32")
        network, name = loaded.network, loaded.name
    network = copy.deepcopy(network).float().cpu().to(memory_format=torch.contiguous_format).eval()
    for p in network.parameters():
        p.requires_grad_(False)
    return network, name


def _check_output(output: Union[str, os.PathLike], fmt: str) -> Path:
    output = Path(output)
    if format_for(output) != fmt:
        label = "an ONNX" if fmt == "onnx" else "a TorchScript"
        raise NeuralensError(f"{output}: not {label} file name (use {_suffixes(fmt)})")
    if output.is_dir():
        raise NeuralensError(f"{output}: is a folder, not a file name")
    check_writable_folder(output.parent)
    return output


def _suffixes(fmt: str) -> str:
    return " or ".join(ONNX_SUFFIXES if fmt == "onnx" else TORCHSCRIPT_SUFFIXES)


def _temporary(output: Path) -> Path:
    """A temporary name in the output's folder (so the final rename is atomic), with the output's suffix."""
    return output.with_name(f".{output.stem}.{os.getpid()}.tmp{output.suffix}")


def _pick_exporter(options: ExportOptions) -> str:
    opset, exporter = options.opset, options.exporter
    if exporter == "auto":
        return "dynamo" if opset is not None and opset > LEGACY_MAX_OPSET else "legacy"
    if exporter == "legacy" and opset is not None and opset > LEGACY_MAX_OPSET:
        raise NeuralensError(
            f"the legacy ONNX exporter writes opsets {MIN_OPSET}-{LEGACY_MAX_OPSET}; use --exporter dynamo for {opset}"
        )
    if exporter == "dynamo" and opset is not None and opset < DYNAMO_MIN_OPSET:
        raise NeuralensError(
            f"the dynamo ONNX exporter writes opsets {DYNAMO_MIN_OPSET}-{MAX_OPSET}; use --exporter legacy for {opset}"
        )
    return exporter


def _require(module: str, purpose: str):
    try:
        return __import__(module)
    except ImportError:
        raise NeuralensError(f"{purpose} needs the {module} package: {INSTALL_HINT}") from None


@contextlib.contextmanager
def quiet_exporter():
    """The exporters' deprecation and tracer warnings, progress prints and log lines kept off the user's screen
    (their errors still raise)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _write_onnx(module: nn.Module, path: Path, method: str, opset: Optional[int]) -> None:
    example = torch.rand(1, 3, 64, 64)
    names = {"input_names": ["image"], "output_names": ["stylized"]}
    try:
        with quiet_exporter(), torch.no_grad():
            if method == "legacy":
                axes = {0: "batch", 2: "height", 3: "width"}
                torch.onnx.export(
                    module,
                    (example,),
                    str(path),
                    dynamo=False,
                    opset_version=opset,
                    dynamic_axes={"image": axes, "stylized": axes},
                    do_constant_folding=True,
                    **names,
                )
            else:
                dim = torch.export.Dim.DYNAMIC
                torch.onnx.export(
                    module,
                    (example,),
                    str(path),
                    dynamo=True,
                    opset_version=opset,
                    dynamic_shapes={"image": {0: dim, 2: dim, 3: dim}},
                    external_data=False,
                    verbose=False,
                    **names,
                )
    except NeuralensError:
        raise
    except Exception as exc:  # the exporters raise many kinds; the first line says what went wrong
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NeuralensError(f"ONNX export ({method} exporter, opset {opset or 'default'}) failed: {detail}") from None


def _add_metadata(proto, network: StyleNetwork, name: str) -> None:
    proto.doc_string = (
        f"neuralens fast style model '{name}' ({network.architecture} network, width {network.width}). "
        "Input 'image': float32 (N, 3, H, W) RGB in [0, 1], H and W >= 5; output 'stylized': same shape, in [0, 1]."
    )
    # The dynamo exporter names the free sizes s0, s1, ...: name them as the legacy exporter does, everywhere.
    names = {}
    for value in list(proto.graph.input) + list(proto.graph.output):
        for dim, label in zip(value.type.tensor_type.shape.dim, ("batch", None, "height", "width")):
            if label and dim.dim_param and dim.dim_param != label:
                names[dim.dim_param] = label
    for value in list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]
    proto.producer_name = "neuralens"
    proto.producer_version = __version__
    meta = {
        "neuralens.model": name,
        "neuralens.architecture": network.architecture,
        "neuralens.width": str(network.width),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
