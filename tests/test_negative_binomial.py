"""Chapter 3 (eqs. (55)-(59)): the NB and ZINB derivations, against independent references.

References: scipy.stats (NB pmf and moments), mpmath (high-precision pmfs), Monte Carlo of the
generative process (55) with numpy (chi-square goodness of fit at significance 0.001).
"""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch
from scipy import stats

from derivations import negative_binomial as NB
from scvi_edu.distributions import log_nb_positive, log_zinb_positive

RNG_POINTS = np.random.default_rng(12345)
# (x, mu, theta, zi) over wide ranges: counts 0..1000, mu and theta over 6 decades
POINTS = [
    (
        int(RNG_POINTS.integers(0, 2)) * int(RNG_POINTS.integers(0, 1000)),
        float(10 ** RNG_POINTS.uniform(-3, 4)),
        float(10 ** RNG_POINTS.uniform(-2, 4)),
        float(RNG_POINTS.uniform(-15, 15)),
    )
    for _ in range(300)
]


def _mp_log_nb(x, mu, th):
    """Reference log NB(x | mu, theta) in mpmath, 50 digits, written from the definition."""
    with mpmath.workdps(50):
        x, mu, th = mpmath.mpf(x), mpmath.mpf(mu), mpmath.mpf(th)
        return (
            mpmath.loggamma(x + th)
            - mpmath.loggamma(th)
            - mpmath.loggamma(x + 1)
            + th * mpmath.log(th / (th + mu))
            + x * mpmath.log(mu / (th + mu))
        )


def _mp_log_zinb(x, mu, th, zi):
    """Reference log ZINB as the naive mixture pi + (1 - pi) NB, mpmath at 50 digits."""
    with mpmath.workdps(50):
        pi = 1 / (1 + mpmath.exp(-mpmath.mpf(zi)))
        nb = mpmath.exp(_mp_log_nb(x, mu, th))
        return mpmath.log(pi + (1 - pi) * nb) if x == 0 else mpmath.log((1 - pi) * nb)


# --- eq. (56): the Gamma-Poisson mixture ------------------------------------------------------


def test_gamma_poisson_mixture_is_nb_symbolically():
    r = NB.gamma_poisson_mixture()
    ratio = r / NB.nb_pmf(NB.k, NB.l * NB.rho, NB.theta)
    assert sp.simplify(sp.powsimp(sp.expand_power_base(ratio, force=True), force=True)) == 1


@pytest.mark.parametrize("lib,rho_,th", [(3.0, 2.0, 1.7), (1000.0, 1e-3, 0.2), (50.0, 0.3, 40.0)])
def test_gamma_poisson_mixture_matches_scipy(lib, rho_, th):
    r = NB.gamma_poisson_mixture()
    mean = lib * rho_
    for kk in (0, 1, 2, 7, 30):
        val = float(r.subs({NB.k: kk, NB.l: lib, NB.rho: rho_, NB.theta: th}).evalf(30))
        ref = stats.nbinom.pmf(kk, th, th / (th + mean))  # scipy: n = size, p = P(failure here)
        assert val == pytest.approx(ref, rel=1e-10, abs=1e-300)


def test_size_prob_parameterisation_matches_scipy_and_maps_back():
    n_, p_ = 2.5, 0.35  # tutorial's (57): p is the success probability
    for kk in range(20):
        val = float(NB.nb_pmf_size_prob(kk, n_, p_))
        assert val == pytest.approx(stats.nbinom.pmf(kk, n_, 1 - p_), rel=1e-12)
    size, prob = NB.size_prob_from_mean(NB.mu, NB.theta)
    back_mean, back_size = NB.mean_from_size_prob(size, prob)
    assert sp.simplify(back_mean - NB.mu) == 0 and back_size == NB.theta
    same = NB.nb_pmf_size_prob(NB.k, size, prob) / NB.nb_pmf(NB.k, NB.mu, NB.theta)
    assert sp.simplify(sp.powsimp(sp.expand_power_base(same, force=True), force=True)) == 1


