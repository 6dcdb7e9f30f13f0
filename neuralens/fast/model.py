"""A trained style model: the network, what it was trained on, and applying it to images.

The file is our own small format, read with ``torch.load(weights_only=True)`` (no pickled code runs):

    {"format": "neuralens-fast-style", "version": 2, "architecture": "shuffle", "width": 24, "info": {...},
     "state": {name: fp16 tensor}}

Version 1 files (before ``ShuffleNet``) have no "architecture": they hold Johnson networks and still load.

``info`` holds the painting's name, the training settings and results (see ``training.py``). Built-in models live
in ``neuralens/fast/models/`` (``NAME.pt`` with ``NAME.json``, the training report) and are named without the
extension: ``load_model("starry-night")``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from PIL import Image

from .. import devices, weightsfile
from ..errors import NeuralensError
from ..imageio import ImageLike, image_to_tensor, load_image, tensor_to_image
from ..style import color, tiling
from . import quantized, runtime
from .network import ARCHITECTURES, StyleNetwork, build_network

FORMAT = "neuralens-fast-style"
VERSION = 2
FILE_KIND = weightsfile.FileKind(
    FORMAT, VERSION, "model file", "style model", "not a neuralens style model", "incomplete neuralens style model"
)
MODEL_SUFFIX = ".pt"
BUILTIN = Path(__file__).resolve().parent / "models"
# Images with more pixels than this are stylized in overlapping tiles. Activations of a 32-wide Johnson network
# take about 1.3 KB per pixel in fp32 (a 2048x2048 image whole needs ~5.5 GB; tiles keep it near 1.5 GB); a
# ShuffleNet never works at full resolution: measured peak RSS with onnxruntime 1.05 GB at 2048x2048 and 3.3 GB
# at 4096x4096 (about 180 B per pixel), so it runs whole up to 4096x4096.
MAX_WHOLE_PIXELS = {"johnson": 1536 * 1536, "shuffle": 4096 * 4096}
TILE = 1024
TILE_OVERLAP = 64
PRESERVE_COLOR = (None, "luminance", "histogram")


def builtin_names() -> List[str]:
    """Names of the models shipped inside the package, sorted."""
    return sorted(p.stem for p in BUILTIN.glob(f"*{MODEL_SUFFIX}")) if BUILTIN.is_dir() else []


def resolve(name_or_path: Union[str, os.PathLike]) -> Path:
    """The file of a built-in model name or a path; NeuralensError naming the built-in models if neither."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtin = BUILTIN / f"{name_or_path}{MODEL_SUFFIX}"
    if builtin.is_file():
        return builtin
    known = ", ".join(builtin_names()) or "none installed"
    raise NeuralensError(f"{name_or_path}: no such model file or built-in model (built-in: {known})")


