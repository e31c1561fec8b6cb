"""Log-likelihoods, KL divergences and samplers of the scVI generative model.

Everything here is pure Torch on tensors; nothing knows about networks or AnnData.

Conventions (stated once, used everywhere):

* ``mu`` is the NB mean ``l * rho`` (tutorial eq. (56): ``mu = l_n rho_n^g``), ``theta`` the
  inverse dispersion (NB "size"), so ``Var = mu + mu**2 / theta`` (eq. (57), last sentence).
* ``zi_logits`` are the logits of the zero-inflation: ``sigmoid(zi_logits)`` is the probability
  that an entry is a *technical zero* (a dropout), as in scvi-tools. The tutorial's eq. (55)
  writes ``h ~ Bernoulli(sigmoid(f_h))`` with ``x = y`` when ``h = 1``, i.e. ``sigmoid(f_h)`` is
  the probability of *keeping* the count, and then eq. (58) mixes the two conventions; see the
  ledger entries (55) and (58). With ``zi_logits = -f_h`` both describe the same model.

Stability: the log-pmfs are finite (values and gradients) in float32 and float64 for
``x`` in [0, 1e6], ``mu`` in [0, 1e6], ``theta`` in [1e-6, 1e8], ``zi_logits`` in [-100, 100],
and in float64 they agree with an mpmath reference to 1e-6 * max(1, |ref|)
(tests/test_distributions.py).

``zinb_log_likelihood`` is the training loop's version of the ZINB: summed over genes, with its
gradient in closed form (derived in the comment above it), about four times faster than
autograd through ``log_zinb_positive``, and tested against it (tests/test_likelihood.py).

The tricks: ``theta * log(theta / (theta + mu)) = -theta * log1p(mu / theta)`` (no cancellation
when theta >> mu), softplus instead of ``log(1 + exp(.))``, and the zero case of the ZINB written
as ``softplus(-zi + nb0) - softplus(-zi)`` (a log-sum-exp of the two ways to observe 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = [
    "log_poisson",
    "log_nb_positive",
    "log_zinb_positive",
    "zinb_log_likelihood",
    "log_normal",
    "kl_normal",
    "kl_lognormal",
    "sample_nb",
    "sample_zinb",
]


def _log_floor(mu: torch.Tensor) -> torch.Tensor:
    """log(mu) with mu floored at a tiny positive number.

    For mu = 0 and x > 0 the exact log-pmf is -inf; the floor makes it a very large negative but
    finite number, and keeps d/dmu (x / mu) finite in float32 (tiny**0.75 ~ 1e-29).
    """
    floor = torch.finfo(mu.dtype).tiny ** 0.75
    return torch.log(mu.clamp(min=floor))


def log_poisson(x: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """log Poisson(x | rate) = x log(rate) - rate - log(x!)  (eq. (55), y | l, w)."""
    return x * _log_floor(rate) - rate - torch.lgamma(x + 1)


_STIRLING_FROM = 10.0  # theta above which log Gamma(x + theta) - log Gamma(theta) uses Stirling


def _stirling_tail(z: torch.Tensor) -> torch.Tensor:
    """log Gamma(z) - [(z - 1/2) log z - z + log(2 pi) / 2] to O(z^-7) (< 1e-10 for z >= 10)."""
    z2 = z * z
    return (1 / 12 - (1 / 360 - 1 / (1260 * z2)) / z2) / z


def _log_ratio(a: torch.Tensor, b: torch.Tensor, a_minus_b: torch.Tensor) -> torch.Tensor:
    """log(a / b) for a, b > 0 without cancellation: log1p of a non-negative argument only
    (log1p((a - b) / b) alone rounds to log1p(-1) = -inf when b >> a in float32)."""
    return torch.log1p(a_minus_b.clamp(min=0) / b) - torch.log1p((-a_minus_b).clamp(min=0) / a)


def log_nb_positive(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """log NB(x | mean mu, inverse dispersion theta), eq. (56) last lines.

    log Gamma(x + theta) - log Gamma(theta) - log x!
      + theta log(theta / (theta + mu)) + x log(mu / (theta + mu)).

    For theta >= 10 the two log Gamma are not subtracted (in float32 their rounding error,
    ~6e-8 theta log theta, made the log-pmf positive for theta ~ 1e7): Stirling's series gives
    log Gamma(x + theta) - log Gamma(theta) = (theta - 1/2) log1p(x / theta) + x log(x + theta) - x
    + tail(x + theta) - tail(theta), and x log(x + theta) - x log(theta + mu) is computed as
    the log of a ratio (``_log_ratio``).
    """
    log_mu = _log_floor(mu)
    nb_zero = -theta * torch.log1p(mu / theta)
    is_small = theta < _STIRLING_FROM
    n_small = int(is_small.sum())  # skip a branch that no entry takes (half the cost)
    if n_small:
        small = x * (log_mu - torch.log(theta + mu)) + torch.lgamma(x + theta) - torch.lgamma(theta)
        if n_small == is_small.numel():
            return nb_zero + small - torch.lgamma(x + 1)
    th = theta.clamp(min=_STIRLING_FROM)  # the branch not taken must have finite gradients
    large = (
        x * log_mu
        + x * _log_ratio(x + th, mu + th, x - mu)
        + (th - 0.5) * torch.log1p(x / th)
        - x
        + _stirling_tail(x + th)
        - _stirling_tail(th)
    )
    if n_small:
        large = torch.where(is_small, small, large)
    return nb_zero + large - torch.lgamma(x + 1)


def log_zinb_positive(
    x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, zi_logits: torch.Tensor
) -> torch.Tensor:
    """log ZINB(x | mu, theta, pi = sigmoid(zi_logits)), the corrected eq. (58)/(59).

    p(0)   = pi + (1 - pi) NB(0)  ->  softplus(-zi + theta log(theta/(theta+mu))) - softplus(-zi)
    p(x>0) = (1 - pi) NB(x)       ->  -softplus(zi) + log NB(x)

    using log(pi) = -softplus(-zi) and log(1 - pi) = -softplus(zi). The tutorial's (58) has
    the zero-case mixture weights swapped and ``x log(x / (theta + mu))`` for
    ``x log(mu / (theta + mu))`` (ledger (58), (59), (69)).
    """
    nb_zero = -theta * torch.log1p(mu / theta)  # log NB(0 | mu, theta)
    case_zero = F.softplus(nb_zero - zi_logits) - F.softplus(-zi_logits)
    case_positive = -F.softplus(zi_logits) + log_nb_positive(x, mu, theta)
    return torch.where(x < 0.5, case_zero, case_positive)


# ------------------------------------------------------------------------------------------
# The training likelihood: the same ZINB, summed over genes, with its gradient in closed form.
#
# ``log_zinb_positive`` above is the formula as written; autograd differentiates it through
# some thirty elementwise operations, and that was two thirds of a training step.
# ``zinb_log_likelihood`` is the same number computed the way the training loop needs it:
# per cell, summed over genes, with the derivatives below evaluated in the forward pass.
# tests/test_likelihood.py checks it against mpmath, against log_zinb_positive and its
# autograd gradients, and with torch.autograd.gradcheck (finite differences).
#
# With pi = sigmoid(zeta), nb0 = log NB(0) = -theta log(1 + mu/theta) and
# c(x, theta) = log Gamma(x + theta) - log Gamma(theta) - log x!  (0 at x = 0):
#     x > 0:  log p(x) = log(1 - pi) + log NB(x)
#                      = -zeta - softplus(-zeta) + nb0 - x log(1 + theta/mu) + c(x, theta)
#     x = 0:  log p(0) = log(pi + (1 - pi) NB(0)) = softplus(nb0 - zeta) - softplus(-zeta)
# Derivatives, with r = theta / (theta + mu) and p0 = [x = 0] sigmoid(zeta - nb0), the
# posterior probability that an observed zero is a technical one (a dropout):
#     d/d zeta  = p0 - sigmoid(zeta)
#     d/d mu    = r (x / mu - (1 - p0))
#     d/d theta = (1 - p0)(mu / (theta + mu) - log(1 + mu/theta)) - x / (theta + mu)
#                 + psi(x + theta) - psi(theta)
# For integer x, Gamma(x + theta) / Gamma(theta) = theta (theta + 1) ... (theta + x - 1), so
# c(x, theta) + log x! = sum_{j<x} log(theta + j) and psi(x + theta) - psi(theta) =
# sum_{j<x} 1 / (theta + j): with one theta per gene (or a few distinct rows of theta, as
# gene-batch and gene-label give) both are tabulated for x <= _TABLE_MAX (a cumulative sum
# over j, in float64) and looked up, instead of calling lgamma and digamma on every entry.
# Larger or non-integer counts and a theta per cell use lgamma/digamma in float64 (in float32
# their difference loses ~6e-8 theta log theta: the log-pmf was once > 0).
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
    if theta.numel() == n_genes:
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


class _ZINBLogLikelihood(torch.autograd.Function):
    """Forward: the per-cell log-likelihood; the gradients are computed alongside (see above)."""

    @staticmethod
    def forward(ctx, x, mu, theta, zi_logits, need_grad):
        ctx.shapes = (mu.shape, theta.shape, None if zi_logits is None else zi_logits.shape)
        shape = torch.broadcast_shapes(x.shape, mu.shape, theta.shape)
        if zi_logits is not None:
            shape = torch.broadcast_shapes(shape, zi_logits.shape)
            zi_logits = zi_logits.expand(shape)
        x, mu = x.expand(shape), mu.expand(shape)
        # Temporaries are updated in place where possible: each new (cells x genes) tensor
        # costs a fresh allocation, as much as an arithmetic pass on this size.
        floor = torch.finfo(mu.dtype).tiny ** 0.75  # as _log_floor: finite x log(mu) at mu = 0
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


def log_normal(x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log N(x | loc, scale**2); scale is the standard deviation."""
    return (
        -0.5 * ((x - loc) / scale) ** 2
        - torch.log(scale)
        - 0.5 * torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype, device=x.device))
    )


