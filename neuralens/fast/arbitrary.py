"""Arbitrary-style transfer in one pass (AdaIN, Huang & Belongie 2017): any painting, no training per style.

    from neuralens.fast import arbitrary, load_arbitrary
    arbitrary("photo.jpg", "painting.jpg", strength=0.8).save("out.png")     # one call
    model = load_arbitrary()                          # the shipped decoder, loaded once (cached per arguments)
    code = model.encode_style("painting.jpg")         # the painting's relu4_1 statistics, reusable
    model.stylize("photo.jpg", code, strength=1.0).save("out.png")

The decoder file is our own small format, read with ``torch.load(weights_only=True)`` (no pickled code runs):

    {"format": "neuralens-adain-decoder", "version": 1, "width": 32, "info": {...}, "state": {name: fp16 tensor}}

The shipped decoder lives in ``neuralens/fast/models/decoder/`` with its training report; training your own:
``neuralens train-decoder`` (``decoder_training.py``).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from PIL import Image

from .. import devices, weightsfile
from ..errors import NeuralensError
from ..imageio import ImageLike, image_to_tensor, load_image, resize_long_side, tensor_to_image
from ..options import check, option
from ..style import color, tiling
from ..style.resize import resize_mask
from . import quantized
from .adain import DOWNSCALE, Decoder, Encoder, adain, blend, mean_std, pad_to_multiple
from .network import parameter_count

FORMAT = "neuralens-adain-decoder"
VERSION = 1
FILE_KIND = weightsfile.FileKind(
    FORMAT,
    VERSION,
    "decoder file",
    "decoder",
    "not a neuralens AdaIN decoder (train one with `neuralens train-decoder`)",
    "incomplete neuralens decoder file",
)
DECODER_SUFFIX = ".pt"
SHIPPED = Path(__file__).resolve().parent / "models" / "decoder" / "adain.pt"
STYLE_SIZE = 512  # long side of a painting when its statistics are taken (the paper trains with 512-px paintings)
# Larger images go through in overlapping tiles (the encoder's first block alone holds 64 fp32 channels per pixel:
# a 1536x1536 image whole peaks near 2 GB, see benchmarks/results/fast_arbitrary.md); each tile is normalised
# with the whole image's content statistics, so the tiles agree.
MAX_WHOLE_PIXELS = 1536 * 1536
TILE = 1024
TILE_OVERLAP = 64
PRESERVE_COLOR = (None, "luminance", "histogram")

StyleInput = Union[ImageLike, "StyleCode"]
PRECISIONS = (*devices.PRECISIONS, "int8")


def pick_precision(name: str, device: torch.device) -> str:
    """``name`` (one of PRECISIONS) resolved for ``device``: 'auto' is 'int8' on a CPU that multiplies 8-bit
    integers natively when onnxruntime is installed (1.7x faster than bf16 there, see ``quantized.py``), except on
    one with AMX-bf16 tiles, else ``devices.pick_precision``. NeuralensError for 'int8' where it cannot run."""
    if name == "int8":
        problem = quantized.usable(device)
        if problem is not None:
            raise NeuralensError(problem)
        return name
    # Measured with the shipped decoder, whole --fast at 512x512 (benchmarks/README.md section 8): on the 2-core
    # EPYC with AVX512-VNNI and AVX512-BF16 int8 233-264 ms, bf16 423-426 ms; on the 2-core Xeon with AMX
    # int8 204-215 ms, bf16 151-159 ms (the encoder 129 against 79 ms): AMX's bf16 tiles win there.
    if name == "auto" and quantized.fast_here(device) and not devices.cpu_has_amx_bf16():
        return "int8"
    return devices.pick_precision(name, device)


@dataclass
class ArbitraryOptions:
    """The settings `neuralens stylize --fast` adds to stylize's own (size, style blend, masks, preserve colour,
    style scale, device and precision mean there what they mean for the optimisation)."""

    fast: bool = option(
        False, "arbitrary-style transfer in one pass (AdaIN): any STYLE, no optimisation, no training per painting"
    )
    decoder: Optional[str] = option(
        None, "with --fast: an AdaIN decoder file (neuralens train-decoder)", kind="path", none_help="the shipped one"
    )
    refine: int = option(
        0,
        "with --fast: then this many optimisation evaluations at the output size, starting from the fast result "
        "(the normal engine's objective; 0: none)",
        minimum=0,
        metavar="N",
    )

    def validate(self) -> ArbitraryOptions:
        """Check every value; raise OptionError naming the first bad field. Returns self."""
        return check(self)


@dataclass
class StyleCode:
    """A painting as AdaIN uses it: the per-channel mean and standard deviation (1, 512, 1, 1) of its relu4_1
    features. Codes blend linearly (AdaIN is linear in them, so blending codes equals blending the AdaIN outputs
    in feature space, the paper's style interpolation)."""

    mean: torch.Tensor
    std: torch.Tensor
    name: str = "style"
    size: Optional[Tuple[int, int]] = None  # (width, height) of the painting as encoded

    @staticmethod
    def blend(codes: Sequence[StyleCode], weights: Optional[Sequence[float]] = None) -> StyleCode:
        """The weighted mix of ``codes`` (weights normalised to sum 1; default equal)."""
        if not codes:
            raise NeuralensError("no styles given")
        weights = _normalised(weights, len(codes))
        if len(codes) == 1:
            return codes[0]
        mean = sum(w * c.mean for w, c in zip(weights, codes))
        std = sum(w * c.std for w, c in zip(weights, codes))
        return StyleCode(mean, std, "+".join(c.name for c in codes))

    def to_dict(self) -> dict:
        """Name, size and a summary of the statistics (JSON-ready)."""
        return {
            "name": self.name,
            "size": list(self.size) if self.size else None,
            "channels": int(self.mean.shape[1]),
            "mean_of_means": round(float(self.mean.mean()), 4),
            "mean_of_stds": round(float(self.std.mean()), 4),
        }


def _normalised(weights: Optional[Sequence[float]], count: int) -> List[float]:
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise NeuralensError(f"{len(weights)} style weights for {count} styles")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise NeuralensError("style weights must be >= 0 and not all 0")
    total = sum(weights)
    return [w / total for w in weights]


@dataclass
class ArbitraryModel:
    """The encoder (VGG19 to relu4_1) and a trained decoder, ready to paint any photo in any painting's style.

    ``device`` as in ``stylize``; ``precision`` one of PRECISIONS: 'auto' is int8 (onnxruntime, ``quantized.py``)
    on a CPU with 8-bit dot-product units and no AMX, else bf16 where the CPU or GPU runs it natively, else fp32."""

    decoder: Decoder
    info: Dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None
    device: str = "auto"
    precision: str = "auto"
    style_size: int = STYLE_SIZE

    def __post_init__(self) -> None:
        self._device = devices.pick_device(self.device)
        self._precision = pick_precision(self.precision, self._device)
        devices.configure_threads()
        # Channels-last measured faster for both networks at 512 px and above in fp32 on the 2-core CPU
        # (benchmarks/results/fast_arbitrary.md); MPS does not support it.
        channels_last = self._device.type != "mps"
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.encoder = Encoder(None, self._device, channels_last).eval()
        self.decoder = self.decoder.to(self._device, memory_format=self._memory_format).eval()
        self.decoder.requires_grad_(False)
        self._int8: Optional[Tuple[Callable, Callable]] = None
        if self._precision == "int8":
            self._int8 = quantized.quantize(self.encoder, self.decoder, say=quantized.note_on_terminal)

    # -- the two networks -----------------------------------------------------------------------------------
    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        if self._int8 is not None:
            return self._int8[0](image)
        x = image.to(self._device).contiguous(memory_format=self._memory_format)
        with devices.autocast(self._device, self._precision):
            return self.encoder(x).float()

    def _decode(self, features: torch.Tensor) -> torch.Tensor:
        if self._int8 is not None:
            return self._int8[1](features)
        x = features.to(self._device).contiguous(memory_format=self._memory_format)
        with devices.autocast(self._device, self._precision):
            return self.decoder(x).float()

    # -- styles -----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_style(self, style: ImageLike, size: Optional[int] = None) -> StyleCode:
        """The statistics of the painting ``style`` (a path or PIL image) with its long side ``size`` px (default
        ``style_size``, 512). Reuse the code for any number of photos."""
        painting = load_image(style)
        painting = resize_long_side(painting, size or self.style_size)
        features = self._encode(pad_to_multiple(image_to_tensor(painting)))
        fh, fw = -(-painting.height // DOWNSCALE), -(-painting.width // DOWNSCALE)
        mean, std = mean_std(features[:, :, :fh, :fw])
        name = Path(style).stem if not isinstance(style, Image.Image) else "style"
        return StyleCode(mean.cpu(), std.cpu(), name, painting.size)

    def codes(self, styles: Union[StyleInput, Sequence[StyleInput]], size: Optional[int] = None) -> List[StyleCode]:
        """StyleCodes for one or several styles (paths, PIL images or codes, which are kept as they are)."""
        items = list(styles) if isinstance(styles, (list, tuple)) else [styles]
        if not items:
            raise NeuralensError("give at least one style image")
        return [s if isinstance(s, StyleCode) else self.encode_style(s, size) for s in items]

    # -- stylizing --------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def stylize_tensor(
        self,
        content: torch.Tensor,
        codes: Union[StyleCode, Sequence[StyleCode]],
        strength: float = 1.0,
        weights: Optional[Sequence[float]] = None,
        masks: Optional[Sequence[Optional[torch.Tensor]]] = None,
    ) -> torch.Tensor:
        """(1, 3, H, W) photo in [0, 1] -> stylized (1, 3, H, W) in [0, 1] on the CPU, any H and W.

        Several ``codes`` are blended with ``weights`` unless ``masks`` (one per code: (1, 1, h, w) in [0, 1],
        stretched to the photo, or None for everywhere) give each its region: then AdaIN runs per region with
        that region's content statistics and the mask at feature resolution (Huang & Belongie, section 7), and
        where no mask is on the photo's own features stay. Large images go in tiles (see MAX_WHOLE_PIXELS)."""
        codes = [codes] if isinstance(codes, StyleCode) else list(codes)
        if masks is not None and any(m is not None for m in masks):
            if len(masks) != len(codes):
                raise NeuralensError(f"{len(masks)} masks for {len(codes)} styles")
            regions = list(zip(codes, masks))
        else:
            regions = [(StyleCode.blend(codes, weights), None)]
        h, w = content.shape[2:]
        full_masks = [resize_mask(m.float(), h, w) if m is not None else None for _, m in regions]
        boxes = [(0, h, 0, w)] if h * w <= MAX_WHOLE_PIXELS else tiling.tile_boxes(h, w, TILE, TILE_OVERLAP)

        # Pass 1: features of each tile, and the content statistics of the whole image (per region).
        tiles = []
        counts = [0.0] * len(regions)  # per region: sum of the weights, and (sum w*f, sum w*f^2) per channel
        moments = [None] * len(regions)
        for box in boxes:
            y0, y1, x0, x1 = box
            features = self._encode(pad_to_multiple(content[:, :, y0:y1, x0:x1])).cpu()
            fh, fw = -(-(y1 - y0) // DOWNSCALE), -(-(x1 - x0) // DOWNSCALE)
            tile_masks = [_feature_mask(m, box, features.shape[2:]) if m is not None else None for m in full_masks]
            valid = features[:, :, :fh, :fw]
            for k, m in enumerate(tile_masks):
                wgt = m[:, :, :fh, :fw] if m is not None else torch.ones(1, 1, fh, fw)
                part = torch.stack([(valid * wgt).sum((2, 3)), (valid.pow(2) * wgt).sum((2, 3))])
                moments[k] = part if moments[k] is None else moments[k] + part
                counts[k] += float(wgt.sum())
            tiles.append((box, features, tile_masks))
        stats = []
        for k in range(len(regions)):
            count = max(counts[k], 1e-8)
            mean = (moments[k][0] / count).view(1, -1, 1, 1)
            var = (moments[k][1] / count).view(1, -1, 1, 1) - mean.pow(2)
            stats.append((mean, (var.clamp_min(0) + 1e-5).sqrt()))

        # Pass 2: AdaIN with the whole image's statistics, decode, feather the tiles together.
        out = torch.zeros(1, 3, h, w)
        total = torch.zeros(1, 1, h, w)
        for box, features, tile_masks in tiles:
            y0, y1, x0, x1 = box
            target = _regional_adain(features, regions, tile_masks, stats)
            image = self._decode(blend(features, target, strength)).cpu()[:, :, : y1 - y0, : x1 - x0]
            weight = tiling.feather(box, h, w, TILE_OVERLAP) if len(boxes) > 1 else torch.ones(1, 1, h, w)
            out[:, :, y0:y1, x0:x1] += image * weight
            total[:, :, y0:y1, x0:x1] += weight
        return (out / total).clamp(0, 1)

    def stylize(
        self,
        content: ImageLike,
        style: Union[StyleInput, Sequence[StyleInput]],
        strength: float = 1.0,
        size: Optional[int] = None,
        preserve_color: Optional[str] = None,
        style_weights: Optional[Sequence[float]] = None,
        masks: Optional[Sequence[Optional[ImageLike]]] = None,
        style_size: Optional[int] = None,
    ) -> Image.Image:
        """Paint ``content`` (a path or PIL image) in the style of ``style`` (a StyleCode, a painting's path or PIL
        image, or a list of them, blended with ``style_weights`` or placed by ``masks``) and return a PIL image of
        the photo's size (or with its long side ``size``). ``strength`` in [0, 1] is the paper's alpha (0: the
        photo through the decoder, 1: the full style); ``preserve_color``: None, 'luminance' (the photo's colours
        with the result's luminance) or 'histogram' (the result's colours matched to the photo)."""
        check_strength(strength)
        if preserve_color not in PRESERVE_COLOR:
            raise NeuralensError(f"preserve_color must be luminance or histogram, got {preserve_color!r}")
        photo = load_image(content)
        if size is not None:
            photo = resize_long_side(photo, size)
        codes = self.codes(style, style_size)
        mask_tensors = None
        if masks is not None:
            from ..style.targets import load_mask  # noqa: PLC0415

            mask_tensors = [load_mask(m) if m is not None else None for m in masks]
        x = image_to_tensor(photo)
        out = self.stylize_tensor(x, codes, strength, style_weights, mask_tensors)
        return tensor_to_image(finish_colour(out, x, preserve_color))

    @torch.inference_mode()
    def reconstruct_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """The photo's own relu4_1 features decoded (no style): how much the decoder loses, (1, 3, H, W) in [0, 1]."""
        h, w = image.shape[2:]
        return self._decode(self._encode(pad_to_multiple(image))).cpu()[:, :, :h, :w].clamp(0, 1)

    # -- the file -------------------------------------------------------------------------------------------
    def state(self) -> Dict[str, torch.Tensor]:
        """The decoder's weights as stored: fp16 on the CPU (half the size)."""
        return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in self.decoder.state_dict().items()}

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the decoder file atomically; returns its path."""
        return save_decoder(self.decoder, path, self.info)

    def to_dict(self) -> dict:
        """File, width, parameters, device, precision and the training info, JSON-ready."""
        return {
            "path": str(self.path) if self.path else None,
            "width": self.decoder.width,
            "parameters": parameter_count(self.decoder),
            "device": str(self._device),
            "precision": self._precision,
            "style_size": self.style_size,
            "info": _json_ready(self.info),
        }


def _feature_mask(mask: torch.Tensor, box: tiling.Box, shape: Tuple[int, int]) -> torch.Tensor:
    """The part of a photo-sized mask under ``box``, padded like the tile and averaged to feature resolution."""
    y0, y1, x0, x1 = box
    padded = pad_to_multiple(mask[:, :, y0:y1, x0:x1])
    return F.avg_pool2d(padded, DOWNSCALE)[:, :, : shape[0], : shape[1]]


def _regional_adain(features, regions, tile_masks, stats) -> torch.Tensor:
    """AdaIN of one tile's features: one region (the blended code everywhere), or each region's style where its
    mask is on (weights normalised where masks overlap), the photo's own features where none is."""
    if len(regions) == 1 and tile_masks[0] is None:
        code = regions[0][0]
        return adain(features, code.mean, code.std, stats[0])
    ones = torch.ones(1, 1, *features.shape[2:])
    weights = [m if m is not None else ones for m in tile_masks]
    coverage = sum(weights)
    scale = torch.where(coverage > 1, 1.0 / coverage.clamp_min(1e-8), torch.ones_like(coverage))
    out = features * (1 - coverage * scale)
    for (code, _), wgt, st in zip(regions, weights, stats):
        out = out + adain(features, code.mean, code.std, st) * wgt * scale
    return out


def check_strength(strength: float) -> None:
    """NeuralensError unless 0 <= strength <= 1."""
    if not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise NeuralensError(f"strength must be between 0 and 1, got {strength}")


def finish_colour(out: torch.Tensor, content: torch.Tensor, preserve_color: Optional[str]) -> torch.Tensor:
    """Colour preservation after the fact, as for the trained models (``model.StyleModel.stylize``)."""
    if preserve_color == "luminance":
        return color.restore_colour(out, content)
    if preserve_color == "histogram":
        return color.match_histogram(out, content).clamp(0, 1)
    return out


# ----------------------------------------------------------------------------------------------- the file format


def save_decoder(decoder: Decoder, path: Union[str, os.PathLike], info: Optional[dict] = None) -> Path:
    """Write ``decoder`` (fp16 weights) with ``info`` to ``path`` atomically; returns the path."""
    data = {
        "format": FORMAT,
        "version": VERSION,
        "width": decoder.width,
        "info": _json_ready(info or {}),
        "state": weightsfile.half_state(decoder),
    }
    return weightsfile.write(data, path)


def read_decoder_file(path: Union[str, os.PathLike]) -> dict:
    """The checked contents of a decoder file: {'width', 'info', 'state'}. NeuralensError (one line) for a
    missing, corrupt or foreign file, or one written by a newer neuralens."""
    return weightsfile.read(path, FILE_KIND)


def load_decoder(path: Union[str, os.PathLike]) -> Tuple[Decoder, dict]:
    """(Decoder with the file's weights, its info). NeuralensError as in ``read_decoder_file``."""
    data = read_decoder_file(path)
    decoder = Decoder(data["width"])
    try:
        decoder.load_state_dict({k: v.float() for k, v in data["state"].items()})
    except (RuntimeError, KeyError, AttributeError) as exc:
        raise NeuralensError(f"{path}: weights do not fit the decoder ({str(exc).splitlines()[0]})") from None
    return decoder, dict(data.get("info") or {})


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, device: str, precision: str, mtime: float) -> ArbitraryModel:
    decoder, info = load_decoder(path)
    return ArbitraryModel(decoder, info, Path(path), device, precision)


