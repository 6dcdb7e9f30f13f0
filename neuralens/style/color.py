"""Colour preservation (Gatys et al. 2016, "Preserving color in neural artistic style transfer").

- histogram: recolour the style image so its colour mean and covariance match the content's, then
  transfer as usual;
- luminance: transfer on the luminance channel alone, then put the content's colour back.
"""

from __future__ import annotations

import torch

# RGB <-> YIQ (NTSC): Y is luminance, I and Q carry the colour.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> YIQ."""
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) YIQ -> RGB."""
    return torch.einsum("ij,bjhw->bihw", _YIQ_TO_RGB.to(image), image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """RGB image -> its luminance repeated on three channels (what the network sees in luminance mode)."""
    return rgb_to_yiq(image)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Grey style luminance shifted and scaled to the content luminance's mean and deviation."""
    s, c = luminance(style), luminance(content)
    return ((s - s.mean()) * (c.std() / s.std().clamp_min(1e-6)) + c.mean()).clamp(0, 1)


def restore_colour(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Combine the stylized image's luminance with the content's colour (I, Q) channels."""
    y = rgb_to_yiq(stylized)[:, :1]
    iq = rgb_to_yiq(content)[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], 1)).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(1e-8)
    power = -0.5 if inverse else 0.5
    return vectors @ torch.diag(values**power) @ vectors.T


def match_histogram(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Recolour ``style`` so its pixels' colour mean and covariance equal the content's (a linear map,
    x' = C_c^1/2 C_s^-1/2 (x - mu_s) + mu_c). Both (1, 3, H, W) in [0, 1]; returns the recoloured style."""
    s = style[0].reshape(3, -1).double()
    c = content[0].reshape(3, -1).double()
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    cov_s = torch.cov(s) + 1e-5 * torch.eye(3, dtype=s.dtype)
    cov_c = torch.cov(c) + 1e-5 * torch.eye(3, dtype=c.dtype)
    transform = _sqrtm(cov_c) @ _sqrtm(cov_s, inverse=True)
    out = transform @ (s - mu_s) + mu_c
    return out.reshape_as(style[0]).unsqueeze(0).to(style.dtype).clamp(0, 1)
