"""Neural style transfer: the run (transfer.py) and its pieces - options, plan, network, targets,
objective, optimise, results - plus the paper's losses (losses.py) and colour handling (color.py)."""

from .losses import content_loss, feature_style_loss, gram_matrix, style_layer_loss, style_loss, tv_loss
from .objective import Objective, StyleTerm
from .optimise import Reporter, clamp_pixels, optimise
from .options import RECONSTRUCT_DEFAULTS, StyleOptions, parse_layers
from .plan import check_shape, plan_scales, scale_iterations, scale_sizes
from .results import Step, StyleResult
from .transfer import StyleTransfer, reconstruct, reconstruct_options, reconstruct_run, stylize

__all__ = [
    "Objective",
    "RECONSTRUCT_DEFAULTS",
    "Reporter",
    "Step",
    "StyleOptions",
    "StyleResult",
    "StyleTerm",
    "StyleTransfer",
    "check_shape",
    "clamp_pixels",
    "content_loss",
    "feature_style_loss",
    "gram_matrix",
    "optimise",
    "parse_layers",
    "plan_scales",
    "reconstruct",
    "reconstruct_options",
    "reconstruct_run",
    "scale_iterations",
    "scale_sizes",
    "style_layer_loss",
    "style_loss",
    "stylize",
    "tv_loss",
]
