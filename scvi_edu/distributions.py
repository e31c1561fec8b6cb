"""Log-likelihoods, KL divergences and samplers of the scVI generative model.

Everything here is pure Torch on tensors; nothing knows about networks or AnnData. The
log-pmfs are the textbook formulas, differentiated by autograd: ``VAE(...,
likelihood_gradient="autograd")`` trains through them, looked up here at call time, so an edit
of this file (or assigning a new function to ``scvi_edu.distributions.log_zinb_positive``)
changes what trains. The default ``likelihood_gradient="closed_form"`` uses
``scvi_edu.fast_likelihood.zinb_log_likelihood``: the same ZINB summed over genes, with its
gradient derived by hand (about four times faster), tested against the functions here.

Conventions (stated once, used everywhere):

* ``mu`` is the NB mean ``l * rho`` (tutorial eq. (56): ``mu = l_n rho_n^g``), ``theta`` the
  inverse dispersion (NB "size"), so ``Var = mu + mu**2 / theta`` (eq. (57), last sentence).
* ``zi_logits`` are the logits of the zero-inflation: ``sigmoid(zi_logits)`` is the probability
  that an entry is a *technical zero* (a dropout), as in scvi-tools. The tutorial's eq. (55)
  writes ``h ~ Bernoulli(sigmoid(f_h))`` with ``x = y`` when ``h = 1``, i.e. ``sigmoid(f_h)`` is
  the probability of *keeping* the count, and then eq. (58) mixes the two conventions; see the
  ledger entries (55) and (58). With ``zi_logits = -f_h`` both describe the same model.
* An entry is a zero when ``x == 0``; a non-integer ``0 < x < 1`` is a positive count of the
  continuous extension (lgamma), here and in ``fast_likelihood``.

Stability: the log-pmfs are finite (values and gradients) in float32 and float64 for
``x`` in [0, 1e6], ``mu`` in [0, 1e6], ``theta`` in [1e-6, 1e8], ``zi_logits`` in [-100, 100],
and in float64 they agree with an mpmath reference to 1e-6 * max(1, |ref|)
(tests/test_distributions.py).

The tricks: ``theta * log(theta / (theta + mu)) = -theta * log1p(mu / theta)`` (no cancellation
when theta >> mu), ``log_gamma_ratio`` for log Gamma(x + theta) - log Gamma(theta) (Stirling's
series when theta is large), softplus instead of ``log(1 + exp(.))``, and the zero case of the
ZINB written as ``softplus(-zi + nb0) - softplus(-zi)`` (a log-sum-exp of the two ways to
observe 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "log_poisson",
    "log_nb_positive",
    "log_zinb_positive",
    "log_gamma_ratio",
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
    # TASK 3.3 begin
    return x * _log_floor(rate) - rate - torch.lgamma(x + 1)
    # TASK 3.3 end


_STIRLING_FROM = 10.0  # theta above which log_gamma_ratio uses Stirling's series


def _stirling_tail(z: torch.Tensor) -> torch.Tensor:
    """log Gamma(z) - [(z - 1/2) log z - z + log(2 pi) / 2] to O(z^-7) (< 1e-10 for z >= 10)."""
    z2 = z * z
    return (1 / 12 - (1 / 360 - 1 / (1260 * z2)) / z2) / z


def log_gamma_ratio(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """log Gamma(x + theta) - log Gamma(theta), the first two terms of eq. (56).

    For theta < 10 the two lgamma are subtracted. For theta >= 10 they are not: in float32
    their rounding error, ~6e-8 theta log theta, made the log-pmf positive for theta ~ 1e7.
    Stirling's series, log Gamma(z) = (z - 1/2) log z - z + log(2 pi) / 2 + tail(z), gives
    instead

        (theta - 1/2) log1p(x / theta) + x log(x + theta) - x + tail(x + theta) - tail(theta),

    whose rounding error grows with x, not theta (0 at x = 0). Both branches are evaluated
    (``torch.where``); the one not taken sees a clamped theta so its gradient stays finite.
    """
    exact = torch.lgamma(x + theta) - torch.lgamma(theta)
    th = theta.clamp(min=_STIRLING_FROM)
    stirling = (
        (th - 0.5) * torch.log1p(x / th)
        + x * torch.log(x + th)
        - x
        + _stirling_tail(x + th)
        - _stirling_tail(th)
    )
    return torch.where(theta < _STIRLING_FROM, exact, stirling)


def log_nb_positive(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """log NB(x | mean mu, inverse dispersion theta), eq. (56) last lines:

    log Gamma(x + theta) - log Gamma(theta) - log x!
      + theta log(theta / (theta + mu)) + x log(mu / (theta + mu)).
    """
    # TASK 3.1 begin
    return (
        log_gamma_ratio(x, theta)
        - torch.lgamma(x + 1)
        - theta * torch.log1p(mu / theta)  # theta log(theta / (theta + mu))
        + x * (_log_floor(mu) - torch.log(theta + mu))  # x log(mu / (theta + mu))
    )
    # TASK 3.1 end


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
    # TASK 3.2 begin
    nb_zero = -theta * torch.log1p(mu / theta)  # log NB(0 | mu, theta)
    case_zero = F.softplus(nb_zero - zi_logits) - F.softplus(-zi_logits)
    case_positive = -F.softplus(zi_logits) + log_nb_positive(x, mu, theta)
    return torch.where(x > 0, case_positive, case_zero)
    # TASK 3.2 end


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
    # TASK 4.1 begin
    return (
        torch.log(scale2)
        - torch.log(scale1)
        - 0.5
        + (scale1**2 + (loc1 - loc2) ** 2) / (2 * scale2**2)
    )
    # TASK 4.1 end


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
