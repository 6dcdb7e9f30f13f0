"""Real-time style transfer: feed-forward networks trained per painting (Johnson et al. 2016).

from neuralens import fast
model = fast.load_model("starry-night")          # a built-in model, or the path of one you trained
model.stylize("photo.jpg").save("out.png")       # one forward pass
fast.train("painting.jpg", "photos/", minutes=60, output="my_style.pt")
"""

from .model import StyleModel, builtin_names, load_model, model_info
from .network import TransformerNet, parameter_count

__all__ = ["StyleModel", "TransformerNet", "builtin_names", "load_model", "model_info", "parameter_count"]
