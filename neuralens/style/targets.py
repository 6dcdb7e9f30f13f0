"""The style side of a run: the style images with their blend weights, regions (masks) and fine-scale image,
and their Gram targets per size, computed once and cached across content images."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image

from ..errors import NeuralensError
from ..imageio import ImageLike, image_to_tensor, load_image, resize_long_side
from . import color, tiling
from .losses import gram_matrix
from .network import StyleNetwork
from .objective import StyleTerm
from .options import StyleOptions, parse_layers
from .resize import resize_mask

STYLE_TILE_PIXELS = 2048 * 2048  # style images larger than this get their Gram matrices summed over tiles


def load_mask(source: ImageLike) -> torch.Tensor:
    """A mask image (any mode; white = on, grey = partly) as a (1, 1, H, W) tensor in [0, 1].
    Raises NeuralensError when it is not an image or is all black."""
    image = load_image(source).convert("L")
    mask = image_to_tensor(image.convert("RGB"))[:, :1]
    if float(mask.max()) < 1 / 255:
        name = source if not isinstance(source, Image.Image) else "a mask"
        raise NeuralensError(f"{name}: mask is empty (all black)")
    return mask


class StyleTargets:
    """One or several style images (blended with ``style_blend``), each optionally painting only inside its
    mask, and the Gram targets they give at each size."""

    def __init__(self, style: Union[ImageLike, Sequence[ImageLike]], options: StyleOptions):
        o = self.options = options
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise NeuralensError("at least one style image is needed")
        blend = list(o.style_blend) if o.style_blend is not None else [1.0] * len(styles)
        if len(blend) != len(styles):
            raise NeuralensError(f"style_blend has {len(blend)} weights for {len(styles)} style images")
        self.blend = [w / sum(blend) for w in blend]
        self.images = [load_image(s) for s in styles]
        masks = list(o.style_masks) if o.style_masks is not None else []
        if len(masks) > len(styles):
            raise NeuralensError(f"{len(masks)} style masks for {len(styles)} style images")
        masks += [None] * (len(styles) - len(masks))
        self.masks = [None if m is None else load_mask(m) for m in masks]
        self.content_mask = None if o.content_mask is None else load_mask(o.content_mask)
        self.fine_image = None if o.fine_style is None else load_image(o.fine_style)
        self.fine_layers = parse_layers(o.fine_layers, "fine layers") if o.fine_style is not None else {}
        self.style_layers = parse_layers(o.style_layers, "style layers")
        self._cache: Dict[int, List[Dict[str, torch.Tensor]]] = {}

    def shapes(self) -> List[Tuple[str, int, int]]:
        """(name, width, height) of every style image (for the plan's size checks)."""
        named = [(f"style image {i}", im) for i, im in enumerate(self.images, start=1)]
        if self.fine_image is not None:
            named.append(("fine-style image", self.fine_image))
        return [(name, im.width, im.height) for name, im in named]

    @property
    def guided(self) -> bool:
        """True when some style paints only in a region (a style mask or the content mask is in use)."""
        return self.content_mask is not None or any(m is not None for m in self.masks)

    @torch.no_grad()
    def grams_each(
        self, network: StyleNetwork, long_side: int, content: Optional[torch.Tensor] = None
    ) -> List[Dict[str, torch.Tensor]]:
        """Position-normalised Gram targets of each style image resized to ``long_side`` (fine layers from
        ``fine_style`` when given). ``content`` (1, 3, H, W) is needed only for colour preservation."""
        cacheable = self.options.preserve_color is None  # colour-preserved targets depend on the content
        if cacheable and long_side in self._cache:
            return self._cache[long_side]
        fine = (
            self._grams_of(network, self.fine_image, long_side, content, self.fine_layers) if self.fine_layers else {}
        )
        each = [
            dict(self._grams_of(network, image, long_side, content, self.style_layers), **fine) for image in self.images
        ]
        if cacheable:
            self._cache[long_side] = each
        return each

    def blended(
        self, network: StyleNetwork, long_side: int, content: Optional[torch.Tensor] = None
    ) -> Dict[str, torch.Tensor]:
        """The style images' Gram targets blended with the ``style_blend`` weights."""
        each = self.grams_each(network, long_side, content)
        return {layer: sum(w * grams[layer] for w, grams in zip(self.blend, each)) for layer in each[0]}

    def terms(
        self,
        network: StyleNetwork,
        long_side: int,
        reference: Optional[torch.Tensor],
        height: int,
        width: int,
        box: Optional[tiling.Box] = None,
    ) -> List[StyleTerm]:
        """The style terms of the objective for a height x width output (cropped to ``box`` for a tile), with
        the style images at ``long_side``: one blended term, or one term per style with its region."""
        if self.options.style_weight <= 0:
            return []
        if not self.guided:
            return [StyleTerm(1.0, self.blended(network, long_side, reference))]
        each = self.grams_each(network, long_side, reference)
        regions = self.regions(height, width, box)
        return [StyleTerm(w, grams, region.to(network.device)) for w, grams, region in zip(self.blend, each, regions)]

    def regions(self, height: int, width: int, box: Optional[tiling.Box] = None) -> List[torch.Tensor]:
        """Each style's region of the output (1, 1, H, W) at this size (cropped to ``box``): its own mask
        (or everywhere) times the content mask."""
        everywhere = torch.ones(1, 1, height, width)
        limit = resize_mask(self.content_mask, height, width) if self.content_mask is not None else everywhere
        regions = [limit * (resize_mask(m, height, width) if m is not None else everywhere) for m in self.masks]
        if box is not None:
            y0, y1, x0, x1 = box
            regions = [r[:, :, y0:y1, x0:x1] for r in regions]
        return regions

    def _grams_of(
        self, network: StyleNetwork, style_image: Image.Image, long_side: int, content: Optional[torch.Tensor], layers
    ) -> Dict[str, torch.Tensor]:
        s = image_to_tensor(resize_long_side(style_image, long_side))
        if self.options.preserve_color == "histogram":
            s = color.match_histogram(s, content)
        elif self.options.preserve_color == "luminance":
            s = color.match_luminance(s, content)
        if s.shape[2] * s.shape[3] > STYLE_TILE_PIXELS:  # a print-size style: sum the Gram over tiles
            return tiling.tiled_grams(network.features, s, layers, tile=1024)
        return {layer: gram_matrix(f) / (f.shape[2] * f.shape[3]) for layer, f in network.features(s, layers).items()}
