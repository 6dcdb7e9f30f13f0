"""Real-time style transfer: feed-forward networks trained per painting (Johnson et al. 2016), and any painting
in one pass (AdaIN, Huang & Belongie 2017: ``arbitrary``).

    from neuralens import fast
    model = fast.load_model("starry-night")          # a built-in model, or the path of one you trained
    model.stylize("photo.jpg").save("out.png")       # one forward pass
    fast.train("painting.jpg", "photos/", "my_style.pt", minutes=60)   # train your own (training.py)

Training pulls in more (the loss network, previews) than applying a model, so ``train`` is imported on first use:
stylizing starts without it.
"""

from .model import StyleModel, builtin_names, load_model, model_info
from .network import ShuffleNet, StyleNetwork, TransformerNet, build_network, parameter_count

__all__ = [
    "ShuffleNet",
    "StyleModel",
    "StyleNetwork",
    "TransformerNet",
    "build_network",
    "arbitrary",
    "builtin_names",
    "load_arbitrary",
    "load_model",
    "model_info",
    "parameter_count",
    "train",
]


def train(style, photos, output, options=None, **fields):
    """Train a style model for the painting ``style`` on ``photos`` and save it to ``output`` (``.pt``);
    ``options`` a TrainOptions or its fields as keywords (minutes=..., iterations=..., width=...). Returns the
    TrainResult. See ``neuralens.fast.training.train`` for resume, callbacks and stopping."""
    from .training import train as run  # noqa: PLC0415

    return run(style, photos, output, options, **fields)


def load_arbitrary(decoder=None, device="auto", precision="auto"):
    """The arbitrary-style (AdaIN) model: the shipped decoder when ``decoder`` is None, else a decoder file;
    cached per arguments. ``model.encode_style(painting)`` -> a reusable StyleCode, ``model.stylize(photo, code)``
    -> PIL image. See ``neuralens.fast.arbitrary``."""
    from .arbitrary import load_arbitrary as load  # noqa: PLC0415

    return load(decoder, device, precision)


def arbitrary(content, style, strength=1.0, size=None, preserve_color=None, style_weights=None, **more):
    """Paint ``content`` in the style of any painting ``style`` (or a list, blended with ``style_weights``) in one
    pass (AdaIN) and return a PIL image. ``more``: masks, style_size, decoder, device, precision (see
    ``neuralens.fast.arbitrary.arbitrary``)."""
    from .arbitrary import arbitrary as run  # noqa: PLC0415

    return run(content, style, strength, size, preserve_color, style_weights, **more)