def test_nb_pgf_sums_to_one_and_moments_match_scipy():
    pgf = NB.nb_pgf()
    assert sp.simplify(pgf.subs(NB.s, 1)) == 1
    m, v = NB.nb_moments_size_prob()
    n_, p_ = 3.2, 0.6
    ref_m, ref_v = stats.nbinom.stats(n_, 1 - p_, moments="mv")
    assert float(m.subs({NB.n_size: n_, NB.p: p_})) == pytest.approx(float(ref_m), rel=1e-12)
    assert float(v.subs({NB.n_size: n_, NB.p: p_})) == pytest.approx(float(ref_v), rel=1e-12)


def test_mean_dispersion_moments_two_routes():
    m, v = NB.nb_moments_mean_disp()
    assert sp.simplify(m - NB.mu) == 0
    assert sp.simplify(v - (NB.mu + NB.mu**2 / NB.theta)) == 0
    gm, gv = NB.gamma_poisson_moments()  # by the hierarchy (integration), another route
    assert sp.simplify(gm - m.subs(NB.mu, NB.l * NB.rho)) == 0
    assert sp.simplify(gv - v.subs(NB.mu, NB.l * NB.rho)) == 0


# --- eqs. (58)-(59): ZINB -------------------------------------------------------------------


def test_zinb_softplus_form_equals_mixture_symbolically():
    zero, positive = NB.zinb_stable_equals_naive()
    assert zero == 0 and positive == 0


def test_zinb_softplus_form_equals_mixture_high_precision():
    assert NB.zinb_stable_vs_naive_mp(POINTS, dps=50) < 1e-40


def test_zinb_sympy_log_pmf_matches_mpmath_reference():
    for x_, mu_, th_, zi_ in POINTS[:40]:
        expr = NB.zinb_log_pmf_stable(
            sp.Integer(x_), sp.Float(mu_, 40), sp.Float(th_, 40), sp.Float(zi_, 40)
        )
        with mpmath.workdps(50):
            ref = _mp_log_zinb(x_, mu_, th_, zi_)
            diff = abs(mpmath.mpf(str(sp.N(expr, 45))) - ref)
            assert diff < 1e-30 * max(1, abs(ref))


def test_zinb_pmf_sums_to_one_and_moments():
    mean, th, pi = 6.0, 1.7, 0.3
    zi = math.log(pi / (1 - pi))
    pmf = [float(NB.zinb_pmf_naive(sp.Integer(j), mean, th, zi)) for j in range(400)]
    assert sum(pmf) == pytest.approx(1.0, abs=1e-12)
    ks = np.arange(400)
    ex = float(np.dot(ks, pmf))
    var = float(np.dot(ks**2, pmf)) - ex**2
    m_sym, v_sym = NB.zinb_moments()
    subs = {NB.mu: mean, NB.theta: th, sp.Symbol("pi", positive=True): pi}
    assert float(m_sym.subs(subs)) == pytest.approx(ex, rel=1e-10)
    assert float(v_sym.subs(subs)) == pytest.approx(var, rel=1e-10)


# --- agreement with scvi_edu.distributions --------------------------------------------------


def _measured_rel_error(fn, ref_fn, points):
    x, mu_, th_, zi_ = (torch.tensor(c, dtype=torch.float64) for c in zip(*points, strict=True))
    got = fn(x, mu_, th_, zi_).numpy()
    ref = np.array([float(ref_fn(*pt)) for pt in points])
    return float(np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))))


def test_log_nb_positive_agrees_with_symbolic_pmf():
    err = _measured_rel_error(
        lambda x, m, t, z: log_nb_positive(x, m, t), lambda x, m, t, z: _mp_log_nb(x, m, t), POINTS
    )
    assert err < 1e-10, err  # measured 5.6e-12 (lgamma cancellation at theta ~ 1e4)


def test_log_zinb_positive_agrees_with_symbolic_pmf():
    err = _measured_rel_error(log_zinb_positive, _mp_log_zinb, POINTS)
    assert err < 1e-10, err  # measured 5.6e-12 (lgamma cancellation at theta ~ 1e4)


