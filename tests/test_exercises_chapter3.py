"""Chapter 3 exercise checks accept right answers (computed independently) and reject wrong ones."""

import math

import numpy as np
import pytest
import sympy as sp
from scipy import optimize, stats

from derivations import negative_binomial as NB
from scvi_edu.exercises import check_theta_fit, theta_mle_reference

PI = sp.Symbol("pi", positive=True)


# --- exercise 1: the NB with the mean and variance of a ZINB ---------------------------------


def _matched_theta_monte_carlo(mu, theta, pi, n=200_000, seed=0):
    """theta' = mean^2 / (var - mean) from ZINB draws (an independent reference)."""
    rng = np.random.default_rng(seed)
    y = rng.negative_binomial(theta, theta / (theta + mu), size=n)
    x = np.where(rng.random(n) < pi, 0, y)
    return x.mean() ** 2 / (x.var() - x.mean())


def test_matched_theta_accepts_the_closed_form_and_matches_simulation():
    right = (1 - PI) * NB.theta / (1 + PI * NB.theta)
    NB.check_matched_theta(right)
    NB.check_matched_theta("(1 - pi) * theta / (1 + pi * theta)")
    mc = _matched_theta_monte_carlo(5.0, 2.0, 0.3)
    assert float(right.subs({NB.theta: 2.0, PI: 0.3})) == pytest.approx(mc, rel=0.03)


@pytest.mark.parametrize(
    "wrong",
    [
        (1 - PI) * NB.theta,  # matches the mean only
        NB.theta / (1 + PI * NB.theta),
        (1 - PI) * NB.theta / (1 + PI * NB.mu),  # depends on mu
        NB.theta,
    ],
)
def test_matched_theta_rejects_wrong_answers(wrong):
    with pytest.raises(AssertionError):
        NB.check_matched_theta(wrong)


# --- exercise 2: theta of one gene by maximum likelihood and by moments -----------------------


def _nb_counts(mu=8.0, theta=0.7, n=3000, seed=1):
    rng = np.random.default_rng(seed)
    return rng.negative_binomial(theta, theta / (theta + mu), size=n).astype(float)


def _mle_by_scipy(x):
    """Maximise the scipy NB log-likelihood over (log mu, log theta) jointly."""

    def nll(params):
        m, t = np.exp(params)
        return -stats.nbinom.logpmf(x, t, t / (t + m)).sum()

    res = optimize.minimize(
        nll,
        x0=[math.log(x.mean()), 0.0],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 4000},
    )
    return np.exp(res.x)


def test_theta_fit_accepts_independent_estimates():
    x = _nb_counts()
    m_hat, t_hat = _mle_by_scipy(x)
    assert m_hat == pytest.approx(x.mean(), rel=1e-4)  # the MLE of mu is the sample mean
    assert theta_mle_reference(x) == pytest.approx(t_hat, rel=1e-4)
    mom = x.mean() ** 2 / (x.var() - x.mean())
    check_theta_fit(x, t_hat, mom)
    check_theta_fit(list(x), t_hat, x.mean() ** 2 / (x.var(ddof=1) - x.mean()))  # ddof=1 is fine
    assert 0.6 < t_hat < 0.8  # near the true theta = 0.7


def test_theta_fit_rejects_wrong_estimates():
    x = _nb_counts()
    m, v = x.mean(), x.var()
    t_hat = _mle_by_scipy(x)[1]
    mom = m**2 / (v - m)
    with pytest.raises(AssertionError, match="Poisson"):
        check_theta_fit(x, t_hat, m**2 / v)
    with pytest.raises(AssertionError):
        check_theta_fit(x, t_hat, mom * 1.1)
    with pytest.raises(AssertionError):
        check_theta_fit(x, t_hat * 1.01, mom)
    with pytest.raises(AssertionError):
        check_theta_fit(x, mom, mom)  # the moment estimate given twice


def test_theta_fit_validates_counts_and_leaves_them_unchanged():
    x = _nb_counts(n=200)
    before = x.copy()
    check_theta_fit(x, theta_mle_reference(x), x.mean() ** 2 / (x.var() - x.mean()))
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="over-dispersed"):
        check_theta_fit(np.random.default_rng(0).binomial(10, 0.5, 500), 1.0, 1.0)
    with pytest.raises(ValueError, match="integer"):
        check_theta_fit([0.5, 2.0, 7.0], 1.0, 1.0)
    with pytest.raises(ValueError, match="integer"):
        check_theta_fit([1.0, -2.0, 7.0], 1.0, 1.0)