def kl_normal(
    loc1: torch.Tensor, scale1: torch.Tensor, loc2: torch.Tensor, scale2: torch.Tensor
) -> torch.Tensor:
    """KL( N(loc1, scale1**2) || N(loc2, scale2**2) ), elementwise; eq. (63).

    log(scale2 / scale1) - 1/2 + (scale1**2 + (loc1 - loc2)**2) / (2 scale2**2).
    Sum over the latent dimensions for the diagonal case of eq. (64).
    """
    return (
        torch.log(scale2)
        - torch.log(scale1)
        - 0.5
        + (scale1**2 + (loc1 - loc2) ** 2) / (2 * scale2**2)
    )


def kl_lognormal(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> torch.Tensor:
    """KL( LogNormal(mu1, sigma1**2) || LogNormal(mu2, sigma2**2) ); eq. (65)-(66).

    The KL divergence is invariant under the bijection y = exp(x), so it equals the KL of the
    Gaussians of log y (eq. (65)). mu, sigma are the mean and standard deviation of log y.
    """
    return kl_normal(mu1, sigma1, mu2, sigma2)


def sample_nb(
    mu: torch.Tensor, theta: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw NB(mu, theta) counts by the Gamma-Poisson mixture of eq. (55)-(56).

    w ~ Gamma(shape theta, rate theta / mu)  (mean mu), then y ~ Poisson(w).

    ``generator`` drives the Poisson draw only: Torch's Gamma sampler takes no generator and
    draws from the global RNG. To fix both draws without touching the caller's RNG, run the call
    inside ``scvi_edu.context.seeded(seed)`` (as ``scvi_edu.posterior`` and ``simulate`` do).
    """
    mu, theta = torch.broadcast_tensors(mu, theta)
    # Gamma(theta, rate theta/mu) = (mu / theta) * Gamma(theta, 1), by the Marsaglia-Tsang
    # sampler Torch uses, from the global RNG.
    w = torch._standard_gamma(theta) * (mu / theta)
    return torch.poisson(w, generator=generator)


def sample_zinb(
    mu: torch.Tensor,
    theta: torch.Tensor,
    zi_logits: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw ZINB counts: an NB draw, replaced by 0 with probability sigmoid(zi_logits).

    ``generator`` as in :func:`sample_nb` (the Gamma draw uses the global RNG).
    """
    y = sample_nb(mu, theta, generator=generator)
    dropout = torch.bernoulli(torch.sigmoid(zi_logits).expand_as(y), generator=generator)
    return torch.where(dropout > 0.5, torch.zeros_like(y), y)
