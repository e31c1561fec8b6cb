"""The linear autoencoder of chapter 1 (tutorial eqs. (4)-(28)), trainable with Torch.

Encoder ``z = a1*x1 + a2*x2``, decoder ``x~ = (b1*z, b2*z)``: two bias-free linear maps. The module
holds ``n_replicas`` independent copies of (a1, a2, b1, b2) so that many random initialisations
train in one vectorised loop (the loss is a sum over replicas, so each replica gets exactly its own
gradient, with SGD and with Adam alike). Everything is float64.

Penalties: ``"l2"`` is eq. (16); ``"l1"`` is the tutorial's open exercise, trained by proximal
gradient descent (a gradient step on the smooth reconstruction error, then soft-thresholding), since
the l1 norm has no gradient at 0 and plain (sub)gradient steps never land exactly on 0.
"""

from __future__ import annotations

import torch
from torch import nn

DTYPE = torch.float64


class LinearAutoencoder(nn.Module):
    """``n_replicas`` linear autoencoders x -> (a.x) b on 2-d data (eqs. (4)-(5)).

    Parameters are ``a`` (encoder weights, shape (R, 2): a1, a2) and ``b`` (decoder weights,
    shape (R, 2): b1, b2), initialised i.i.d. Normal(0, init_scale^2) from ``seed``.
    """

    def __init__(self, n_replicas: int = 1, init_scale: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        if n_replicas < 1:
            raise ValueError(f"n_replicas must be >= 1, got {n_replicas}")
        gen = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(init_scale * torch.randn(n_replicas, 2, generator=gen, dtype=DTYPE))
        self.b = nn.Parameter(init_scale * torch.randn(n_replicas, 2, generator=gen, dtype=DTYPE))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = a1 x1 + a2 x2 for every replica: (N, 2) -> (R, N)."""
        return self.a @ x.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction x~ = (b1 z, b2 z): (N, 2) -> (R, N, 2)."""
        return self.encode(x)[..., None] * self.b[:, None, :]

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error per replica, eq. (5): shape (R,)."""
        return ((self(x) - x) ** 2).sum(-1).mean(-1)

    def norm(self, penalty: str) -> torch.Tensor:
        """Sum of squares (``"l2"``, eq. (15)) or of absolute values (``"l1"``) per replica."""
        if penalty == "l2":
            return (self.a**2).sum(-1) + (self.b**2).sum(-1)
        if penalty == "l1":
            return self.a.abs().sum(-1) + self.b.abs().sum(-1)
        raise ValueError(f"penalty must be 'l2' or 'l1', got {penalty!r}")

    def loss(
        self, x: torch.Tensor, lam: float | torch.Tensor = 0.0, penalty: str = "l2"
    ) -> torch.Tensor:
        """Penalised loss per replica: eq. (5) + lam * norm (eq. (16) for l2).

        ``lam`` is a number or one value per replica (shape (R,)).
        """
        rec = self.reconstruction_loss(x)
        if isinstance(lam, (int, float)) and lam == 0:
            return rec
        return rec + lam * self.norm(penalty)

    def params(self) -> torch.Tensor:
        """(a1, a2, b1, b2) per replica, detached: shape (R, 4)."""
        return torch.cat([self.a, self.b], dim=1).detach().clone()


def fit(
    model: LinearAutoencoder,
    x: torch.Tensor,
    lam: float | torch.Tensor = 0.0,
    penalty: str = "l2",
    optimizer: str = "sgd",
    lr: float = 0.05,
    n_steps: int = 3000,
    record_every: int = 0,
) -> list[torch.Tensor]:
    """Full-batch training of every replica; returns the recorded (R, 4) parameter snapshots.

    optimizer: ``"sgd"`` (plain gradient descent; the data (3) are only nine points, so the full
    batch is the minibatch), ``"adam"``, or ``"prox"`` (proximal gradient, required for the l1
    penalty). ``record_every > 0`` stores the parameters every that many steps (for figures), plus
    the first and the last.
    """
    lam_r = torch.as_tensor(lam, dtype=DTYPE).reshape(-1)  # one value, or one per replica
    if lam_r.numel() not in (1, model.a.shape[0]):
        raise ValueError(f"lam must be a number or have one value per replica ({model.a.shape[0]})")
    if not torch.all(torch.isfinite(lam_r)) or torch.any(lam_r < 0):
        raise ValueError(f"lam must be finite and >= 0, got {lam}")
    any_penalty = bool(torch.any(lam_r > 0))
    if penalty not in ("l2", "l1"):
        raise ValueError(f"penalty must be 'l2' or 'l1', got {penalty!r}")
    if optimizer not in ("sgd", "adam", "prox"):
        raise ValueError(f"optimizer must be 'sgd', 'adam' or 'prox', got {optimizer!r}")
    if penalty == "l1" and any_penalty and optimizer != "prox":
        raise ValueError("the l1 penalty is not differentiable at 0: use optimizer='prox'")
    x = torch.as_tensor(x, dtype=DTYPE)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2), got {tuple(x.shape)}")
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(model.parameters(), lr=lr)
    # prox: the optimizer sees only the smooth part; the l1 (or l2) penalty is applied by its prox
    smooth_lam = 0.0 if optimizer == "prox" or not any_penalty else lam_r
    shrink = (lr * lam_r).reshape(-1, 1)  # prox step size per replica
    history = [model.params()]
    for step in range(1, n_steps + 1):
        opt.zero_grad()
        model.loss(x, smooth_lam, penalty).sum().backward()
        opt.step()
        if optimizer == "prox" and any_penalty:
            with torch.no_grad():
                for p in (model.a, model.b):
                    if penalty == "l1":  # soft-thresholding, prox of lr * lam * |.|
                        p.copy_(torch.sign(p) * torch.clamp(p.abs() - shrink, min=0.0))
                    else:  # prox of lr * lam * |.|^2
                        p.div_(1 + 2 * shrink)
        if record_every and (step % record_every == 0 or step == n_steps):
            history.append(model.params())
    if not record_every:
        history.append(model.params())
    return history
