"""Neural style transfer: the algorithm (transfer.py), its losses (losses.py) and colour handling (color.py)."""
from .losses import content_loss, feature_style_loss, gram_matrix, style_layer_loss, style_loss, tv_loss
from .transfer import (Objective, Step, StyleOptions, StyleResult, StyleTransfer, parse_layers, plan_scales,
                       reconstruct, reconstruct_run, scale_sizes, stylize)

__all__ = ["Objective", "Step", "StyleOptions", "StyleResult", "StyleTransfer", "content_loss", "feature_style_loss",
           "gram_matrix", "parse_layers", "plan_scales", "reconstruct", "reconstruct_run", "scale_sizes",
           "style_layer_loss", "style_loss", "stylize", "tv_loss"]
