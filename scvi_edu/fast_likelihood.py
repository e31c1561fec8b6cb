"""The training likelihood: the ZINB of eq. (58) (corrected), summed over genes, with its
gradient in closed form.

``scvi_edu.distributions.log_zinb_positive`` is the formula as written; autograd differentiates
it through some thirty elementwise operations, and that was two thirds of a training step.
``zinb_log_likelihood`` is the same number computed the way the training loop needs it: per
cell, summed over genes, with the derivatives below evaluated in the forward pass. ``VAE`` uses
it by default (``likelihood_gradient="closed_form"``); ``likelihood_gradient="autograd"``
trains through the readable formulas of ``scvi_edu.distributions`` instead.
tests/test_likelihood.py checks it against mpmath, against ``log_zinb_positive`` and its
autograd gradients, and with ``torch.autograd.gradcheck`` (finite differences).

Derivation. With pi = sigmoid(zeta) (zeta = ``zi_logits``), nb0 = log NB(0) =
-theta log(1 + mu/theta) and c(x, theta) = log Gamma(x + theta) - log Gamma(theta) - log x!
(0 at x = 0):

    x > 0:  log p(x) = log(1 - pi) + log NB(x)
                     = -zeta - softplus(-zeta) + nb0 - x log(1 + theta/mu) + c(x, theta)
    x = 0:  log p(0) = log(pi + (1 - pi) NB(0)) = softplus(nb0 - zeta) - softplus(-zeta)

Derivatives, with r = theta / (theta + mu) and p0 = [x = 0] sigmoid(zeta - nb0), the posterior
probability that an observed zero is a technical one (a dropout):

    d/d zeta  = p0 - sigmoid(zeta)
    d/d mu    = r (x / mu - (1 - p0))
    d/d theta = (1 - p0)(mu / (theta + mu) - log(1 + mu/theta)) - x / (theta + mu)
                + psi(x + theta) - psi(theta)

For integer x, Gamma(x + theta) / Gamma(theta) = theta (theta + 1) ... (theta + x - 1), so
c(x, theta) + log x! = sum_{j<x} log(theta + j) and psi(x + theta) - psi(theta) =
sum_{j<x} 1 / (theta + j): with one theta per gene (or a few distinct rows of theta, as
gene-batch and gene-label give) both are tabulated for x <= _TABLE_MAX (a cumulative sum over
j, in float64) and looked up, instead of calling lgamma and digamma on every entry. Larger or
non-integer counts and a theta per cell use lgamma/digamma in float64 (in float32 their
difference loses ~6e-8 theta log theta: the log-pmf was once > 0).

A theta that is one row broadcast over cells (the model's gene dispersion: ``theta`` of shape
(G,) expanded to (n_cells, G), a view with stride 0 over cells) is read as that row, so its
tables are built once per gene, not once per cell.

Zero test: an entry is a zero when x = 0 (``sign(x)``, x >= 0), as in ``log_zinb_positive``;
non-integer counts 0 < x < 1 are positive counts of the continuous extension.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["zinb_log_likelihood"]

_TABLE_MAX = 16
_MAX_TABLES = 16  # distinct theta rows (batches, labels) tabulated; more: lgamma/digamma


def _exact_count_terms(x: torch.Tensor, theta: torch.Tensor, need_grad: bool):
    """c(x, theta) and psi(x + theta) - psi(theta) by lgamma/digamma, in float64."""
    x, theta = x.double(), theta.double()
    c = torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1)
    return c, (torch.digamma(x + theta) - torch.digamma(theta)) if need_grad else None


def _distinct_rows(theta_rows: torch.Tensor):
    """The distinct rows of theta (U x G) and each row's index into them (None: all the same),
    or None when there are more than _MAX_TABLES (a theta per cell)."""
    if theta_rows.shape[0] == 1:
        return theta_rows, None
    _, inverse = torch.unique(theta_rows.sum(dim=1), return_inverse=True)
    n_distinct = int(inverse.max()) + 1
    if n_distinct > _MAX_TABLES:
        return None
    n_rows = theta_rows.shape[0]
    first = torch.full((n_distinct,), n_rows, dtype=torch.long, device=theta_rows.device)
    rows = torch.arange(n_rows, device=theta_rows.device)
    distinct = theta_rows[first.scatter_reduce_(0, inverse, rows, "amin")]
    if not torch.equal(distinct[inverse], theta_rows):  # two different rows with the same sum
        return None
    return distinct, inverse


def _count_terms(
    x: torch.Tensor, theta: torch.Tensor, need_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """c(x, theta) = log Gamma(x + theta) - log Gamma(theta) - log x! and, with ``need_grad``,
    psi(x + theta) - psi(theta); shape of ``x``, dtype of ``x``."""
    n_genes = x.shape[-1]
    x2 = x.reshape(-1, n_genes)
    if theta.shape[-1:] == (n_genes,) and theta.numel() == n_genes:  # one theta per gene
        theta_rows = theta.reshape(1, n_genes)
    else:
        theta_rows = theta.expand(x.shape).reshape(-1, n_genes)
    found = _distinct_rows(theta_rows)
    if found is None:  # a theta per cell: lgamma/digamma on the non-zero entries
        c = torch.zeros_like(x2)
        dpsi = torch.zeros_like(x2) if need_grad else None
        rows, genes = torch.nonzero(x2, as_tuple=True)
        ce, de = _exact_count_terms(x2[rows, genes], theta_rows[rows, genes], need_grad)
        c[rows, genes] = ce.to(x.dtype)
        if need_grad:
            dpsi[rows, genes] = de.to(x.dtype)
        return c.reshape(x.shape), None if dpsi is None else dpsi.reshape(x.shape)

    # One theta per gene (or a few distinct rows: gene-batch, gene-label): tables
    # table[u, k, g] = sum_{j<k} log(theta_ug + j) - log k!, k = 0.._TABLE_MAX, read at the flat
    # position (u (K + 1) + k) G + g (index_select is the fastest lookup on the CPU).
    distinct, inverse = found
    t64 = distinct.double()  # (U, G)
    j = torch.arange(_TABLE_MAX + 1, dtype=torch.float64, device=x.device)
    log_terms = torch.log(t64[..., None] + j[:-1])  # (U, G, K): log(theta_ug + j), j < K
    table = (F.pad(log_terms.cumsum(dim=-1), (1, 0)) - torch.lgamma(j + 1)).transpose(1, 2)
    gene = torch.arange(n_genes, dtype=torch.int32, device=x.device)
    key = x2.clamp(max=_TABLE_MAX).to(torch.int32).mul_(n_genes).add_(gene)
    if inverse is not None:
        key.add_((inverse.to(torch.int32) * ((_TABLE_MAX + 1) * n_genes))[:, None])
    key = key.reshape(-1)
    c = table.to(x.dtype).reshape(-1).index_select(0, key).reshape(x2.shape)
    dpsi = None
    if need_grad:
        inv_table = F.pad(torch.exp(-log_terms).cumsum(dim=-1), (1, 0)).transpose(1, 2)
        dpsi = inv_table.to(x.dtype).reshape(-1).index_select(0, key).reshape(x2.shape)
    # Entries above the table or not integers (looked for only in genes that have one): exact.
    cols = torch.nonzero((x2.amax(dim=0) > _TABLE_MAX) | (torch.frac(x2).amax(dim=0) > 0))[:, 0]
    if len(cols):
        sub = x2[:, cols]
        rows, j = torch.nonzero((sub > _TABLE_MAX) | (torch.frac(sub) > 0), as_tuple=True)
        genes = cols[j]
        te = t64[0 if inverse is None else inverse[rows], genes]
        ce, de = _exact_count_terms(sub[rows, j], te, need_grad)
        c[rows, genes] = ce.to(x.dtype)
        if need_grad:
            dpsi[rows, genes] = de.to(x.dtype)
    return c.reshape(x.shape), None if dpsi is None else dpsi.reshape(x.shape)


def _shared_row(theta: torch.Tensor) -> torch.Tensor:
    """theta's single row (G,) when theta repeats it over every leading dimension (a broadcast
    view, stride 0), else theta: the tables are then built once per gene, not once per cell."""
    leading = zip(theta.shape[:-1], theta.stride()[:-1], strict=True)
    if theta.dim() > 1 and all(n == 1 or stride == 0 for n, stride in leading):
        return theta[(0,) * (theta.dim() - 1)]
    return theta


class _ZINBLogLikelihood(torch.autograd.Function):
    """Forward: the per-cell log-likelihood; the gradients are computed alongside (see above)."""

    @staticmethod
    def forward(ctx, x, mu, theta, zi_logits, need_grad):
        ctx.shapes = (mu.shape, theta.shape, None if zi_logits is None else zi_logits.shape)
        theta = _shared_row(theta)  # the gradient still gets theta's own (broadcast) shape
        # numpy's broadcast_shapes: torch's imports sympy (~0.3 s CPU) the first time it is called
        shape = np.broadcast_shapes(x.shape, mu.shape, theta.shape)
        if zi_logits is not None:
            shape = np.broadcast_shapes(shape, zi_logits.shape)
            zi_logits = zi_logits.expand(shape)
        x, mu = x.expand(shape), mu.expand(shape)
        # Temporaries are updated in place where possible: each new (cells x genes) tensor
        # costs a fresh allocation, as much as an arithmetic pass on this size.
        floor = torch.finfo(mu.dtype).tiny ** 0.75  # as distributions._log_floor: finite at mu = 0
        nonzero = torch.sign(x)  # 1 where x > 0, 0 where x = 0 (x >= 0)
        ratio = mu / theta
        log1p_ratio = torch.log1p(ratio)
        value = log1p_ratio * -theta  # nb0 = log NB(0 | mu, theta)
        mu_floor = mu.clamp(min=floor)
        log1p_inv_ratio = torch.div(theta, mu_floor).log1p_()  # -log(mu / (theta + mu))
        c, dpsi = _count_terms(x, theta, need_grad)
        if zi_logits is not None:
            zero_logit = value - zi_logits  # nb0 - zeta: logit of P(NB zero | x = 0)
            is_zero = 1 - nonzero
            zero_case = F.softplus(zero_logit).mul_(is_zero)  # + softplus(-zeta): log p(0)
        value.addcmul_(x, log1p_inv_ratio, value=-1).add_(c)  # log NB(x)
        if zi_logits is not None:
            # x > 0: log NB(x) - zeta - softplus(-zeta) = log NB(x) + log(1 - pi); x = 0: the
            # case computed above. Masking (not adding a correction) keeps float32 exact when
            # |nb0| is large.
            value.sub_(zi_logits).mul_(nonzero).add_(zero_case).sub_(F.softplus(-zi_logits))
        if need_grad:
            r = ratio.add(1).reciprocal_()  # theta / (theta + mu)
            grad_theta = ratio.mul_(r).sub_(log1p_ratio)  # d nb0 / d theta
            grad_mu = torch.div(x, mu_floor).sub_(1)
            grad_zi = None
            if zi_logits is not None:
                p0 = zero_logit.neg_().sigmoid_().mul_(is_zero)  # P(technical zero | x)
                grad_zi = torch.sigmoid(zi_logits).neg_().add_(p0)
                grad_mu.add_(p0)
                grad_theta.addcmul_(grad_theta, p0, value=-1)  # times 1 - p0
            grad_mu.mul_(r)
            grad_theta.sub_(r.mul_(x).div_(theta)).add_(dpsi)
            ctx.save_for_backward(grad_mu, grad_theta, grad_zi)
        return value.sum(dim=-1)

    @staticmethod
    @once_differentiable  # the saved derivatives are constants: no second derivatives
    def backward(ctx, grad_output):
        grad_mu, grad_theta, grad_zi = ctx.saved_tensors
        mu_shape, theta_shape, zi_shape = ctx.shapes
        g = grad_output.unsqueeze(-1)
        return (
            None,
            (g * grad_mu).sum_to_size(mu_shape),
            (g * grad_theta).sum_to_size(theta_shape),
            None if grad_zi is None else (g * grad_zi).sum_to_size(zi_shape),
            None,
        )


def zinb_log_likelihood(
    x: torch.Tensor,
    mu: torch.Tensor,
    theta: torch.Tensor,
    zi_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_g log ZINB(x_g | mu_g, theta_g, sigmoid(zi_logits_g)), over the last dimension.

    The reconstruction term log p(x_n | z_n, l_n, s_n) of eq. (60)/(69) for each cell: the same
    number as ``log_zinb_positive(x, mu, theta, zi_logits).sum(-1)`` (the NB of
    ``log_nb_positive`` when ``zi_logits`` is None), with the gradient with respect to ``mu``,
    ``theta`` and ``zi_logits`` in closed form (derivation above; no gradient for ``x``).
    Shapes broadcast; the result has the broadcast shape without its last dimension.
    """
    need_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (mu, theta, zi_logits)
    )
    return _ZINBLogLikelihood.apply(x, mu, theta, zi_logits, need_grad)