@dataclass
class StyleModel:
    """A feed-forward style network ready to stylize any number of images.

    ``device``/``precision`` as in ``stylize`` (auto: bf16 where the CPU or GPU runs it natively; on the CPU the
    narrow networks run in fp32, or in int8 where the CPU multiplies bytes natively, ``quantized.py``); ``engine``:
    'torch', 'onnxruntime' (fp32 or int8 on the CPU, faster: ``runtime.py``) or 'auto' (onnxruntime where it can
    run)."""

    network: StyleNetwork
    info: Dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None
    device: str = "auto"
    precision: str = "auto"
    engine: str = "auto"

    def __post_init__(self) -> None:
        self._device = devices.pick_device(self.device)
        self._precision = devices.pick_precision(self.precision, self._device)
        narrow = self.network.architecture == "shuffle" or self.network.width < 32
        if self.precision == "auto" and self._device.type == "cpu" and narrow:
            # Measured at 512x512 on the 2-core AMX CPU: a Johnson network of width 16 runs 438 ms in fp32 and
            # 884 ms in bf16 (too few channels for the bf16 matrix units to pay for the conversions); width 32
            # runs faster in bf16. ShuffleNet's layers are as narrow.
            self._precision = "fp32"
            if self.engine != "torch" and quantized.fast_here(self._device):
                # onnxruntime in int8 on a CPU that multiplies bytes natively: measured at 512x512 on the 2-core
                # EPYC with AVX512-VNNI, starry-night 78-84 ms in fp32, 37-44 ms in int8 (quantized.py).
                self._precision = "int8"
        self._engine = runtime.pick_engine(self.engine, self._device, self._precision)
        self._runner: Optional[Callable[[torch.Tensor], torch.Tensor]] = None  # made on first use (an export)
        devices.configure_threads()
        channels_last = self._precision == "bf16" or self._device.type == "cuda"
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network = self.network.to(self._device, memory_format=self._memory_format).eval()
        for p in self.network.parameters():
            p.requires_grad_(False)

    @property
    def name(self) -> str:
        """A built-in model's name is its file's (what `--model` takes); others keep the name they were trained under."""
        if self.path is not None and self.path.resolve().parent == BUILTIN.resolve():
            return self.path.stem
        return str(self.info.get("name") or (self.path.stem if self.path else "model"))

    @property
    def engine_in_use(self) -> str:
        """'torch' or 'onnxruntime': what ``engine`` resolved to."""
        return self._engine

    @torch.inference_mode()
    def stylize_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) in [0, 1] -> stylized (1, 3, H, W) in [0, 1], on the CPU; large images in tiles."""
        h, w = image.shape[2:]
        if h * w <= MAX_WHOLE_PIXELS[self.network.architecture]:
            return self._forward(image)
        out = torch.zeros(1, 3, h, w)
        weights = torch.zeros(1, 1, h, w)
        for box in tiling.tile_boxes(h, w, TILE, TILE_OVERLAP):
            y0, y1, x0, x1 = box
            weight = tiling.feather(box, h, w, TILE_OVERLAP)
            out[:, :, y0:y1, x0:x1] += self._forward(image[:, :, y0:y1, x0:x1]) * weight
            weights[:, :, y0:y1, x0:x1] += weight
        return out / weights

    def _forward(self, image: torch.Tensor) -> torch.Tensor:
        # The exported graph reflects the border margin around the image, which needs sides longer than that.
        if self._engine == "onnxruntime" and min(image.shape[2:]) > self.network.border_margin + 3:
            if self._runner is None:
                self._runner = self._int8_runner() if self._precision == "int8" else runtime.OnnxRunner(self.network)
            return self._runner(image)
        x = image.to(self._device).contiguous(memory_format=self._memory_format)
        with devices.autocast(self._device, self._precision):
            y = self.network(x)
        return y.float().clamp(0, 1).cpu()

    def _int8_runner(self) -> quantized.Int8Network:
        """The network in int8 (made once per machine from its fp32 ONNX graph, calibrated on the samples)."""

        def export(path: Path, example: torch.Tensor) -> None:
            shutil.copyfile(runtime.exported_file(self.network), path)

        kind = f"{self.network.architecture}-{self.network.width}-margin{self.network.border_margin}"
        say = quantized.note_on_terminal
        path = quantized.quantized_file(self.network, kind, quantized.calibration_images, say, export, "image")
        return quantized.Int8Network(path, "image")

    def stylize(
        self, image: ImageLike, strength: float = 1.0, preserve_color: Optional[str] = None, size: Optional[int] = None
    ) -> Image.Image:
        """Paint ``image`` (a path or PIL image) in this model's style and return a PIL image of the same size
        (or with its long side ``size``). ``strength`` in [0, 1] blends the photo (0) with the painting (1);
        ``preserve_color``: None, 'luminance' (keep the photo's colours) or 'histogram' (match the result's
        colours to the photo)."""
        if not 0.0 <= strength <= 1.0:
            raise NeuralensError(f"strength must be between 0 and 1, got {strength}")
        if preserve_color not in PRESERVE_COLOR:
            raise NeuralensError(f"preserve_color must be luminance or histogram, got {preserve_color!r}")
        from ..imageio import resize_long_side  # noqa: PLC0415

        photo = load_image(image)
        if size is not None:
            photo = resize_long_side(photo, size)
        content = image_to_tensor(photo)
        out = self.stylize_tensor(content)
        if preserve_color == "luminance":
            out = color.restore_colour(out, content)
        elif preserve_color == "histogram":
            out = color.match_histogram(out, content).clamp(0, 1)
        if strength < 1.0:
            out = content * (1.0 - strength) + out * strength
        return tensor_to_image(out)

    def state(self) -> Dict[str, torch.Tensor]:
        """The weights as stored: fp16 on the CPU (``weightsfile.half_state``)."""
        return weightsfile.half_state(self.network)

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the model file atomically; returns its path."""
        data = {
            "format": FORMAT,
            "version": VERSION,
            "architecture": self.network.architecture,
            "width": self.network.width,
            "info": _json_ready(self.info),
            "state": self.state(),
        }
        return weightsfile.write(data, path)

    def to_dict(self) -> dict:
        """Name, file, architecture, width, parameter count, engine, precision and the training info, JSON-ready."""
        from .network import parameter_count  # noqa: PLC0415

        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "architecture": self.network.architecture,
            "width": self.network.width,
            "parameters": parameter_count(self.network),
            "engine": self.engine_in_use,
            "precision": self._precision,
            "info": _json_ready(self.info),
        }


def read_model_file(path: Union[str, os.PathLike]) -> dict:
    """The checked contents of a model file: {'architecture', 'width', 'info', 'state'}. NeuralensError (one line) for a
    missing, corrupt or foreign file, or one written by a newer neuralens."""
    data = weightsfile.read(path, FILE_KIND)
    data.setdefault("architecture", "johnson")  # version 1
    if data["architecture"] not in ARCHITECTURES:
        raise NeuralensError(f"{path}: unknown network architecture {data['architecture']!r}")
    return data


def load_model(
    name_or_path: Union[str, os.PathLike], device: str = "auto", precision: str = "auto", engine: str = "auto"
) -> StyleModel:
    """A built-in model by name (``builtin_names()``) or a model file, ready to stylize."""
    path = resolve(name_or_path)
    data = read_model_file(path)
    network = build_network(data["architecture"], data["width"])
    try:
        network.load_state_dict({k: v.float() for k, v in data["state"].items()})
    except (RuntimeError, KeyError) as exc:
        raise NeuralensError(f"{path}: weights do not fit the network ({str(exc).splitlines()[0]})") from None
    return StyleModel(network, dict(data.get("info") or {}), path, device, precision, engine)


def model_info(name_or_path: Union[str, os.PathLike]) -> dict:
    """What a model file says about itself (no network built): name, file, architecture, width, size on disk,
    info; a built-in model's training report (NAME.json beside it) is included when present."""
    path = resolve(name_or_path)
    data = read_model_file(path)
    out = {
        "name": path.stem
        if path.resolve().parent == BUILTIN.resolve()
        else (data.get("info") or {}).get("name") or path.stem,
        "path": str(path),
        "architecture": data["architecture"],
        "width": data["width"],
        "bytes": path.stat().st_size,
        "info": data.get("info") or {},
    }
    report = path.with_suffix(".json")
    if report.is_file():
        out["report"] = json.loads(report.read_text())
    return out


def _json_ready(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
