"""The loss of Gatys et al.: alpha * L_content + beta * L_style + tv * TV, for images of one size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from ..backbone import layer_index
from .losses import content_loss, feature_style_loss, tv_loss
from .network import StyleNetwork


@dataclass
class StyleTerm:
    """One style's share of the style loss: its blend ``weight``, its Gram targets per layer (divided by their
    number of positions, so that a style image of any size serves any output size) and, with spatial control
    (Gatys et al. 2017), the ``region`` (1, 1, H, W) in [0, 1] of the output where it paints."""

    weight: float
    grams: Mapping[str, torch.Tensor]
    region: Optional[torch.Tensor] = None


class Objective:
    """The loss of an image of one size towards fixed targets.

    Without a region, a term's E_l compares the features' Gram matrix with its target scaled back by the
    output's M. With a region, the region is averaged down to every layer's grid, the features are multiplied
    by it before the Gram matrix (a guided Gram), and M becomes the region's sum of squares.

    ``extra_terms`` ({name: term}, each ``term(image) -> weighted fp32 scalar``) are added to the total and
    reported under their names - e.g. the temporal loss of a video frame (neuralens.video.consistency).

    ``content_scale`` keeps alpha/beta meaning the same at coarse scales and in tiles: the content loss sums
    over positions (it grows with the image) while E_l does not, so it is scaled by final/current pixels."""

    def __init__(
        self,
        network: StyleNetwork,
        content_targets: Mapping[str, torch.Tensor],
        style_terms: Sequence[StyleTerm],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        content_scale: float = 1.0,
        extra_terms: Optional[Mapping[str, Callable[[torch.Tensor], torch.Tensor]]] = None,
    ):
        self.network = network
        self.content_targets = content_targets
        self.content_layers = {k: v for k, v in network.content_layers.items() if content_weight > 0 and v > 0}
        self.style_layers = {k: v for k, v in network.style_layers.items() if style_weight > 0 and v > 0}
        self.style_terms = list(style_terms)
        self.content_weight = content_weight * content_scale
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        self.layers = sorted(set(self.content_layers) | set(self.style_layers), key=layer_index)
        self._layer_regions: Dict[tuple, torch.Tensor] = {}
        self.extra_terms = dict(extra_terms or {})

    def __call__(self, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Losses of ``image`` (1, 3, H, W): dict with content, style, tv and total (fp32 scalars)."""
        feats = self.network(image, self.layers)
        zero = torch.zeros((), device=image.device)
        c = sum(
            (w * content_loss(feats[name], self.content_targets[name]) for name, w in self.content_layers.items()), zero
        )
        s = zero
        for name, w in self.style_layers.items():
            f = feats[name]
            for index, term in enumerate(self.style_terms):
                if term.region is None:
                    s = s + term.weight * w * feature_style_loss(f, term.grams[name] * (f.shape[2] * f.shape[3]))
                    continue
                region = self._layer_region(index, term.region, f.shape[2:])
                area = float(region.pow(2).sum())
                if area > 0:
                    s = s + term.weight * w * feature_style_loss(f * region, term.grams[name] * area, area)
        t = tv_loss(image) if self.tv_weight > 0 else zero
        total = self.content_weight * c + self.style_weight * s + self.tv_weight * t
        out = {"content": c, "style": s, "tv": t}
        for name, term in self.extra_terms.items():  # none by default: the total above is left as it is
            out[name] = term(image)
            total = total + out[name]
        out["total"] = total
        return out

    def _layer_region(self, index: int, region: torch.Tensor, shape) -> torch.Tensor:
        """A style's region averaged down to a layer's grid (each position gets its receptive area's mean)."""
        key = (index, tuple(shape))
        if key not in self._layer_regions:
            self._layer_regions[key] = F.interpolate(region, size=tuple(shape), mode="area")
        return self._layer_regions[key]
