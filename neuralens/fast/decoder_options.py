"""Every setting of training an AdaIN decoder, declared once (default, kind, limits, help): the `train-decoder`
flags and the checks come from ``DecoderTrainOptions``, as `train-style`'s come from ``TrainOptions``. Options that
mean the same as a `train-style` option take its help text from there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import devices
from ..options import check, option, specs
from .adain import DEFAULT_WIDTH
from .options import TrainOptions

_TRAIN = specs(TrainOptions)

# Huang & Belongie 2017 use lambda = 10 (their code: style weight 10, content weight 1, mean squared errors of a
# VGG19 normalised to mean activation 1 per layer; ours divides by adain.LAYER_SCALE to the same effect). Measured
# at the start of training on the gathered photos and paintings: the weighted style loss is then ~10x the content
# loss, and the decoder learns the style statistics first while the content loss still falls.
DEFAULT_STYLE_WEIGHT = 10.0
DEFAULT_ITERATIONS = 20000
# Loss weights a resumed run changes only when given (`train_decoder` keywords; flags on the command line), so that a
# trained decoder can be fine-tuned with another loss while a plain --resume goes on with the checkpoint's.
LOSS_WEIGHTS = ("content_weight", "style_weight", "reconstruction_weight")


@dataclass
class DecoderTrainOptions:
    """Every setting of `neuralens train-decoder`, with its defaults (the CPU recipe; see docs/arbitrary.md)."""

    size: int = option(
        128, "side of the square training crops of photos and paintings in pixels", above=0, metavar="PX"
    )
    zoom: float = option(
        2.0,
        "random scale augmentation: each crop's side is drawn between --size and this times --size, then resized to "
        "--size (1: plain crops)",
        minimum=1,
    )
    minutes: Optional[float] = option(
        None, _TRAIN["minutes"].help, kind="float", above=0, none_help="train for --iterations"
    )
    iterations: int = option(DEFAULT_ITERATIONS, _TRAIN["iterations"].help, above=0)
    batch_size: int = option(4, "photo crops (each with a painting crop) per step", above=0)
    content_weight: float = option(
        1.0, "weight of the content loss (relu4_1 features against the AdaIN target)", minimum=0
    )
    style_weight: float = option(
        DEFAULT_STYLE_WEIGHT,
        "lambda: weight of the style loss (channel means and deviations at relu1_1..relu4_1)",
        minimum=0,
    )
    reconstruction_weight: float = option(
        0.0,
        "weight of a pixel reconstruction term: each step also decodes the photos' own relu4_1 features and takes the "
        "mean squared error of the result against the photos (pixels in [0, 1]), teaching the decoder to invert the "
        "encoder (Li et al. 2017); 0: off, as in the paper",
        minimum=0,
    )
    # 1e-3 diverged after 3940 steps of 4 crops (75 CPU minutes; docs/arbitrary.md); 5e-4 made the shipped decoder.
    learning_rate: float = option(
        5e-4, "Adam's step size (the paper: 1e-4 over 160000 steps; a short CPU run needs larger steps)", above=0
    )
    width: int = option(
        DEFAULT_WIDTH, "channels of the decoder's last block (64: the paper's mirror of VGG19; 32: half width)", above=0
    )
    style_pool: int = option(
        128,
        "painting crops whose statistics are computed once at the start and drawn from at each step (saves one "
        "encoder pass per image; 0: a fresh painting crop every time)",
        minimum=0,
    )
    seed: int = option(0, "random seed: decoder start, crops and flips (same seed + images + device = same decoder)")
    checkpoint_every: int = option(0, _TRAIN["checkpoint_every"].help, minimum=0)
    preview_every: float = option(
        180.0, "write OUTPUT.preview.png every this many seconds (0: only at the end)", minimum=0, metavar="SECONDS"
    )
    device: str = option("auto", _TRAIN["device"].help, choices=devices.DEVICES)
    precision: str = option("auto", _TRAIN["precision"].help, choices=devices.PRECISIONS)
    progress: bool = option(True, "show progress on stderr", cli="--quiet", sweep=False)

    def validate(self) -> DecoderTrainOptions:
        """Check every value; raise OptionError naming the first bad field. Returns self."""
        return check(self)

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (``progress`` left out)."""
        return {name: getattr(self, name) for name in specs(self) if name != "progress"}
