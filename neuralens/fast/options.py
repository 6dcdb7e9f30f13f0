"""Every setting of training a feed-forward style network, declared once (default, kind, limits, help): the
`train-style` flags and the checks are generated from ``TrainOptions``, as ``stylize``'s are from
``StyleOptions``. Options that mean the same as a ``stylize`` option take its help text from there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import devices
from ..options import check, option, specs
from ..style.options import LayerSpec, StyleOptions, _check_layers
from .network import ARCHITECTURES, DEFAULT_ARCHITECTURE, DEFAULT_WIDTH, SHUFFLE_WIDTH

_STYLE = specs(StyleOptions)

# Johnson et al. 2016 read the content at relu2_2 (a low layer keeps the photo's edges and leaves the colours
# and textures free for the style) and the style at relu1_2, relu2_2, relu3_3, relu4_3.
DEFAULT_CONTENT_LAYERS = "relu2_2"
DEFAULT_STYLE_LAYERS = "relu1_2,relu2_2,relu3_3,relu4_3"
DEFAULT_ITERATIONS = 2000
DEFAULT_STYLE_WEIGHT = 10.0  # measured, see docs/fast.md ("Choosing the defaults")


@dataclass
class TrainOptions:
    """Every setting of `neuralens train-style`, with its defaults."""

    size: int = option(256, "side of the square training crops in pixels", above=0, metavar="PX")
    style_size: int = option(
        512,
        "long side of the painting when its Gram matrices are taken (larger: finer strokes)",
        above=0,
        metavar="PX",
    )
    minutes: Optional[float] = option(
        None,
        "time budget in minutes; training stops and saves when it is spent",
        kind="float",
        above=0,
        none_help="train for --iterations",
    )
    iterations: int = option(DEFAULT_ITERATIONS, "training steps (batches), unless --minutes is given", above=0)
    batch_size: int = option(4, "photo crops per step", above=0)
    content_weight: float = option(1.0, _STYLE["content_weight"].help, minimum=0)
    style_weight: float = option(DEFAULT_STYLE_WEIGHT, _STYLE["style_weight"].help, minimum=0)
    tv_weight: float = option(0.0, _STYLE["tv_weight"].help, minimum=0)
    content_layers: LayerSpec = option(
        DEFAULT_CONTENT_LAYERS, _STYLE["content_layers"].help, kind="layers", check=_check_layers
    )
    style_layers: LayerSpec = option(
        DEFAULT_STYLE_LAYERS, _STYLE["style_layers"].help, kind="layers", check=_check_layers
    )
    learning_rate: float = option(1e-3, "Adam's step size", above=0)
    seed: int = option(0, "random seed: network start, crops and flips (same seed + photos + device = same model)")
    architecture: str = option(
        DEFAULT_ARCHITECTURE,
        "the network: shuffle (no full-resolution layer; 2-3x faster to apply) or johnson (Johnson et al. 2016)",
        choices=ARCHITECTURES,
    )
    width: Optional[int] = option(
        None,
        "channels of the network's first layer",
        kind="int",
        above=0,
        none_help=f"{SHUFFLE_WIDTH} for shuffle, {DEFAULT_WIDTH} (the paper's) for johnson; 16: half of it, faster",
    )
    teacher: Optional[str] = option(
        None,
        "a trained model (built-in name or file) to imitate instead of the perceptual objective: the network "
        "learns to reproduce its outputs (distillation: no VGG19 in the loop, several times faster per step); "
        "the weights and layers above are then unused",
        metavar="MODEL",
        none_help="learn the painting with the perceptual objective",
    )
    init: Optional[str] = option(
        None,
        "a trained model (built-in name or file) whose weights the network starts from instead of random ones, "
        "to train it further with these settings (its architecture and width are used)",
        metavar="MODEL",
        none_help="random starting weights",
    )
    checkpoint_every: int = option(
        0, "write OUTPUT.checkpoint.pt every N steps, for --resume (0: only when stopped early)", minimum=0
    )
    preview_every: float = option(
        180.0, "write OUTPUT.preview.png every this many seconds (0: only at the end)", minimum=0, metavar="SECONDS"
    )
    device: str = option("auto", _STYLE["device"].help, choices=devices.DEVICES)
    precision: str = option("auto", _STYLE["precision"].help, choices=devices.PRECISIONS)
    progress: bool = option(True, "show progress on stderr", cli="--quiet", sweep=False)

    def validate(self) -> TrainOptions:
        """Check every value; raise OptionError naming the first bad field. Returns self."""
        return check(self)

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (``progress`` left out)."""
        out = {}
        for name in specs(self):
            if name == "progress":
                continue
            value = getattr(self, name)
            out[name] = value if isinstance(value, (int, float, str, bool, type(None), dict)) else str(value)
        return out
