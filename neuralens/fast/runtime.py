"""Running a style network on the CPU with onnxruntime instead of PyTorch.

onnxruntime runs these small convolutional networks faster than PyTorch's CPU kernels (measured on 2 cores at
512x512, one run, interleaved: ShuffleNet width 24 in 221 ms against 599 ms with PyTorch fp32 on a busy
machine, 73 against 95 ms for width 16 on a quiet one; benchmarks/README.md §6). The network is exported once
(``export.export_onnx``, a few seconds) into the cache folder, named by a hash of its weights, so later runs
load it at once; when the cache cannot be written the export goes to a temporary folder for this process.

    runner = OnnxRunner(network)          # a StyleNetwork (fp32, CPU)
    stylized = runner(image)              # (N, 3, H, W) float tensor in [0, 1] -> same shape, clamped
"""

from __future__ import annotations

import hashlib
import importlib.util
import tempfile
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from .. import __version__
from ..cache import cache_folder
from ..errors import NeuralensError
from .network import StyleNetwork

ENGINES = ("auto", "torch", "onnxruntime")
INSTALL_HINT = "pip install onnx onnxruntime"


def onnxruntime_available() -> bool:
    """True when onnxruntime (to run) and onnx (to export with torch) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def pick_engine(name: str, device: torch.device, precision: str) -> str:
    """Resolve 'auto' to 'onnxruntime' for fp32 or int8 on the CPU when it is installed, else 'torch'.
    NeuralensError for an unknown engine, or onnxruntime asked for where it cannot run here (a GPU, bf16, not
    installed)."""
    if name not in ENGINES:
        raise NeuralensError(f"unknown engine '{name}' (choose from {', '.join(ENGINES)})")
    usable = device.type == "cpu" and precision in ("fp32", "int8")
    if name == "auto":
        return "onnxruntime" if usable and onnxruntime_available() else "torch"
    if name == "onnxruntime":
        if not usable:
            raise NeuralensError("--engine onnxruntime runs fp32 on the CPU only (use --device cpu --precision fp32)")
        if not onnxruntime_available():
            raise NeuralensError(f"--engine onnxruntime needs the onnx and onnxruntime packages: {INSTALL_HINT}")
    return name


def network_key(network: StyleNetwork) -> str:
    """A name for the exported file: the architecture, width and a hash of the weights and of the versions that
    wrote it (a new torch or neuralens exports afresh), and of the graph around the network (its border margin)."""
    versions = f"{network.architecture}/{network.width}/{torch.__version__}/{__version__}/margin{network.border_margin}"
    return f"{network.architecture}-{network.width}-{state_digest(versions, network.state_dict())}"


def state_digest(text: str, state: Dict[str, torch.Tensor]) -> str:
    """20 hex digits of a SHA-256 of ``text`` and every tensor of ``state`` (names and fp32 values)."""
    digest = hashlib.sha256(text.encode())
    for name, value in sorted(state.items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def exported_file(network: StyleNetwork) -> Path:
    """The network as an ONNX file: from the cache, or exported into it (or into a temporary folder)."""
    from .export import export_onnx  # noqa: PLC0415  (export imports the model module, which imports this)

    name = f"{network_key(network)}.onnx"
    folder = cache_folder() / "onnx"
    path = folder / name
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        export_onnx(network, path, check=False, exporter="legacy")
        return path
    except (OSError, NeuralensError):  # a read-only home, a full disk: export for this process only
        path = Path(tempfile.mkdtemp(prefix="neuralens-onnx-")) / name
        export_onnx(network, path, check=False, exporter="legacy")
        return path


def cpu_session(path: Path):
    """An onnxruntime session for the ONNX file ``path`` on the CPU, with torch's thread count."""
    import onnxruntime  # noqa: PLC0415

    settings = onnxruntime.SessionOptions()
    settings.intra_op_num_threads = torch.get_num_threads()
    # Idle worker threads sleep instead of spinning: spinning ones took the cores from whatever ran next (the
    # video's flow, torch, other processes). Measured on the shared 2-core machine, a 320x240 pass took 34 ms
    # spinning and 18 ms sleeping (95 and 52 when it was loaded; benchmarks/results/video_flicker_speed*.md).
    settings.add_session_config_entry("session.intra_op.allow_spinning", "0")
    settings.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(str(path), settings, providers=["CPUExecutionProvider"])


class SessionRunner:
    """The ONNX file ``path`` run by onnxruntime on the CPU (``cpu_session``): (N, C, H, W) float tensor -> float
    tensor, fed to the graph's input ``input_name``."""

    def __init__(self, path: Path, input_name: str):
        self.path, self.input_name = path, input_name
        self.session = cpu_session(path)

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(inputs.detach().cpu().float().numpy())
        (out,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(out)


class OnnxRunner(SessionRunner):
    """A style network's exported fp32 graph: (N, 3, H, W) float in [0, 1] -> the stylized batch, clamped to
    [0, 1] (the graph clamps)."""

    def __init__(self, network: StyleNetwork):
        super().__init__(exported_file(network), "image")
