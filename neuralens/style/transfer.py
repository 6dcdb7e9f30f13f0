"""Neural style transfer (Gatys, Ecker & Bethge 2015), readable top to bottom.

The path an image takes through ``stylize``:

    load -> resize -> (colour preservation) -> style Gram targets, once per scale size
         -> for each scale, coarse to fine: content targets, init (previous scale upsampled), optimise pixels
         -> (restore colour) -> PIL image

Everything is configured with one plain ``StyleOptions`` object; ``StyleTransfer`` keeps the network and the
style targets so that several content images can be stylized without recomputing them.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from PIL import Image

from .. import devices
from ..backbone import layer_index, load_vgg19
from ..errors import NeuralensError
from ..imageio import ImageLike, image_to_tensor, load_image, resize_long_side, tensor_to_image
from . import color, memory, tiling
from .losses import content_loss, feature_style_loss, gram_matrix, tv_loss

DEFAULT_CONTENT_LAYERS = "relu4_2"
DEFAULT_STYLE_LAYERS = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style")
PRESERVE_COLOR = (None, "luminance", "histogram")
LayerSpec = Union[str, Sequence[str], Mapping[str, float]]
ANCHOR_SIZE = 512          # coarse-to-fine scales grow by sqrt(2) up to here, then double
ANCHOR_ITERATIONS = 75     # evaluations at the 512-px scale (or the output, when it is smaller)
COARSE_ITERATIONS = 20     # evaluations at each scale below that (they only give the next scale a start)
MIN_ITERATIONS = 10        # at least this many at every scale above 512 px
MAX_AUTO_TILE = 1024      # automatic tiles are at most this big (px), however much memory there is
MIN_TILE = 256            # below this a tile sees too little of the picture to be worth it
STYLE_TILE_PIXELS = 2048 * 2048  # style images larger than this get their Gram matrices summed over tiles


def parse_layers(spec: LayerSpec, what: str = "layers") -> Dict[str, float]:
    """Parse 'relu1_1:0.2,relu2_1,...' (or a list, or a dict) into {layer: weight}.

    Layers without an explicit weight share what the explicit ones leave of 1 equally (so the default
    five style layers get w_l = 1/5 each, as in the paper). Raises NeuralensError for an unknown layer, a bad
    or negative weight, or an empty list."""
    if isinstance(spec, Mapping):
        items = [(str(k), float(v)) for k, v in spec.items()]
    else:
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        items = []
        for part in (p.strip() for p in parts):
            if not part:
                continue
            name, _, weight = part.partition(":")
            try:
                items.append((name.strip(), float(weight) if weight else None))
            except ValueError:
                raise NeuralensError(f"bad weight '{weight}' for layer {name} in {what}") from None
    if not items:
        raise NeuralensError(f"no {what} given")
    for name, weight in items:
        layer_index(name)
        if weight is not None and (weight < 0 or not math.isfinite(weight)):
            raise NeuralensError(f"{what}: weight of {name} must be a finite number >= 0, got {weight}")
    explicit = sum(w for _, w in items if w is not None)
    unweighted = [n for n, w in items if w is None]
    share = max(0.0, 1.0 - explicit) / len(unweighted) if unweighted else 0.0
    if unweighted and share == 0.0:
        share = 1.0 / len(items)
    return {name: (share if weight is None else weight) for name, weight in items}


@dataclass
class StyleOptions:
    """Every setting of a style-transfer run, with the defaults of `neuralens stylize`."""

    size: int = 512                      # long side of the output in pixels
    style_scale: float = 1.0             # style image size relative to the output
    content_weight: float = 1.0          # alpha
    style_weight: float = 5e3            # beta
    tv_weight: float = 0.0
    content_layers: LayerSpec = DEFAULT_CONTENT_LAYERS
    style_layers: LayerSpec = DEFAULT_STYLE_LAYERS
    init: str = "content"                # content | noise | style | path to an image
    seed: Optional[int] = 0
    optimizer: str = "lbfgs"
    iterations: Optional[int] = None     # loss evaluations at the output size (None: by size, see scale_iterations)
    coarse_iterations: Optional[int] = None  # at each coarser scale (None: see scale_iterations)
    learning_rate: float = 0.02          # Adam's, in pixel units (image in [0, 1])
    scales: Optional[int] = None         # number of coarse-to-fine scales; None picks from min_scale_size
    min_scale_size: int = 256            # long side of the coarsest scale when scales is None
    style_blend: Optional[Sequence[float]] = None
    style_masks: Optional[Sequence[Optional[ImageLike]]] = None  # per style: where on the output it paints
    content_mask: Optional[ImageLike] = None  # where any style may paint (black keeps the photo)
    fine_style: Optional[ImageLike] = None    # scale control: the fine layers' Grams come from this image...
    fine_layers: LayerSpec = "relu1_1,relu2_1"  # ...for these layers (brush strokes); the rest from the style
    preserve_color: Optional[str] = None  # None | luminance | histogram
    pooling: str = "max"
    device: str = "auto"
    precision: str = "auto"              # auto | fp32 | bf16
    channels_last: Optional[bool] = None  # None: on for bf16 and CUDA, where it is the fast layout
    weights: Optional[str] = None        # another VGG19 weight file
    early_stop_tolerance: float = 1e-3   # stop a scale when the loss improved less than this (relative)...
    early_stop_patience: int = 20        # ...over this many steps; 0 disables early stopping
    tile_size: Optional[int] = None      # None: tile a scale only when it does not fit in memory; 0: never
    tile_overlap: int = 128              # pixels shared by neighbouring tiles
    max_memory_gb: Optional[float] = None  # memory budget (default: what the device has available)
    progress: bool = False               # show a progress bar on stderr

    def validate(self) -> "StyleOptions":
        """Check every value; raise NeuralensError naming the first bad one. Returns self."""
        def positive(name: str, value, integer: bool = False) -> None:
            ok = isinstance(value, (int, float)) and math.isfinite(value) and value > 0
            if not ok or (integer and int(value) != value):
                raise NeuralensError(f"{name.replace('_', '-')} must be a positive {'whole ' if integer else ''}number, got {value}")

        def non_negative(name: str, value) -> None:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise NeuralensError(f"{name.replace('_', '-')} must be a number >= 0, got {value}")

        positive("size", self.size, integer=True)
        positive("style_scale", self.style_scale)
        if self.iterations is not None:
            positive("iterations", self.iterations, integer=True)
        positive("learning_rate", self.learning_rate)
        positive("min_scale_size", self.min_scale_size, integer=True)
        for name in ("content_weight", "style_weight", "tv_weight", "early_stop_tolerance"):
            non_negative(name, getattr(self, name))
        non_negative("early_stop_patience", self.early_stop_patience)
        if self.coarse_iterations is not None:
            non_negative("coarse_iterations", self.coarse_iterations)
        if self.scales is not None:
            positive("scales", self.scales, integer=True)
        if self.tile_size is not None and self.tile_size != 0 and (int(self.tile_size) != self.tile_size or self.tile_size < 64):
            raise NeuralensError(f"tile-size must be 0 (never tile) or a whole number >= 64, got {self.tile_size}")
        non_negative("tile_overlap", self.tile_overlap)
        if self.max_memory_gb is not None:
            positive("max_memory_gb", self.max_memory_gb)
        if isinstance(self.init, str) and self.init not in INITS and not os.path.isfile(self.init):
            raise NeuralensError(f"init must be content, noise, style or an image file; '{self.init}' is none of these")
        if self.optimizer not in OPTIMIZERS:
            raise NeuralensError(f"unknown optimizer '{self.optimizer}' (choose lbfgs or adam)")
        if self.preserve_color not in PRESERVE_COLOR:
            raise NeuralensError(f"unknown preserve-color '{self.preserve_color}' (choose luminance or histogram)")
        if self.pooling not in ("max", "avg"):
            raise NeuralensError(f"unknown pooling '{self.pooling}' (choose max or avg)")
        devices.pick_precision(self.precision, torch.device("cpu"))  # checks the name
        if self.device not in devices.DEVICES:
            raise NeuralensError(f"unknown device '{self.device}' (choose from {', '.join(devices.DEVICES)})")
        parse_layers(self.content_layers, "content layers")
        style = parse_layers(self.style_layers, "style layers")
        if self.fine_style is not None:
            extra = set(parse_layers(self.fine_layers, "fine layers")) - set(style)
            if extra:
                raise NeuralensError(f"fine layers {', '.join(sorted(extra))} are not among the style layers")
        if self.style_blend is not None:
            for w in self.style_blend:
                non_negative("style_blend", w)
            if sum(self.style_blend) <= 0:
                raise NeuralensError("style-blend weights must not all be 0")
        return self


@dataclass
class Step:
    """What the optimiser reports after each step (to progress bars, callbacks, reports)."""

    iteration: int            # 1-based, counted over all scales
    total_iterations: int     # planned over all scales (early stopping may finish sooner)
    scale: int                # 0-based index of the current scale
    size: Tuple[int, int]     # (width, height) being optimised
    content_loss: float
    style_loss: float
    tv_loss: float
    loss: float
    elapsed: float            # seconds since the optimisation started
    image: Callable[[], Image.Image] = field(repr=False, default=None)  # the current image, on demand

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "image"}


@dataclass
class StyleResult:
    """A finished (or stopped) run: the image, the per-step history and timings."""

    image: Image.Image
    history: List[dict]
    timings: Dict[str, float]
    stopped: bool = False     # True when stopped early by the user (Ctrl-C or a stop request)


class Objective:
    """alpha * L_content + beta * L_style + tv * TV for images of one size, with targets fixed at creation.

    ``style_grams`` are Gram matrices divided by their number of positions (so that a style image of any
    size can serve any output size); they are scaled back by the output's M in E_l.

    ``guided`` (spatial control, Gatys et al. 2017): a list of (weight, grams, mask) - each style paints
    where its mask (1, 1, H, W) in [0, 1] is on. The mask is resized to every layer's grid, the features are
    multiplied by it before the Gram matrix (a guided Gram), and M becomes the mask's sum of squares."""

    def __init__(self, model, content_targets: Mapping[str, torch.Tensor], content_layers: Mapping[str, float],
                 style_grams: Mapping[str, torch.Tensor], style_layers: Mapping[str, float],
                 content_weight: float, style_weight: float, tv_weight: float,
                 precision: str = "fp32", content_scale: float = 1.0,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 guided: Optional[Sequence[Tuple[float, Mapping[str, torch.Tensor], torch.Tensor]]] = None):
        self.model = model
        self.guided = list(guided or [])
        self._layer_masks: Dict[tuple, torch.Tensor] = {}
        self.memory_format = memory_format
        self.content_targets = content_targets
        self.content_layers = {k: v for k, v in content_layers.items() if content_weight > 0 and v > 0}
        self.style_grams = style_grams
        self.style_layers = {k: v for k, v in style_layers.items() if style_weight > 0 and v > 0}
        self.content_weight = content_weight * content_scale
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        self.precision = precision
        self.layers = sorted(set(self.content_layers) | set(self.style_layers), key=layer_index)

    def __call__(self, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Losses of ``image`` (1, 3, H, W): dict with content, style, tv and total (fp32 scalars)."""
        with devices.autocast(image.device, self.precision):
            # The optimised tensor stays NCHW-contiguous (L-BFGS flattens its gradient); the network
            # gets a channels-last copy when it was built that way, which is the fast layout on CPU and GPU.
            feats = self.model(image.contiguous(memory_format=self.memory_format), self.layers)
        zero = torch.zeros((), device=image.device)
        c = sum((w * content_loss(feats[l], self.content_targets[l]) for l, w in self.content_layers.items()), zero)
        s = zero
        for layer, w in self.style_layers.items():
            f = feats[layer]
            if not self.guided:
                s = s + w * feature_style_loss(f, self.style_grams[layer] * (f.shape[2] * f.shape[3]))
            for i, (weight, grams, mask) in enumerate(self.guided):
                guide = self._layer_mask(i, mask, f.shape[2:])
                area = float(guide.pow(2).sum())
                if area > 0:
                    s = s + weight * w * feature_style_loss(f * guide, grams[layer] * area, area)
        t = tv_loss(image) if self.tv_weight > 0 else zero
        total = self.content_weight * c + self.style_weight * s + self.tv_weight * t
        return {"content": c, "style": s, "tv": t, "total": total}


    def _layer_mask(self, index: int, mask: torch.Tensor, shape) -> torch.Tensor:
        """The style's mask averaged down to a layer's grid (each position gets its receptive area's mean)."""
        key = (index, tuple(shape))
        if key not in self._layer_masks:
            self._layer_masks[key] = F.interpolate(mask, size=tuple(shape), mode="area")
        return self._layer_masks[key]


def scale_sizes(size: int, scales: Optional[int], min_size: int) -> List[int]:
    """Long sides of the coarse-to-fine scales, ending at ``size``: by sqrt(2) steps up to ANCHOR_SIZE px,
    then by doubling (large scales are slow and mostly refine detail, so fewer of them).

    >>> scale_sizes(512, None, 256), scale_sizes(4000, None, 256)
    ([256, 362, 512], [250, 354, 500, 1000, 2000, 4000])
    """
    if scales is not None:
        return [round(size / math.sqrt(2) ** i) for i in reversed(range(scales))]
    big = []
    while size > ANCHOR_SIZE:
        big.append(size)
        size = round(size / 2)
    steps = max(0, round(2 * math.log2(size / min_size))) if size > min_size else 0
    return [round(size / math.sqrt(2) ** i) for i in reversed(range(steps + 1))] + big[::-1]


def scale_iterations(sizes: Sequence[int], iterations: Optional[int] = None,
                     coarse_iterations: Optional[int] = None) -> List[int]:
    """Loss evaluations for each scale of ``sizes`` (coarse to fine).

    By default the work goes where it pays, as measured on the objective (benchmarks/README.md): the scale
    closest to ANCHOR_SIZE from below (the output itself when it is that small) gets ANCHOR_ITERATIONS -
    there the picture takes shape at a modest cost per evaluation; each smaller scale gets COARSE_ITERATIONS
    (more evaluations there only bake in coarse brush strokes that the fine scale has to undo); each larger
    scale refines detail with evaluations shrinking with its pixel count: ANCHOR_ITERATIONS x (512/side)^2,
    at least MIN_ITERATIONS. ``iterations`` fixes the output scale's count, ``coarse_iterations`` every other.

    >>> scale_iterations([256, 362, 512]), scale_iterations([250, 354, 500, 1000, 2000, 4000])
    ([20, 20, 75], [20, 20, 75, 20, 10, 10])
    """
    anchor = max([s for s in sizes if s <= ANCHOR_SIZE], default=sizes[0])

    def default(side: int) -> int:
        if side < anchor:
            return COARSE_ITERATIONS
        return max(MIN_ITERATIONS, round(ANCHOR_ITERATIONS * min(1.0, (ANCHOR_SIZE / side) ** 2)))

    plan = [coarse_iterations if coarse_iterations is not None else default(s) for s in sizes[:-1]]
    return plan + [iterations if iterations is not None else default(sizes[-1])]


def plan_scales(options: StyleOptions) -> List[Tuple[int, int]]:
    """[(long side, loss evaluations), ...] coarse to fine for ``options`` (scales with none are left out)."""
    sizes = scale_sizes(options.size, options.scales, options.min_scale_size)
    plan = list(zip(sizes, scale_iterations(sizes, options.iterations, options.coarse_iterations)))
    return [(side, n) for side, n in plan if n > 0] or plan[-1:]


class StyleTransfer:
    """A style (one or several images, blended) ready to be applied to any number of content images.

    The network is loaded once and the style Gram targets are computed once per scale size and cached.
    """

    def __init__(self, style: Union[ImageLike, Sequence[ImageLike]], options: Optional[StyleOptions] = None, **kwargs):
        self.options = dataclasses.replace(options or StyleOptions(), **kwargs).validate()
        o = self.options
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise NeuralensError("at least one style image is needed")
        blend = list(o.style_blend) if o.style_blend is not None else [1.0] * len(styles)
        if len(blend) != len(styles):
            raise NeuralensError(f"--style-blend has {len(blend)} weights for {len(styles)} style images")
        self.blend = [w / sum(blend) for w in blend]
        self.style_images = [load_image(s) for s in styles]
        masks = list(o.style_masks) if o.style_masks is not None else []
        if len(masks) > len(styles):
            raise NeuralensError(f"{len(masks)} style masks for {len(styles)} style images")
        masks += [None] * (len(styles) - len(masks))
        self.style_masks = [None if m is None else load_mask(m) for m in masks]
        self.content_mask = None if o.content_mask is None else load_mask(o.content_mask)
        self.fine_style_image = None if o.fine_style is None else load_image(o.fine_style)
        self.fine_layers = parse_layers(o.fine_layers, "fine layers") if o.fine_style is not None else {}
        self.content_layers = parse_layers(o.content_layers, "content layers")
        self.style_layers = parse_layers(o.style_layers, "style layers")
        self.device = devices.pick_device(o.device)
        self.precision = devices.pick_precision(o.precision, self.device)
        devices.configure_threads()
        t0 = time.perf_counter()
        deepest = max(list(self.content_layers) + list(self.style_layers), key=layer_index)
        channels_last = o.channels_last
        if channels_last is None:  # measured: faster with bf16 on CPU and on CUDA, slower for fp32 on CPU
            channels_last = self.precision == "bf16" or self.device.type == "cuda"
        channels_last = channels_last and self.device.type != "mps"
        self.model = load_vgg19(deepest, o.pooling, o.weights, self.device, channels_last)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.timings = {"load_model": time.perf_counter() - t0}
        self._gram_cache: Dict[int, List[Dict[str, torch.Tensor]]] = {}

    # -- pieces -------------------------------------------------------------------------------------------
    def to_device(self, image: torch.Tensor) -> torch.Tensor:
        return image.to(self.device).contiguous(memory_format=self.memory_format)

    @torch.no_grad()
    def features(self, image: torch.Tensor, layers) -> Dict[str, torch.Tensor]:
        """Activations of ``image`` at ``layers`` (computed without gradients, fp32 copies)."""
        with devices.autocast(self.device, self.precision):
            feats = self.model(self.to_device(image), layers)
        return {k: v.float() for k, v in feats.items()}

    @torch.no_grad()
    def style_grams_each(self, long_side: int, content: Optional[torch.Tensor] = None) -> List[Dict[str, torch.Tensor]]:
        """Position-normalised Gram targets of each style image resized to ``long_side`` (fine layers from
        ``fine_style`` when given). ``content`` (1, 3, H, W) is needed only for colour preservation."""
        o = self.options
        cacheable = o.preserve_color is None  # colour-preserved targets depend on the content image
        if cacheable and long_side in self._gram_cache:
            return self._gram_cache[long_side]
        fine = self._grams_of(self.fine_style_image, long_side, content, self.fine_layers) if self.fine_layers else {}
        each = [dict(self._grams_of(image, long_side, content, self.style_layers), **fine)
                for image in self.style_images]
        if cacheable:
            self._gram_cache[long_side] = each
        return each

    def style_grams(self, long_side: int, content: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """The style images' Gram targets blended with the ``style_blend`` weights."""
        each = self.style_grams_each(long_side, content)
        return {layer: sum(w * grams[layer] for w, grams in zip(self.blend, each)) for layer in each[0]}

    def _grams_of(self, style_image: Image.Image, long_side: int, content: Optional[torch.Tensor],
                  layers) -> Dict[str, torch.Tensor]:
        o = self.options
        s = image_to_tensor(resize_long_side(style_image, long_side))
        if o.preserve_color == "histogram":
            s = color.match_histogram(s, content)
        elif o.preserve_color == "luminance":
            s = color.match_luminance(s, content)
        if s.shape[2] * s.shape[3] > STYLE_TILE_PIXELS:  # a print-size style: sum the Gram over tiles
            return tiling.tiled_grams(self.features, s, layers, tile=1024)
        return {layer: gram_matrix(f) / (f.shape[2] * f.shape[3]) for layer, f in self.features(s, layers).items()}

    def guides(self, height: int, width: int, box: Optional[Tuple[int, int, int, int]] = None) -> Optional[List[torch.Tensor]]:
        """Each style's region of the output (1, 1, H, W) at this size (cropped to ``box``), or None when
        no mask is in use: its own mask (or everywhere) times the content mask."""
        if self.content_mask is None and all(m is None for m in self.style_masks):
            return None
        everywhere = torch.ones(1, 1, height, width)
        limit = _resize_mask(self.content_mask, height, width) if self.content_mask is not None else everywhere
        regions = [limit * (_resize_mask(m, height, width) if m is not None else everywhere) for m in self.style_masks]
        if box is not None:
            y0, y1, x0, x1 = box
            regions = [r[:, :, y0:y1, x0:x1] for r in regions]
        return [r.to(self.device) for r in regions]

    def objective(self, content: torch.Tensor, final_pixels: Optional[int] = None,
                  style_long_side: Optional[int] = None, color_reference: Optional[torch.Tensor] = None,
                  grams: Optional[Dict[str, torch.Tensor]] = None,
                  guides: Optional[List[torch.Tensor]] = None,
                  grams_each: Optional[List[Dict[str, torch.Tensor]]] = None) -> Objective:
        """The loss for optimising an image of ``content``'s size towards ``content`` and the style
        (``grams``, or the style image resized to ``style_long_side``, default: content's long side x style_scale).

        ``final_pixels`` keeps alpha/beta meaning the same at coarse scales and in tiles: the content loss sums
        over positions (it grows with the image) while E_l does not, so it is scaled by final/current pixels."""
        o = self.options
        h, w = content.shape[2:]
        long_side = style_long_side or max(1, round(max(h, w) * o.style_scale))
        targets = self.features(content, self.content_layers) if o.content_weight > 0 else {}
        reference = color_reference if color_reference is not None else content
        guided = None
        if guides is not None and o.style_weight > 0:
            each = grams_each or self.style_grams_each(long_side, reference)
            guided = list(zip(self.blend, each, guides))
        elif grams is None and o.style_weight > 0:
            grams = self.style_grams(long_side, reference)
        scale = (final_pixels / (h * w)) if final_pixels else 1.0
        return Objective(self.model, targets, self.content_layers, grams or {}, self.style_layers,
                         o.content_weight, o.style_weight, o.tv_weight, self.precision, scale, self.memory_format,
                         guided)

    def initial_image(self, content: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The starting image for the coarsest scale: content, white noise, the style, or a file."""
        init = self.options.init
        h, w = content.shape[2:]
        if init == "content":
            return content.clone()
        if init == "noise":
            return torch.rand(content.shape, generator=generator)
        source = self.style_images[0] if init == "style" else load_image(init)
        return image_to_tensor(source.resize((w, h), Image.LANCZOS))

    # -- memory -----------------------------------------------------------------------------------------
    def tile_for(self, width: int, height: int) -> Optional[int]:
        """The tile size for optimising a width x height image, or None when it fits whole.

        Raises NeuralensError (naming the largest size that fits) when it does not fit and tiling is off,
        or when even a small tile would not fit."""
        o = self.options
        if o.tile_size:
            return o.tile_size if max(width, height) > o.tile_size else None
        budget = int(o.max_memory_gb * memory.GB) if o.max_memory_gb else memory.available_bytes(self.device)
        problem = memory.check_fits(width, height, self.precision, o.optimizer, self.device, budget)
        if problem is None:
            return None
        tile = min(MAX_AUTO_TILE, memory.largest_fitting_long_side(1.0, self.precision, o.optimizer, budget))
        tile = tile // tiling.GRID * tiling.GRID
        if o.tile_size == 0 or tile < MIN_TILE:
            raise NeuralensError(problem + ("" if o.tile_size == 0 else " (even in tiles)"))
        return tile

    # -- the run ------------------------------------------------------------------------------------------
    def run(self, content: ImageLike, callback: Optional[Callable[[Step], None]] = None,
            should_stop: Optional[Callable[[], bool]] = None) -> StyleResult:
        """Stylize one content image. ``callback(step)`` is called after every loss evaluation;
        ``should_stop()`` returning True (or Ctrl-C) ends the run early with the current image."""
        o = self.options
        t_start = time.perf_counter()
        timings = dict(self.timings)
        content_image = resize_long_side(load_image(content), o.size)
        full = image_to_tensor(content_image)
        generator = torch.Generator().manual_seed(o.seed if o.seed is not None else torch.seed())
        if o.seed is not None:
            torch.manual_seed(o.seed)
        network_content = color.luminance(full) if o.preserve_color == "luminance" else full

        # Plan every scale first, so that a size that cannot fit is refused before any work.
        plan = []
        for long_side, iterations in plan_scales(o):
            h, w = _scaled_shape(full, long_side)
            tile = self.tile_for(w, h)
            boxes = tiling.tile_boxes(h, w, tile, self._overlap(tile)) if tile else [None]
            plan.append((long_side, iterations, tile, boxes))
        total_iterations = sum(n * len(boxes) for _, n, _, boxes in plan)
        final_pixels = full.shape[2] * full.shape[3]

        history: List[dict] = []
        image = None
        stopped = False
        done = 0
        postprocess = self._postprocess(full)
        bar = _progress_bar(total_iterations) if o.progress else None
        try:
            for scale_index, (long_side, iterations, tile, boxes) in enumerate(plan):
                t_scale = time.perf_counter()
                target = _resize_tensor(network_content, long_side)
                reference = _resize_tensor(full, long_side)
                h, w = target.shape[2:]
                if image is None:
                    image = self.initial_image(reference, generator)
                    if o.preserve_color == "luminance":
                        image = color.luminance(image)
                else:
                    image = F.interpolate(image.cpu(), size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
                run_args = (o, scale_index, total_iterations, t_start, history, callback, should_stop, bar)
                if tile is None:
                    objective = self.objective(self.to_device(target), final_pixels, color_reference=reference,
                                               guides=self.guides(h, w))
                    timings[f"targets_{long_side}"] = time.perf_counter() - t_scale
                    image, steps, stopped = optimise(objective, image.to(self.device), iterations, done, *run_args,
                                                     postprocess)
                else:
                    image, steps, stopped = self._optimise_tiled(image, target, reference, tile, boxes, iterations,
                                                                 final_pixels, done, run_args, postprocess)
                done += steps
                timings[f"scale_{long_side}"] = time.perf_counter() - t_scale
                if stopped:
                    break
        finally:
            if bar is not None:
                bar.close()
        result = postprocess(image)
        timings["total"] = time.perf_counter() - t_start
        return StyleResult(result, history, timings, stopped)

    def _overlap(self, tile: Optional[int]) -> int:
        return min(int(self.options.tile_overlap), (tile or 0) // 4)

    def _optimise_tiled(self, image: torch.Tensor, target: torch.Tensor, reference: torch.Tensor, tile: int, boxes: list,
                        iterations: int, final_pixels: int, done: int, run_args: tuple,
                        postprocess: Callable[[torch.Tensor], Image.Image]) -> Tuple[torch.Tensor, int, bool]:
        """Optimise a too-large ``image`` (kept on the CPU) tile by tile with the whole image's style targets;
        each tile is blended back with feathered weights. Returns (image, evaluations, stopped)."""
        o = self.options
        h, w = image.shape[2:]
        long_side = max(1, round(max(h, w) * o.style_scale))
        grams_each = self.style_grams_each(long_side, reference) if o.style_weight > 0 else None
        grams = self.style_grams(long_side, reference) if o.style_weight > 0 else {}
        overlap = self._overlap(tile)
        image = image.cpu().clone()
        steps_done, stopped = 0, False
        for y0, y1, x0, x1 in boxes:
            objective = self.objective(self.to_device(target[:, :, y0:y1, x0:x1]), final_pixels, grams=grams,
                                       guides=self.guides(h, w, (y0, y1, x0, x1)), grams_each=grams_each)

            def whole(tile_image: torch.Tensor) -> Image.Image:  # previews show the whole image
                composite = image.clone()
                composite[:, :, y0:y1, x0:x1] = tile_image.detach().float().cpu()
                return postprocess(composite)

            current = image[:, :, y0:y1, x0:x1]
            result, steps, stopped = optimise(objective, current.to(self.device), iterations, done + steps_done,
                                              *run_args, whole)
            weight = tiling.feather((y0, y1, x0, x1), h, w, overlap)
            image[:, :, y0:y1, x0:x1] = current * (1 - weight) + result.float().cpu() * weight
            steps_done += steps
            if stopped:
                break
        return image, steps_done, stopped

    def _postprocess(self, full_content: torch.Tensor) -> Callable[[torch.Tensor], Image.Image]:
        """Turn an optimised tensor into the output image (restoring colour in luminance mode)."""
        def convert(image: torch.Tensor) -> Image.Image:
            image = image.detach().float().cpu().contiguous()
            if self.options.preserve_color == "luminance":
                image = color.restore_colour(image, _resize_tensor(full_content, max(image.shape[2:]),
                                                                   exact=image.shape[2:]))
            return tensor_to_image(image)
        return convert


class _ClampPixels(torch.autograd.Function):
    """The image clamped to [0, 1] - what gets saved - with a gradient that still lets out-of-range pixels
    come back: it passes through unchanged except where it would push a pixel further out of range.

    Optimising the loss of the clamped image (instead of clamping only at the end) matters: an unconstrained
    L-BFGS run leaves a few percent of the values outside [0, 1], and clamping them afterwards multiplied the
    style loss by 2-3 in our benchmark runs."""

    @staticmethod
    def forward(ctx, image: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(image)
        return image.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        image, = ctx.saved_tensors
        outward = ((image <= 0) & (grad > 0)) | ((image >= 1) & (grad < 0))  # descent moves against grad
        return grad.masked_fill(outward, 0)


def clamp_pixels(image: torch.Tensor) -> torch.Tensor:
    """``image`` clamped to [0, 1], differentiable (see _ClampPixels)."""
    return _ClampPixels.apply(image)


class _StopOptimising(Exception):
    """Raised inside the loss closure to end an optimisation run (early stop, user stop)."""


def optimise(objective: Objective, image: torch.Tensor, iterations: int, done: int, o: StyleOptions,
             scale_index: int, total: int, t_start: float, history: List[dict],
             callback: Optional[Callable[[Step], None]], should_stop: Optional[Callable[[], bool]],
             bar, to_pil: Callable[[torch.Tensor], Image.Image]) -> Tuple[torch.Tensor, int, bool]:
    """Optimise ``image``'s pixels with at most ``iterations`` loss evaluations (forward + backward passes,
    each costing the same time) of L-BFGS or Adam.

    Returns (best image seen, evaluations made, stopped by the user)."""
    image = image.detach().contiguous().clone().requires_grad_(True)
    # L-BFGS flattens gradients with .view(): keep them NCHW-contiguous even when the network is channels-last.
    image.register_hook(lambda grad: grad.contiguous())
    if o.optimizer == "lbfgs":
        # The style loss is quartic in the features: without a line search L-BFGS diverges when style
        # dominates, so use strong-Wolfe steps (about 1.1 evaluations per iteration once it settles).
        optimizer = torch.optim.LBFGS([image], lr=1.0, max_iter=iterations, max_eval=iterations,
                                      history_size=50, tolerance_grad=0, tolerance_change=0,
                                      line_search_fn="strong_wolfe")
    else:
        optimizer = torch.optim.Adam([image], lr=o.learning_rate)
    size = (image.shape[3], image.shape[2])
    state = {"evals": 0, "best": math.inf, "best_image": image.detach().clamp(0, 1), "improved_at": 0,
             "stopped": False, "early_best": math.inf}

    def closure() -> torch.Tensor:
        if state["evals"] >= iterations:
            raise _StopOptimising
        optimizer.zero_grad(set_to_none=True)
        pixels = clamp_pixels(image)
        losses = objective(pixels)
        losses["total"].backward()
        state["evals"] += 1
        values = {k: float(v.detach()) for k, v in losses.items()}
        if not math.isfinite(values["total"]):
            raise NeuralensError("the loss became infinite or NaN; try smaller weights or --optimizer adam")
        if values["total"] < state["best"]:
            state["best"] = values["total"]
            state["best_image"] = pixels.detach()  # clamp's output: a fresh tensor nothing changes later
        n = state["evals"]
        info = Step(done + n, total, scale_index, size, values["content"], values["style"], values["tv"],
                    values["total"], time.perf_counter() - t_start, lambda: to_pil(state["best_image"]))
        history.append(info.as_dict())
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{size[0]}x{size[1]} content {values['content']:.3g} style {values['style']:.3g}")
        if callback is not None:
            callback(info)
        if should_stop is not None and should_stop():
            state["stopped"] = True
            raise _StopOptimising
        # Early stopping: the best loss has not improved by the tolerance over the last `patience` evaluations.
        if values["total"] < state["early_best"] * (1 - o.early_stop_tolerance):
            state["early_best"], state["improved_at"] = values["total"], n
        elif o.early_stop_patience and n - state["improved_at"] >= o.early_stop_patience:
            raise _StopOptimising
        return losses["total"]

    try:
        if o.optimizer == "lbfgs":
            while state["evals"] < iterations:
                optimizer.step(closure)  # returns early when L-BFGS converges; go on with a fresh history
                optimizer.state.clear()
        else:
            while True:
                optimizer.step(closure)
                with torch.no_grad():
                    image.clamp_(0, 1)
    except _StopOptimising:
        pass
    except KeyboardInterrupt:
        state["stopped"] = True
    return state["best_image"], state["evals"], state["stopped"]


def load_mask(source: ImageLike) -> torch.Tensor:
    """A mask image (any mode; white = on, grey = partly) as a (1, 1, H, W) tensor in [0, 1].
    Raises NeuralensError when it is not an image or is all black."""
    image = load_image(source).convert("L")
    mask = image_to_tensor(image.convert("RGB"))[:, :1]
    if float(mask.max()) < 1 / 255:
        name = source if not isinstance(source, Image.Image) else "a mask"
        raise NeuralensError(f"{name}: mask is empty (all black)")
    return mask


def _resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A mask resized (bilinear, so soft edges stay soft) to height x width; masks of another size than the
    photo are simply stretched to it."""
    if tuple(mask.shape[2:]) == (height, width):
        return mask
    return F.interpolate(mask, size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0, 1)


def _scaled_shape(image: torch.Tensor, long_side: int) -> Tuple[int, int]:
    """(H, W) of ``image`` scaled so that its long side is ``long_side``."""
    h, w = image.shape[2:]
    scale = long_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize_tensor(image: torch.Tensor, long_side: int, exact: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Resize (1, 3, H, W) so its long side is ``long_side`` (or to ``exact`` (H, W)), antialiased."""
    h, w = image.shape[2:]
    exact = exact or _scaled_shape(image, long_side)
    if tuple(exact) == (h, w):
        return image
    return F.interpolate(image, size=tuple(exact), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def _progress_bar(total: int):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="step", dynamic_ncols=True, leave=True)


def stylize(content: ImageLike, style: Union[ImageLike, Sequence[ImageLike]], **options) -> Image.Image:
    """Paint ``content`` in the manner of ``style`` and return the result as a PIL image.

    ``content`` and ``style`` are paths or PIL images (``style`` may be a list, blended with
    ``style_blend``); ``options`` are the fields of ``StyleOptions`` (size, style_weight, iterations, ...)."""
    return StyleTransfer(style, StyleOptions(**options)).run(content).image


def reconstruct(image: ImageLike, content_layer: Optional[str] = None, style_layers: Optional[LayerSpec] = None,
                **options) -> Image.Image:
    """Synthesise an image from white noise that matches ``image``'s features at one layer
    (``content_layer``) or its Gram matrices at a set of layers (``style_layers``) - Gatys 2015, Figure 1.

    Exactly one of the two must be given. ``options`` are StyleOptions fields (size, iterations, ...)."""
    return reconstruct_run(image, content_layer, style_layers, **options).image


def reconstruct_run(image: ImageLike, content_layer: Optional[str] = None,
                    style_layers: Optional[LayerSpec] = None, **options) -> StyleResult:
    """Like ``reconstruct`` but returns the whole StyleResult (history and timings)."""
    if (content_layer is None) == (style_layers is None):
        raise NeuralensError("give either a content layer or style layers to reconstruct from (not both)")
    defaults = dict(init="noise", scales=1, iterations=200, early_stop_patience=0)
    if content_layer is not None:
        defaults.update(content_layers=content_layer, content_weight=1.0, style_weight=0.0)
    else:
        defaults.update(style_layers=style_layers, content_weight=0.0, style_weight=1.0)
    defaults.update(options)
    return StyleTransfer(image, StyleOptions(**defaults)).run(image)
