"""neuralens: classic CNN applications made real, fast and pleasant to use.

import neuralens
image = neuralens.stylize("photo.jpg", "painting.jpg", size=512)
image.save("out.png")
"""

from typing import Any

__version__ = "0.1.0"

from .errors import NeuralensError  # noqa: E402

# The style API is imported on first use, not with the package: importing torch takes about 2 s, and the
# `neuralens` command chooses its memory allocator (neuralens.allocator) before anything imports torch.
_STYLE_NAMES = ("StyleOptions", "StyleTransfer", "reconstruct", "stylize")

__all__ = ["NeuralensError", *_STYLE_NAMES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _STYLE_NAMES:
        from . import style

        return getattr(style, name)
    raise AttributeError(f"module 'neuralens' has no attribute {name!r}")