def load_arbitrary(
    decoder: Optional[Union[str, os.PathLike]] = None, device: str = "auto", precision: str = "auto"
) -> ArbitraryModel:
    """The arbitrary-style model with the shipped decoder (``decoder=None``) or a decoder file, ready to stylize.
    Cached per arguments (and file modification time): calling it again is free. NeuralensError for a missing,
    corrupt or newer decoder file, or an unavailable device."""
    path = Path(decoder) if decoder is not None else SHIPPED
    if decoder is None and not path.is_file():
        raise NeuralensError(f"the shipped AdaIN decoder is missing ({path}); reinstall neuralens")
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    devices.pick_device(device)  # an unknown or unavailable device is refused before loading anything
    return _load_cached(str(path), device, precision, mtime)


def arbitrary(
    content: ImageLike,
    style: Union[StyleInput, Sequence[StyleInput]],
    strength: float = 1.0,
    size: Optional[int] = None,
    preserve_color: Optional[str] = None,
    style_weights: Optional[Sequence[float]] = None,
    masks: Optional[Sequence[Optional[ImageLike]]] = None,
    style_size: Optional[int] = None,
    decoder: Optional[Union[str, os.PathLike]] = None,
    device: str = "auto",
    precision: str = "auto",
) -> Image.Image:
    """Paint ``content`` (path or PIL image) in the style of ``style`` (a painting, a StyleCode, or a list of
    them: blended in feature space with ``style_weights``, or each in its region with ``masks``) in one pass and
    return a PIL image. See ``ArbitraryModel.stylize`` for the other arguments; the model is loaded once."""
    model = load_arbitrary(decoder, device, precision)
    return model.stylize(content, style, strength, size, preserve_color, style_weights, masks, style_size)


def _json_ready(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class _CallableModule(types.ModuleType):
    """``neuralens.fast.arbitrary`` is both this module and the function above: importing the module makes Python
    set the package's attribute ``arbitrary`` to the module, over the function of ``fast/__init__.py``. Calling the
    module calls the function, so ``from neuralens.fast import arbitrary; arbitrary(photo, painting)`` works
    whichever of the two it got."""

    def __call__(self, *args: Any, **kwargs: Any) -> Image.Image:
        return arbitrary(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
