"""The losses of Gatys, Ecker & Bethge (2015), written as in the paper.

For a layer with N feature maps of M = height x width positions, F is the N x M matrix of the generated
image's activations and P (content) or A (style Gram) the targets:

    content loss     L_content = 1/2 * sum (F - P)^2
    Gram matrix      G = F F^T                                   (N x N)
    style layer      E_l = 1 / (4 N^2 M^2) * sum (G - A)^2
    style loss       L_style = sum_l w_l E_l
    total            alpha * L_content + beta * L_style (+ tv_weight * total variation)

Everything here is computed in fp32 even when the network ran in bf16: the Gram sums over M and its
squared differences lose too much in 8 mantissa bits.
"""
from __future__ import annotations

from typing import Mapping

import torch


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix G = F F^T of activations (B, N, H, W) -> (B, N, N), in fp32, not normalised."""
    b, n = features.shape[:2]
    flat = features.reshape(b, n, -1).float()
    return torch.bmm(flat, flat.transpose(1, 2))


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_content = 1/2 * sum (F - P)^2 over all positions and channels (fp32 scalar)."""
    return 0.5 * (features.float() - target.float()).pow(2).sum()


def style_layer_loss(gram: torch.Tensor, target_gram: torch.Tensor, n_channels: int, n_positions: int) -> torch.Tensor:
    """E_l = 1 / (4 N^2 M^2) * sum (G - A)^2 for one layer (fp32 scalar)."""
    scale = 1.0 / (4.0 * n_channels**2 * float(n_positions) ** 2)
    return scale * (gram.float() - target_gram.float()).pow(2).sum()


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float]) -> torch.Tensor:
    """L_style = sum_l w_l E_l over the layers in ``layer_weights``; ``features`` are the generated image's
    activations by layer name, ``target_grams`` the style's Gram matrices (B=1, N, N)."""
    total = torch.zeros((), dtype=torch.float32, device=next(iter(features.values())).device)
    for layer, weight in layer_weights.items():
        f = features[layer]
        n, m = f.shape[1], f.shape[2] * f.shape[3]
        total = total + weight * style_layer_loss(gram_matrix(f), target_grams[layer], n, m)
    return total


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: sum of squared differences between neighbouring pixels (smooths noise)."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.float().pow(2).sum() + dy.float().pow(2).sum()
