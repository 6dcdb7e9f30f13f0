"""The losses of style training: the loss network (the frozen VGG19 cut after the deepest layer used, the
painting's Gram matrices computed once, and the perceptual objective with the losses of
``neuralens.style.losses``), and distillation from a trained model (``train-style --teacher``)."""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from .. import devices
from ..backbone import layer_index, load_vgg19
from ..style.losses import content_loss, feature_style_loss, gram_matrix, tv_loss
from ..style.options import parse_layers
from .options import TrainOptions


class LossNetwork:
    """The frozen VGG19 cut after the deepest layer used, the painting's Gram matrices, and the objective."""

    def __init__(self, options: TrainOptions, device: torch.device, precision: str, memory_format):
        self.content_layers = parse_layers(options.content_layers, "content layers")
        self.style_layers = parse_layers(options.style_layers, "style layers")
        self.layers = sorted(set(self.content_layers) | set(self.style_layers), key=layer_index)
        self.device, self.precision, self.memory_format = device, precision, memory_format
        self.vgg = load_vgg19(self.layers[-1], "max", None, device, memory_format == torch.channels_last)
        self.options = options
        self.style_grams: Dict[str, torch.Tensor] = {}

    def features(self, images: torch.Tensor, layers) -> Dict[str, torch.Tensor]:
        with devices.autocast(self.device, self.precision):
            return self.vgg(images.contiguous(memory_format=self.memory_format), layers)

    @torch.no_grad()
    def set_style(self, style: torch.Tensor) -> None:
        """Compute the painting's Gram matrices (1, N, N) once, divided by their number of positions: the
        painting (``style_size`` px) has many more positions than a training crop, and E_l compares Grams
        of the crop's M positions (as ``stylize`` does, the target is scaled back by the crop's M)."""
        feats = self.features(style.to(self.device), self.style_layers)
        self.style_grams = {k: gram_matrix(v.float()) / (v.shape[2] * v.shape[3]) for k, v in feats.items()}

    def __call__(self, photos: torch.Tensor, stylized: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The losses of a batch (fp32 scalars, averaged over the batch): content, style, tv and the weighted total."""
        o = self.options
        batch = photos.shape[0]
        with torch.no_grad():
            targets = self.features(photos, self.content_layers)
        feats = self.features(stylized, self.layers)
        content = sum(w * content_loss(feats[k], targets[k]) for k, w in self.content_layers.items()) / batch
        style = (
            sum(
                w * feature_style_loss(feats[k], self.style_grams[k] * (feats[k].shape[2] * feats[k].shape[3]))
                for k, w in self.style_layers.items()
            )
            / batch
        )
        tv = tv_loss(stylized) / batch if o.tv_weight else torch.zeros((), device=photos.device)
        total = o.content_weight * content + o.style_weight * style + o.tv_weight * tv
        return {"content": content, "style": style, "tv": tv, "total": total}


class DistillationLoss:
    """Imitating a trained network (knowledge distillation, Hinton et al. 2015, here image to image): the mean
    squared difference between the network's output and the teacher's on the same crops. The student takes the
    teacher's look into another architecture (a Johnson network into a ShuffleNet) without the loss network:
    measured on the 2-core CPU, a step costs a fraction of a perceptual one, which runs VGG19 three times."""

    def __init__(self, teacher: nn.Module, device: torch.device):
        self.teacher = teacher.to(device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def __call__(self, photos: torch.Tensor, stylized: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The distillation loss of a batch as ``{'distill', 'total'}`` (fp32 scalars)."""
        with torch.no_grad():
            target = self.teacher(photos.float()).clamp(0, 1)
        distill = F.mse_loss(stylized, target)
        return {"distill": distill, "total": distill}
