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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDTH = 32
RESIDUAL_BLOCKS = 5


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


class TransformerNet(nn.Module):
    """Image (N, 3, H, W) in [0, 1] -> stylized image (N, 3, H, W), about [0, 1] (clamp it for display)."""

    def __init__(self, width: int = DEFAULT_WIDTH):
        super().__init__()
        self.width = width
        w = width
        self.encode = nn.Sequential(
            ConvNormReLU(3, w, 9), ConvNormReLU(w, 2 * w, 3, 2), ConvNormReLU(2 * w, 4 * w, 3, 2)
        )
        self.residual = nn.Sequential(*(ResidualBlock(4 * w) for _ in range(RESIDUAL_BLOCKS)))
        self.decode = nn.Sequential(UpsampleConv(4 * w, 2 * w), UpsampleConv(2 * w, w), ConvLayer(w, 3, 9))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[2:]
        # Two stride-2 steps: pad to a multiple of 4 (and at least 8, what the 9x9 border padding needs), crop back.
        pad_h, pad_w = max(8, h + (-h) % 4) - h, max(8, w + (-w) % 4) - w
        x = image - 0.5
        if pad_h or pad_w:
            mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        y = self.decode(self.residual(self.encode(x))) + 0.5
        return y[:, :, :h, :w]


def parameter_count(network: nn.Module) -> int:
    """Number of trainable numbers in ``network``.

    >>> parameter_count(TransformerNet(32)), parameter_count(TransformerNet(16))
    (1679235, 424899)
    """
    return sum(p.numel() for p in network.parameters())
