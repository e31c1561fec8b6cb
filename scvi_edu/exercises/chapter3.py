"""Chapter 3 exercise check (raises ``AssertionError`` with a hint if wrong).

Exercise 2 of chapter 3 (``check_theta_fit``): model the counts ``x`` of one gene as i.i.d.
NB(mu, theta) draws (eq. (56)) and estimate theta

* by the method of moments: solve Var x = mean + mean**2 / theta with the ``ddof=0`` variance,
  theta_mom = mean**2 / (var - mean);
* by maximum likelihood: the MLE of mu is the sample mean for every theta (the mu-score
  vanishes there), and theta solves the score equation
  sum_n digamma(x_n + theta) - N digamma(theta) + N log(theta / (theta + mean)) = 0.

The reference here solves that score equation with a bracketing root finder.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

__all__ = ["check_theta_fit", "theta_mle_reference"]


def _counts(x) -> np.ndarray:
    """The counts as a float64 copy, after checking they are non-negative integers."""
    x = np.array(x, dtype=np.float64).reshape(-1)
    if x.size < 2 or not np.isfinite(x).all() or (x < 0).any() or (x != np.round(x)).any():
        raise ValueError("x must hold at least two finite non-negative integer counts")
    if x.var() <= x.mean():
        raise ValueError(
            f"the counts are not over-dispersed (variance {x.var():.4g} <= mean {x.mean():.4g}):"
            " no finite theta fits them"
        )
    return x


def theta_mle_reference(x) -> float:
    """The maximum-likelihood theta of i.i.d. NB counts ``x`` (root of the profile score)."""
    x = _counts(x)
    m, n = x.mean(), x.size

    def score(t: float) -> float:
        return special.digamma(x + t).sum() - n * special.digamma(t) + n * math.log(t / (t + m))

    lo, hi = 1e-8, 1.0
    while score(hi) > 0:  # the score is positive below the root, negative above it
        hi *= 10.0
        if hi > 1e12:
            raise ValueError("the likelihood of theta has no finite maximum for these counts")
    return optimize.brentq(score, lo, hi, xtol=1e-14, rtol=1e-12)


def check_theta_fit(x, theta_mle: float, theta_mom: float) -> None:
    """Check the ML (relative tolerance 1e-3) and moment (1e-2) estimates of theta for ``x``."""
    x = _counts(x)
    m, v = x.mean(), x.var()
    mom = m**2 / (v - m)
    mle = theta_mle_reference(x)
    theta_mle, theta_mom = float(theta_mle), float(theta_mom)
    if math.isclose(theta_mom, m**2 / v, rel_tol=1e-2):
        raise AssertionError(
            "mean^2 / var leaves out the Poisson part: theta = mean^2 / (var - mean)"
        )
    assert math.isclose(theta_mom, mom, rel_tol=1e-2), (
        f"{theta_mom:.4g} is not the moment estimate: solve var = mean + mean^2 / theta"
    )
    if math.isclose(theta_mle, mom, rel_tol=1e-3) and not math.isclose(mle, mom, rel_tol=1e-3):
        raise AssertionError("that is the moment estimate again; maximise the NB log-likelihood")
    assert math.isclose(theta_mle, mle, rel_tol=1e-3), (
        f"{theta_mle:.4g} does not maximise the NB log-likelihood (mu at the sample mean)"
    )
