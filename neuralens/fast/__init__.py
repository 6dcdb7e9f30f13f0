"""Real-time style transfer: feed-forward networks trained per painting (Johnson et al. 2016).

    from neuralens import fast
    model = fast.load_model("starry-night")          # a built-in model, or the path of one you trained
    model.stylize("photo.jpg").save("out.png")       # one forward pass
    fast.train("painting.jpg", "photos/", "my_style.pt", minutes=60)   # train your own (training.py)

Training pulls in more (the loss network, previews) than applying a model, so ``train`` is imported on first use:
stylizing starts without it.
"""

from .model import StyleModel, builtin_names, load_model, model_info
from .network import TransformerNet, parameter_count

__all__ = ["StyleModel", "TransformerNet", "builtin_names", "load_model", "model_info", "parameter_count", "train"]


def train(style, photos, output, options=None, **fields):
    """Train a style model for the painting ``style`` on ``photos`` and save it to ``output`` (``.pt``);
    ``options`` a TrainOptions or its fields as keywords (minutes=..., iterations=..., width=...). Returns the
    TrainResult. See ``neuralens.fast.training.train`` for resume, callbacks and stopping."""
    from .training import train as run  # noqa: PLC0415

    return run(style, photos, output, options, **fields)
