"""Adam for the training loop, without ``torch.optim`` (Kingma & Ba, 2015).

For each parameter p with gradient g, at step t (weight decay as ``torch.optim.Adam``'s: an L2
term added to the gradient, the tutorial's "l2 norm of weights" after eq. (59)):

    g   <- g + weight_decay * p
    m   <- beta1 m + (1 - beta1) g                 (first moment)
    v   <- beta2 v + (1 - beta2) g^2               (second moment)
    p   <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

``step`` applies this with ``torch._fused_adam_``, the one-pass kernel behind
``torch.optim.Adam(fused=True)``, and falls back to ``_adam_update`` (the lines above, one
tensor at a time) where that kernel is missing. tests/test_optim.py checks both against
``torch.optim.Adam``.

Why not ``torch.optim.Adam`` itself: every ``torch.optim`` optimiser imports ``torch._dynamo``
the first time one is built in a process (``Optimizer.add_param_group`` is wrapped by
``torch._disable_dynamo``, which imports it lazily): about 1.2 s of CPU, so the first
``train()`` of every notebook kernel or script cost a second more than the next one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = ["Adam"]


def _adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay) -> None:
    """One Adam update of one tensor, in place (the formulas of the module docstring)."""
    if weight_decay:
        g = g + weight_decay * p
    m.mul_(beta1).add_(g, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = (v / (1 - beta2**step)).sqrt_().add_(eps)
    p.addcdiv_(m, denom, value=-lr / (1 - beta1**step))


class Adam:
    """Adam over ``params`` (an iterable of tensors): ``zero_grad()``, then ``step()``.

    The same update and defaults as ``torch.optim.Adam(params, lr, betas, eps,
    weight_decay)`` (no amsgrad, no maximize); the moments are kept per parameter.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam got an empty list of parameters")
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if not all(0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if not eps >= 0 or not weight_decay >= 0:
            raise ValueError(f"eps and weight_decay must be >= 0, got {eps!r}, {weight_decay!r}")
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        # the step count per parameter, as a tensor on its device (the fused kernel reads it)
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.fused = all(
            p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in self.params
        )

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [p.grad for p in params]
        exp_avg = [self.exp_avg[i] for i in live]
        exp_avg_sq = [self.exp_avg_sq[i] for i in live]
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1.0)
        beta1, beta2 = self.betas
        if self.fused:
            try:
                torch._fused_adam_(
                    params, grads, exp_avg, exp_avg_sq, [], steps, lr=self.lr, beta1=beta1,
                    beta2=beta2, weight_decay=self.weight_decay, eps=self.eps, amsgrad=False,
                    maximize=False,
                )  # fmt: skip
                return
            except (RuntimeError, AttributeError, NotImplementedError):
                self.fused = False  # this torch or device has no fused kernel: the formulas
        for p, g, m, v, t in zip(params, grads, exp_avg, exp_avg_sq, steps, strict=True):
            _adam_update(p, g, m, v, t.item(), self.lr, beta1, beta2, self.eps, self.weight_decay)
