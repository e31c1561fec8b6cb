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
The tricks: ``theta * log(theta / (theta + mu)) = -theta * log1p(mu / theta)`` (no cancellation
when theta >> mu), softplus instead of ``log(1 + exp(.))``, and the zero case of the ZINB written
as ``softplus(-zi + nb0) - softplus(-zi)`` (a log-sum-exp of the two ways to observe 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "log_poisson",
    "log_nb_positive",
    "log_zinb_positive",
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
    """
    mu, theta = torch.broadcast_tensors(mu, theta)
    # Gamma(theta, rate theta/mu) = (mu / theta) * Gamma(theta, 1); _standard_gamma takes no
    # generator, so draw it via the Marsaglia-Tsang sampler Torch uses, seeded globally.
    w = torch._standard_gamma(theta) * (mu / theta)
    return torch.poisson(w, generator=generator)


def sample_zinb(
    mu: torch.Tensor,
    theta: torch.Tensor,
    zi_logits: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw ZINB counts: an NB draw, replaced by 0 with probability sigmoid(zi_logits)."""
    y = sample_nb(mu, theta, generator=generator)
    dropout = torch.bernoulli(torch.sigmoid(zi_logits).expand_as(y), generator=generator)
    return torch.where(dropout > 0.5, torch.zeros_like(y), y)
