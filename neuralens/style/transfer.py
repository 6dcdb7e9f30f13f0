"""Neural style transfer (Gatys, Ecker & Bethge 2015), readable top to bottom.

``StyleTransfer(style, options).run(content)`` reads:

    load the photo -> plan every scale (refusing what cannot fit) -> for each scale, coarse to fine:
    targets (content features, style Grams), starting image (previous scale upsampled), optimise pixels
    (whole, or tile by tile) -> postprocess (restore colour) -> StyleResult

The pieces live one concept per module: ``options`` (every setting), ``plan`` (scales, evaluations, tiles),
``network`` (VGG19 as the run uses it), ``targets`` (style images, masks and their cached Grams),
``objective`` (the loss), ``optimise`` (L-BFGS/Adam and the Reporter), ``results`` (Step, StyleResult).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image

from .. import allocator
from ..imageio import ImageLike, image_to_tensor, load_image, resize_long_side, tensor_to_image
from . import color, fast_start, tiling
from .network import StyleNetwork
from .objective import Objective
from .optimise import Reporter, optimise
from .options import RECONSTRUCT_DEFAULTS, LayerSpec, StyleOptions
from .plan import ScalePlan, plan_run, scaled_shape, smallest_side, tile_for, tile_overlap
from .resize import resize_tensor, upsample
from .results import Step, StyleResult
from .targets import StyleTargets

ToImage = Callable[[torch.Tensor], Image.Image]
# Extra loss terms for one scale or tile: called with the (H, W) being optimised and the tile's box (None when
# whole), returns {name: term(image) -> weighted scalar} (see Objective's extra_terms; video frames use it).
ExtraTerms = Callable[[Tuple[int, int], Optional[tiling.Box]], Dict[str, Callable[[torch.Tensor], torch.Tensor]]]


class StyleTransfer:
    """A style (one or several images, blended) ready to be applied to any number of content images.

    The network is loaded once and the style Gram targets are computed once per scale size and cached.
    """

    def __init__(self, style: Union[ImageLike, Sequence[ImageLike]], options: Optional[StyleOptions] = None, **kwargs):
        self.options = dataclasses.replace(options or StyleOptions(), **kwargs).validate()
        self.targets = StyleTargets(style, self.options)
        self.network = StyleNetwork(self.options)  # the weights load on first use, after the first plan
        self.fast_start = fast_start.FastStart(self.targets, self.options) if fast_start.wanted(self.options) else None
        self.min_side = smallest_side(list(self.network.content_layers) + list(self.network.style_layers))

    @property
    def model(self) -> torch.nn.Module:
        return self.network.model

    @property
    def timings(self) -> dict:
        """One-off costs so far: {'load_model': seconds} once the network has been loaded."""
        return {} if self.network.load_seconds is None else {"load_model": self.network.load_seconds}

    @property
    def device(self) -> torch.device:
        return self.network.device

    @property
    def precision(self) -> str:
        return self.network.precision

    def plan(self, width: int, height: int) -> List[ScalePlan]:
        """The scales of a run on a width x height photo (see ``plan.plan_run``); refuses what cannot work."""
        return plan_run(self.options, height, width, self.precision, self.device, self.min_side, self.targets.shapes())

    def tile_for(self, width: int, height: int) -> Optional[int]:
        """The tile size for optimising a width x height image, or None when it fits whole."""
        return tile_for(width, height, self.options, self.precision, self.device)

    def style_grams(self, long_side: int, content: Optional[torch.Tensor] = None):
        """The blended style Gram targets with the style images at ``long_side`` px."""
        return self.targets.blended(self.network, long_side, content)

    def objective(
        self,
        content: torch.Tensor,
        final_pixels: Optional[int] = None,
        reference: Optional[torch.Tensor] = None,
        box: Optional[tiling.Box] = None,
        whole: Optional[Tuple[int, int]] = None,
        extra_terms: Optional[ExtraTerms] = None,
    ) -> Objective:
        """The loss for optimising an image of ``content``'s size (1, 3, H, W) towards ``content`` and the
        style, with the style images at the whole image's long side x ``style_scale``.

        For a tile, ``content`` is the tile's crop, ``box`` where it lies and ``whole`` (H, W) the whole
        image. ``reference`` is the whole image's colour reference (default: ``content``); ``final_pixels``
        the output's pixel count, which scales the content term (see Objective); ``extra_terms`` more terms."""
        o = self.options
        h, w = whole or content.shape[2:]
        long_side = max(1, round(max(h, w) * o.style_scale))
        reference = reference if reference is not None else content
        targets = self.network.features(content, self.network.content_layers) if o.content_weight > 0 else {}
        terms = self.targets.terms(self.network, long_side, reference, h, w, box)
        pixels = content.shape[2] * content.shape[3]
        scale = (final_pixels / pixels) if final_pixels else 1.0
        extras = extra_terms(tuple(content.shape[2:]), box) if extra_terms is not None else None
        return Objective(self.network, targets, terms, o.content_weight, o.style_weight, o.tv_weight, scale, extras)

    def initial_image(self, content: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The starting image for the coarsest scale: content, white noise, the style, or a file."""
        init = self.options.init
        h, w = content.shape[2:]
        if init == "content":
            return content.clone()
        if init == "noise":
            return torch.rand(content.shape, generator=generator)
        source = self.targets.images[0] if init == "style" else load_image(init)
        return image_to_tensor(source.resize((w, h), Image.LANCZOS))

    # -- the run ------------------------------------------------------------------------------------------
    def run(
        self,
        content: ImageLike,
        callback: Optional[Callable[[Step], None]] = None,
        should_stop: Optional[Callable[[], bool]] = None,
        start: Optional[torch.Tensor] = None,
        extra_terms: Optional[ExtraTerms] = None,
    ) -> StyleResult:
        """Stylize one content image. ``callback(step)`` is called after every loss evaluation;
        ``should_stop()`` returning True (or Ctrl-C) ends the run early with the current image. ``start``
        (1, 3, H, W) in [0, 1] replaces the ``init`` image (e.g. the previous video frame's result, warped);
        ``extra_terms`` adds loss terms to every scale (see ExtraTerms)."""
        o = self.options
        t_start = time.perf_counter()
        photo = load_image(content)
        height, width = scaled_shape(photo.height, photo.width, o.size)  # what resize_long_side will give
        plan = self.plan(width, height)  # before any large tensor: refuses what cannot fit
        self.network.model  # noqa: B018 -- load the weights now, so that their time is reported apart
        timings = dict(self.timings)
        full = image_to_tensor(resize_long_side(photo, o.size))
        generator = torch.Generator().manual_seed(o.seed if o.seed is not None else torch.seed())
        if o.seed is not None:
            torch.manual_seed(o.seed)
        network_content = color.luminance(full) if o.preserve_color == "luminance" else full
        final_pixels = full.shape[2] * full.shape[3]
        postprocess = self._postprocess(full)
        reporter = Reporter(sum(s.evaluations for s in plan), callback, should_stop, o.progress)
        reporter.started = t_start
        image, stopped = None, False
        try:
            for index, scale in enumerate(plan):
                t_scale = time.perf_counter()
                reporter.scale = index
                target = resize_tensor(network_content, scale.long_side)
                reference = resize_tensor(full, scale.long_side)
                if image is None:
                    if start is None:
                        image = self.initial_image(reference, generator)
                    else:
                        image = resize_tensor(start.cpu().float(), scale.long_side, exact=tuple(reference.shape[2:]))
                    if o.preserve_color == "luminance":
                        image = color.luminance(image)
                else:
                    previous = tuple(image.shape[2:])
                    image = upsample(image, target.shape[2:])
                    # Not on tiled scales: at 4000 px with 2 evaluations a tile the decoder's pixel-scale stripes
                    # were still there, where the plain start was clean (benchmarks/README.md section 13).
                    if self.fast_start is not None and scale.tile is None:
                        t_fast = time.perf_counter()
                        image = self.fast_start.start(image, reference, previous)
                        if o.preserve_color == "luminance":
                            image = color.luminance(image)
                        timings[f"fast_start_{scale.long_side}"] = time.perf_counter() - t_fast
                if scale.tile is None:
                    t_targets = time.perf_counter()
                    objective = self.objective(target, final_pixels, reference, extra_terms=extra_terms)
                    timings[f"targets_{scale.long_side}"] = time.perf_counter() - t_targets
                    image, steps, stopped = optimise(
                        objective, self.network.to_device(image), scale.iterations, o, reporter, postprocess
                    )
                    reporter.done += steps
                else:
                    image, stopped = self._optimise_tiled(
                        image, target, reference, scale, final_pixels, reporter, postprocess, extra_terms
                    )
                timings[f"scale_{scale.long_side}"] = time.perf_counter() - t_scale
                if stopped:
                    break
        finally:
            reporter.close()
        result = postprocess(image)
        timings["total"] = time.perf_counter() - t_start
        setup = {
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.network.channels_last,
            "fast_start": self.fast_start is not None,
            "allocator": allocator.active(),
        }
        return StyleResult(result, reporter.history, timings, stopped, setup)

    def _optimise_tiled(
        self,
        image: torch.Tensor,
        target: torch.Tensor,
        reference: torch.Tensor,
        scale: ScalePlan,
        final_pixels: int,
        reporter: Reporter,
        postprocess: ToImage,
        extra_terms: Optional[ExtraTerms] = None,
    ) -> Tuple[torch.Tensor, bool]:
        """Optimise a too-large ``image`` (kept on the CPU) tile by tile with the whole image's style targets;
        each tile is blended back with feathered weights. Returns (image, stopped)."""
        h, w = image.shape[2:]
        overlap = tile_overlap(self.options, scale.tile)
        image = image.cpu().clone()
        stopped = False
        for box in scale.boxes:
            y0, y1, x0, x1 = box
            objective = self.objective(target[:, :, y0:y1, x0:x1], final_pixels, reference, box, (h, w), extra_terms)

            def whole(tile_image: torch.Tensor, y0=y0, y1=y1, x0=x0, x1=x1) -> Image.Image:
                """The whole image with this tile's current state in place (previews show the whole)."""
                composite = image.clone()
                composite[:, :, y0:y1, x0:x1] = tile_image.detach().float().cpu()
                return postprocess(composite)

            current = image[:, :, y0:y1, x0:x1]
            result, steps, stopped = optimise(
                objective, self.network.to_device(current), scale.iterations, self.options, reporter, whole
            )
            reporter.done += steps
            weight = tiling.feather(box, h, w, overlap)
            image[:, :, y0:y1, x0:x1] = current * (1 - weight) + result.float().cpu() * weight
            if stopped:
                break
        return image, stopped

    def _postprocess(self, full_content: torch.Tensor) -> ToImage:
        """Turn an optimised tensor into the output image (restoring colour in luminance mode)."""

        def convert(image: torch.Tensor) -> Image.Image:
            image = image.detach().float().cpu().contiguous()
            if self.options.preserve_color == "luminance":
                image = color.restore_colour(
                    image, resize_tensor(full_content, max(image.shape[2:]), exact=image.shape[2:])
                )
            return tensor_to_image(image)

        return convert


def stylize(content: ImageLike, style: Union[ImageLike, Sequence[ImageLike]], **options) -> Image.Image:
    """Paint ``content`` in the manner of ``style`` and return the result as a PIL image.

    ``content`` and ``style`` are paths or PIL images (``style`` may be a list, blended with
    ``style_blend``); ``options`` are the fields of ``StyleOptions`` (size, style_weight, iterations, ...)."""
    return StyleTransfer(style, StyleOptions(**options)).run(content).image


def reconstruct(
    image: ImageLike, content_layer: Optional[str] = None, style_layers: Optional[LayerSpec] = None, **options
) -> Image.Image:
    """Synthesise an image from white noise that matches ``image``'s features at one layer
    (``content_layer``) or its Gram matrices at a set of layers (``style_layers``) - Gatys 2015, Figure 1.

    Exactly one of the two must be given. ``options`` are StyleOptions fields (size, iterations, ...)."""
    return reconstruct_run(image, content_layer, style_layers, **options).image


def reconstruct_options(
    content_layer: Optional[str] = None, style_layers: Optional[LayerSpec] = None, **options
) -> StyleOptions:
    """The StyleOptions of a reconstruction: RECONSTRUCT_DEFAULTS, the layer(s) to match with the other
    term off, then ``options`` (StyleOptions fields) on top. Raises NeuralensError unless exactly one of
    ``content_layer`` and ``style_layers`` is given."""
    from ..errors import NeuralensError  # noqa: PLC0415

    if (content_layer is None) == (style_layers is None):
        raise NeuralensError("give either a content layer or style layers to reconstruct from (not both)")
    values = dict(RECONSTRUCT_DEFAULTS)
    if content_layer is not None:
        values.update(content_layers=content_layer, content_weight=1.0, style_weight=0.0)
    else:
        values.update(style_layers=style_layers, content_weight=0.0, style_weight=1.0)
    values.update(options)
    return StyleOptions(**values)


def reconstruct_run(
    image: ImageLike, content_layer: Optional[str] = None, style_layers: Optional[LayerSpec] = None, **options
) -> StyleResult:
    """Like ``reconstruct`` but returns the whole StyleResult (history and timings)."""
    settings = reconstruct_options(content_layer, style_layers, **options)
    return StyleTransfer(image, settings).run(image)
