"""Every setting of ``neuralens classify train``, declared once (default, kind, limits, help): the flags, the
checks and the web form come from ``ClassifyOptions``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import devices
from ..backbone import BACKBONES
from ..options import check, option

HEADS = ("linear", "mlp")
# EfficientNet-Lite0 by default: features 9x (one thread, docs/backbones.md) to 13x (benchmarks/README.md,
# "Transfer learning") faster than VGG19's, and held-out accuracy as high or higher on both benchmark datasets.
DEFAULT_BACKBONE = "efficientnet-lite0"


@dataclass
class ClassifyOptions:
    """Every setting of `neuralens classify train`, with its defaults."""

    backbone: str = option(
        DEFAULT_BACKBONE,
        "the pretrained ImageNet network whose features the classifier reads",
        choices=BACKBONES,
    )
    layer: Optional[str] = option(
        None,
        "the backbone layer whose globally averaged activations are the features",
        none_help="the backbone's last layer (relu5_4 for vgg19, head for efficientnet-lite0)",
        metavar="LAYER",
    )
    head: str = option(
        "linear", "the classifier on the features: logistic regression, or an MLP with one hidden layer", choices=HEADS
    )
    hidden: int = option(256, "units of the MLP's hidden layer (--head mlp)", above=0)
    augment: int = option(
        0,
        "extra flipped and cropped copies of every training photo, their features cached like the photo's",
        minimum=0,
        maximum=32,
        metavar="N",
    )
    val_split: float = option(
        0.15,
        "fraction of every class held out for validation (early stopping, the report), unless the folder has "
        "train/ and val/",
        above=0,
        maximum=0.9,
        metavar="FRACTION",
    )
    epochs: int = option(300, "most passes over the training features (early stopping usually ends sooner)", above=0)
    patience: int = option(30, "stop after this many epochs without a better validation loss", above=0)
    batch_size: int = option(64, "features per Adam step", above=0)
    learning_rate: float = option(1e-3, "Adam's step size for the head", above=0)
    weight_decay: float = option(1e-4, "L2 penalty on the head's weights", minimum=0)
    fine_tune: int = option(
        0,
        "after the head, train the backbone's last block with it for N epochs on augmented photos",
        minimum=0,
        metavar="N",
    )
    fine_tune_learning_rate: float = option(
        1e-5, "Adam's step size for the last block while fine-tuning (the head's is 10x this)", above=0
    )
    seed: int = option(0, "random seed: split, head start, batches, augmented copies")
    batch_images: int = option(16, "images through the backbone at once (memory: about 20 MB each for vgg19)", above=0)
    device: str = option("auto", "where the backbone runs", choices=devices.DEVICES)
    cache: Optional[str] = option(
        None,
        "folder of the feature cache",
        kind="path",
        none_help="features/ in the neuralens cache folder ($NEURALENS_CACHE or ~/.cache/neuralens)",
        web="a server-side path",
    )

    def validate(self) -> ClassifyOptions:
        """Check every value against its Spec; returns self. OptionError names the field."""
        return check(self)
