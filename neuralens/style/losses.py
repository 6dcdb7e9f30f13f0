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

from typing import Mapping, Optional

import torch


def _flatten(features: torch.Tensor):
    """Activations (B, N, H, W) as a matrix without a copy: (B, M, N) when they are channels-last (that is
    their memory order), else (B, N, M); and whether it is the former. Keeping the network's layout matters:
    autograd summing gradients of two layouts made an evaluation several times slower."""
    b, n = features.shape[:2]
    if n > 1 and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(b, -1, n), True
    return features.reshape(b, n, -1), False


def _gram_of_flat(flat: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return torch.bmm(flat.transpose(1, 2), flat) if channels_last else torch.bmm(flat, flat.transpose(1, 2))


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix G = F F^T of activations (B, N, H, W) -> (B, N, N), in fp32, not normalised."""
    flat, channels_last = _flatten(features)
    return _gram_of_flat(flat.float(), channels_last)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_content = 1/2 * sum (F - P)^2 over all positions and channels (fp32 scalar)."""
    return 0.5 * (features.float() - target.float()).pow(2).sum()


def style_layer_loss(gram: torch.Tensor, target_gram: torch.Tensor, n_channels: int, n_positions: int) -> torch.Tensor:
    """E_l = 1 / (4 N^2 M^2) * sum (G - A)^2 for one layer (fp32 scalar)."""
    scale = 1.0 / (4.0 * n_channels**2 * float(n_positions) ** 2)
    return scale * (gram.float() - target_gram.float()).pow(2).sum()


class _FeatureStyleLoss(torch.autograd.Function):
    """E_l straight from the activations, with the gradient written out: dE/dF = 2 s (D + D^T) F, D = G - A.

    Autograd through ``gram_matrix`` would run two fp32 (N x M) products backwards and convert the bf16
    activations to fp32 and back; here the Gram is still formed in fp32 but the backward product runs in the
    activations' own precision and layout (bf16 on a CPU with AMX: a quarter of each evaluation's time)."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, target_gram: torch.Tensor, scale: float) -> torch.Tensor:
        flat, channels_last = _flatten(features)  # the gradient is built in the same layout below
        wide = flat if flat.dtype in (torch.float32, torch.float64) else flat.float()  # bf16 -> fp32
        diff = _gram_of_flat(wide, channels_last) - target_gram.to(wide.dtype)
        ctx.save_for_backward(flat, diff)
        ctx.scale, ctx.shape, ctx.channels_last = scale, features.shape, channels_last
        return scale * diff.pow(2).sum()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        flat, diff = ctx.saved_tensors
        b, n, h, w = ctx.shape
        factor = (2.0 * ctx.scale) * grad_output.to(diff.dtype)
        sym = (factor * (diff + diff.transpose(1, 2))).to(flat.dtype)
        if ctx.channels_last:
            grad = torch.bmm(flat, sym).reshape(b, h, w, n).permute(0, 3, 1, 2)  # (B, M, N) -> NCHW view
        else:
            grad = torch.bmm(sym, flat).reshape(b, n, h, w)
        return grad, None, None


def feature_style_loss(
    features: torch.Tensor, target_gram: torch.Tensor, n_positions: Optional[float] = None
) -> torch.Tensor:
    """E_l = 1 / (4 N^2 M^2) * sum (G - A)^2 computed from the activations (B, N, H, W) directly - the same
    value as ``style_layer_loss(gram_matrix(features), target_gram, N, M)``, faster to differentiate.
    ``n_positions`` overrides M (guided Grams use the mask's sum of squares)."""
    n = features.shape[1]
    m = float(n_positions if n_positions is not None else features.shape[2] * features.shape[3])
    return _FeatureStyleLoss.apply(features, target_gram, 1.0 / (4.0 * n**2 * m**2))


def style_loss(
    features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]
) -> torch.Tensor:
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