def test_log_zinb_positive_agrees_with_sympy_expression():
    # lambdify the sympy derivation itself (mpmath backend) and compare at moderate points
    xs, ms, ts, zs = sp.symbols("x m t z", positive=True)
    pos = sp.lambdify((xs, ms, ts, zs), NB.zinb_log_pmf_stable(xs, ms, ts, zs), "mpmath")
    zero = sp.lambdify((ms, ts, zs), NB.zinb_log_pmf_stable(0, ms, ts, zs), "mpmath")
    for x_, mu_, th_, zi_ in POINTS[:60]:
        with mpmath.workdps(40):
            ref = zero(mu_, th_, zi_) if x_ == 0 else pos(x_, mu_, th_, zi_)
        got = log_zinb_positive(
            *(torch.tensor([v], dtype=torch.float64) for v in (x_, mu_, th_, zi_))
        )
        assert abs(float(got) - float(ref)) < 1e-12 * max(1.0, abs(float(ref)))


# --- Monte Carlo of the generative process (55) ---------------------------------------------


def _simulate_55(n, lib, rho_, th, f_h, seed=0):
    """Follow (55) step by step: w ~ Gamma(theta, rate theta/rho), y ~ Poisson(l w),
    h ~ Bernoulli(sigmoid(f_h)), x = y if h = 1 else 0."""
    rng = np.random.default_rng(seed)
    w = rng.gamma(shape=th, scale=rho_ / th, size=n)
    y = rng.poisson(lib * w)
    h = rng.random(n) < 1 / (1 + np.exp(-f_h))
    return np.where(h, y, 0)


def _chi2_pvalue(samples, log_pmf):
    """Chi-square goodness of fit: bins 0..K-1 with expected counts >= 5, plus the tail."""
    n = len(samples)
    probs, kk = [], 0
    while True:
        pk = math.exp(log_pmf(kk))
        if n * pk < 5 and kk > 0:
            break
        probs.append(pk)
        kk += 1
    observed = [np.sum(samples == j) for j in range(kk)] + [np.sum(samples >= kk)]
    expected = [n * q for q in probs] + [n * (1 - sum(probs))]
    return stats.chisquare(observed, expected).pvalue


@pytest.mark.parametrize("lib,rho_,th,f_h", [(3.0, 2.0, 1.7, 0.8), (20.0, 0.05, 0.5, -1.0)])
def test_monte_carlo_55_matches_zinb(lib, rho_, th, f_h):
    samples = _simulate_55(200_000, lib, rho_, th, f_h)
    mean = lib * rho_

    def log_pmf(xx, zi):
        return float(
            log_zinb_positive(*(torch.tensor([v], dtype=torch.float64) for v in (xx, mean, th, zi)))
        )

    # (55) keeps the count with probability sigmoid(f_h): zero-inflation logit zi = -f_h.
    p_right = _chi2_pvalue(samples, lambda xx: log_pmf(xx, -f_h))
    assert p_right > 1e-3  # significance level 0.001 (fixed seed: deterministic)
    # the tutorial's (58) weights (zi = +f_h) are rejected
    p_swapped = _chi2_pvalue(samples, lambda xx: log_pmf(xx, f_h))
    assert p_swapped < 1e-10


def test_monte_carlo_55_moments():
    lib, rho_, th, f_h = 3.0, 2.0, 1.7, 0.8
    samples = _simulate_55(400_000, lib, rho_, th, f_h, seed=1)
    m_sym, v_sym = NB.zinb_moments()
    pi = 1 / (1 + math.exp(f_h))  # P(technical zero) = P(h = 0)
    subs = {NB.mu: lib * rho_, NB.theta: th, sp.Symbol("pi", positive=True): pi}
    m, v = float(m_sym.subs(subs)), float(v_sym.subs(subs))
    se = math.sqrt(v / len(samples))
    assert abs(samples.mean() - m) < 4 * se
    assert samples.var() == pytest.approx(v, rel=0.03)
