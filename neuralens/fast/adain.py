"""Adaptive instance normalisation (Huang & Belongie 2017, "Arbitrary Style Transfer in Real-time with Adaptive
Instance Normalization"): the operation, the encoder and the decoder.

    t = AdaIN(f(c), f(s)) = sigma(f(s)) * (f(c) - mu(f(c))) / sigma(f(c)) + mu(f(s))
    output = g((1 - alpha) * f(c) + alpha * t)

``f`` is the project's frozen VGG19 (``neuralens.backbone``) up to relu4_1, which applies its own preprocessing
(RGB in [0, 1] in); ``g`` is the ``Decoder``: the encoder mirrored, nearest-neighbour upsampling instead of
pooling and reflection padding (no transposed convolutions: they leave checkerboard artefacts).
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..backbone import load_vgg19

ADAIN_LAYER = "relu4_1"
# The layers whose channel statistics the style loss matches (the paper: relu1_1, relu2_1, relu3_1, relu4_1).
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
# Mean activation of each layer of our (original Caffe) VGG19 over 15 of the gathered photos at 256 px. The paper's
# code uses a "normalised" VGG19, rescaled so that every layer's mean activation is 1; the training loss divides by
# these to weigh the layers as it does (unscaled, relu4_1's squared errors are ~400x relu1_1's and the fine-scale
# statistics would hardly count).
LAYER_SCALE = {"relu1_1": 23.0, "relu2_1": 120.0, "relu3_1": 125.0, "relu4_1": 480.0}
ENCODER_CHANNELS = 512
DOWNSCALE = 8  # three 2x2 poolings between the image and relu4_1
EPS = 1e-5
# Channels of the decoder's last block; the paper's decoder mirrors VGG19 (64). Chosen by measurement
# (benchmarks/results/fast_arbitrary.md): at 512x512 in fp32 on the 2-core CPU the full-width decoder costs as much
# as the encoder (~63 GMAC each; 1.9 s vs 2.0 s channels-last on the loaded machine) and the half-width one 0.75 s,
# and a training step (about three encoder and three decoder passes) ~1.4x fewer FLOPs. Full width: for a GPU.
DEFAULT_WIDTH = 32

Stats = Tuple[torch.Tensor, torch.Tensor]  # (mean, std), each (N, C, 1, 1)


def mean_std(features: torch.Tensor, mask: Optional[torch.Tensor] = None, eps: float = EPS) -> Stats:
    """Per-channel mean and standard deviation of (N, C, H, W) ``features`` over the positions, each (N, C, 1, 1).

    ``mask`` (N or 1, 1, H, W), weights in [0, 1], gives weighted statistics of a region. The deviation is the
    biased one (divided by the number of positions) plus ``eps`` under the root, so a flat map gives sqrt(eps)."""
    x = features.float()
    if mask is None:
        mean = x.mean((2, 3), keepdim=True)
        var = (x - mean).pow(2).mean((2, 3), keepdim=True)
    else:
        w = mask.float()
        total = w.sum((2, 3), keepdim=True).clamp_min(1e-8)
        mean = (x * w).sum((2, 3), keepdim=True) / total
        var = ((x - mean).pow(2) * w).sum((2, 3), keepdim=True) / total
    return mean, (var + eps).sqrt()


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, content_stats=None) -> torch.Tensor:
    """Give ``content`` features (N, C, H, W) the channel statistics (N or 1, C, 1, 1) of the style.

    ``content_stats`` (mean, std) replaces the content's own statistics: a tile uses the whole image's, a region
    its own masked ones."""
    mean, std = content_stats if content_stats is not None else mean_std(content)
    return (content.float() - mean) / std * style_std + style_mean


def blend(content: torch.Tensor, target: torch.Tensor, strength: float) -> torch.Tensor:
    """(1 - strength) * content + strength * target: the paper's content-style trade-off alpha."""
    if strength >= 1.0:
        return target
    return content.float() * (1.0 - strength) + target * strength


class Encoder(nn.Module):
    """VGG19 up to relu4_1, frozen: ``encoder(images)`` -> relu4_1 features; ``encoder(images, layers)`` ->
    {layer: features}. Images are RGB in [0, 1]; the VGG19 module does its own preprocessing."""

    def __init__(self, weights: Optional[str] = None, device: torch.device | str = "cpu", channels_last: bool = False):
        super().__init__()
        self.vgg = load_vgg19(ADAIN_LAYER, "max", weights, device, channels_last)

    def forward(self, images: torch.Tensor, layers: Optional[Iterable[str]] = None):
        if layers is None:
            return self.vgg(images, [ADAIN_LAYER])[ADAIN_LAYER]
        return self.vgg(images, layers)


def _conv(channels_in: int, channels_out: int, relu: bool = True) -> nn.Sequential:
    layers = [nn.ReflectionPad2d(1), nn.Conv2d(channels_in, channels_out, 3)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Decoder(nn.Module):
    """relu4_1 features (N, 512, H/8, W/8) -> image (N, 3, H, W), about [0, 1] (clamp it for display).

    VGG19's layers from relu4_1 down to conv1_1 in reverse, with ``width`` channels where VGG19's first block has
    64 (64: the paper's decoder, 3.5 M parameters; 32: half width, 1.2 M, about a third of the work):

        conv 512->4w, up x2, 3 x conv 4w->4w, conv 4w->2w, up x2, conv 2w->2w, conv 2w->w, up x2, conv w->w, conv w->3
    """

    def __init__(self, width: int = DEFAULT_WIDTH):
        super().__init__()
        self.width = w = width
        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.layers = nn.Sequential(
            _conv(ENCODER_CHANNELS, 4 * w),
            up,
            _conv(4 * w, 4 * w),
            _conv(4 * w, 4 * w),
            _conv(4 * w, 4 * w),
            _conv(4 * w, 2 * w),
            up,
            _conv(2 * w, 2 * w),
            _conv(2 * w, w),
            up,
            _conv(w, w),
            _conv(w, 3, relu=False),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def pad_to_multiple(image: torch.Tensor, multiple: int = DOWNSCALE) -> torch.Tensor:
    """``image`` (N, C, H, W) padded at the bottom and right (reflected) to a multiple of ``multiple`` and at least
    2 * ``multiple``, so that the decoder's output can be cropped back to H x W exactly (odd sizes included)."""
    h, w = image.shape[2:]
    pad_h, pad_w = max(2 * multiple, h + (-h) % multiple) - h, max(2 * multiple, w + (-w) % multiple) - w
    if not (pad_h or pad_w):
        return image
    mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


def style_statistics(features: Dict[str, torch.Tensor]) -> Dict[str, Stats]:
    """{layer: (mean, std)} of encoder features {layer: (N, C, H, W)}."""
    return {name: mean_std(value) for name, value in features.items()}
