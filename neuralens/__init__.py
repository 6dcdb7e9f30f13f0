"""neuralens: classic CNN applications made real, fast and pleasant to use.

import neuralens
image = neuralens.stylize("photo.jpg", "painting.jpg", size=512)
image.save("out.png")
"""

__version__ = "0.1.0"

from .errors import NeuralensError  # noqa: E402
from .style import StyleOptions, StyleTransfer, reconstruct, stylize  # noqa: E402

__all__ = ["NeuralensError", "StyleOptions", "StyleTransfer", "reconstruct", "stylize", "__version__"]
