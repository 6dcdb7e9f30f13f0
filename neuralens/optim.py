"""Small training helpers shared by the trainable heads (faces, classify): Adam for a few tensors without
importing torch.optim, and a one-thread context for tiny models."""

from __future__ import annotations

import contextlib
import math
from typing import Tuple

import torch


@contextlib.contextmanager
def one_thread():
    """Run torch on one thread for small models: for a tiny head (a 128x128 matrix) thread start-up and contention
    cost far more than they save (measured: 200 steps take 0.7 s on one thread, 18 s on two busy cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Adam:
    """Adam (Kingma & Ba, 2015) for a few parameter tensors, with L2 weight decay added to the gradient as
    torch.optim.Adam does. Written out because constructing any torch.optim optimiser imports
    torch._dynamo, which takes 2-4 s: longer than training these heads."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]
        self.steps = 0

    def zero_grad(self) -> None:
        """Forget the gradients of the last step."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update from the current gradients."""
        self.steps += 1
        beta1, beta2 = self.betas
        for p, (m, v) in zip(self.params, self.moments):
            if p.grad is None:
                continue
            grad = p.grad.add(p, alpha=self.weight_decay) if self.weight_decay else p.grad
            m.mul_(beta1).add_(grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            # The bias corrections as scalars and one temporary (the denominator): the formula written with
            # m_hat and v_hat made five copies of each weight per step (half of an MLP head's training time).
            denominator = v.sqrt().div_(math.sqrt(1 - beta2**self.steps)).add_(self.eps)
            p.addcdiv_(m, denominator, value=-self.lr / (1 - beta1**self.steps))
