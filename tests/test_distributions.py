"""Tests of scvi_edu.distributions against independent references.

References: scipy.stats (Poisson, NB, normal, log-normal), mpmath at 50 digits, closed forms,
scipy.integrate.quad, torch.distributions.kl_divergence, chi-square goodness of fit.
Equations: NB pmf (56)-(57), ZINB (58)-(59), Gaussian KL (63)-(64), log-normal KL (65)-(66).
"""

from __future__ import annotations

import itertools

import mpmath as mp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from scvi_edu.distributions import (
    kl_lognormal,
    kl_normal,
    log_gamma_ratio,
    log_nb_positive,
    log_normal,
    log_poisson,
    log_zinb_positive,
    sample_nb,
    sample_zinb,
)

T64 = torch.float64


def t(a, dtype=T64):
    return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)


# ------------------------------------------------------------------------ the stability grid
X_GRID = [0.0, 1.0, 2.0, 5.0, 17.0, 100.0, 1e3, 1e4, 1e5, 1e6]
MU_GRID = [1e-6, 1e-3, 0.1, 1.0, 7.5, 100.0, 1e3, 1e4, 1e6]
THETA_GRID = [1e-6, 1e-3, 0.1, 1.0, 10.0, 1e3, 1e5, 1e8]
ZI_GRID = [-100.0, -20.0, -1.0, 0.0, 1.5, 20.0, 100.0]


def _grid(with_zi: bool):
    pts = list(itertools.product(X_GRID, MU_GRID, THETA_GRID, ZI_GRID if with_zi else [0.0]))
    # mu = 0 only together with x = 0 (for x > 0 the exact log-pmf is -inf)
    pts += [(0.0, 0.0, th, zi) for th in THETA_GRID for zi in (ZI_GRID if with_zi else [0.0])]
    return np.array(pts, dtype=np.float64).T


mp.mp.dps = 50


def _mp_log_nb(x, mu, theta):
    x, mu, theta = mp.mpf(x), mp.mpf(mu), mp.mpf(theta)
    out = mp.loggamma(x + theta) - mp.loggamma(theta) - mp.loggamma(x + 1)
    out += theta * mp.log(theta / (theta + mu))
    if x > 0:
        out += x * mp.log(mu / (theta + mu))
    return out


def _mp_log_zinb(x, mu, theta, zi):
    pi = 1 / (1 + mp.exp(-mp.mpf(zi)))  # P(technical zero)
    nb = _mp_log_nb(x, mu, theta)
    if x == 0:
        return mp.log(pi + (1 - pi) * mp.exp(nb))
    return mp.log(1 - pi) + nb


def _mp_log_poisson(x, mu):
    x, mu = mp.mpf(x), mp.mpf(mu)
    return (x * mp.log(mu) if x > 0 else 0) - mu - mp.loggamma(x + 1)


def _assert_close_to_ref(got, ref, what):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    tol = 1e-6 * np.maximum(1.0, np.abs(ref))
    err = np.abs(got - ref)
    bad = np.flatnonzero(~(err <= tol))
    assert bad.size == 0, (
        f"{what}: {bad.size} grid points off the mpmath reference by more than "
        f"1e-6*max(1,|ref|), worst index {bad[np.argmax(err[bad] / tol[bad])]} "
        f"(got {got[bad[0]]}, ref {ref[bad[0]]})"
    )


# --------------------------------------------------------------------------- scipy.stats
@pytest.mark.parametrize("mu", [0.3, 4.0, 250.0])
def test_log_poisson_matches_scipy(mu):
    x = np.arange(0, 400, dtype=np.float64)
    got = log_poisson(t(x), t(mu)).numpy()
    np.testing.assert_allclose(
        got, stats.poisson.logpmf(x, mu), rtol=1e-10, atol=1e-10, err_msg="Poisson of eq. (55)"
    )


@pytest.mark.parametrize("mu,theta", [(0.3, 0.05), (4.0, 2.0), (250.0, 13.0), (5.0, 1e4)])
def test_log_nb_matches_scipy(mu, theta):
    """eq. (56)-(57): NB(size=theta, prob of success in scipy's sense = theta/(theta+mu))."""
    x = np.arange(0, 800, dtype=np.float64)
    got = log_nb_positive(t(x), t(mu), t(theta)).numpy()
    ref = stats.nbinom.logpmf(x, n=theta, p=theta / (theta + mu))
    np.testing.assert_allclose(
        got,
        ref,
        rtol=1e-9,
        atol=1e-9,
        err_msg="NB log-pmf: x log(mu/(theta+mu)), not "
        "x log(x/(theta+mu)) (eq. (58)-(59) print the latter; ledger (58))",
    )


# ------------------------------------------------------------------------------ mpmath
def test_log_poisson_matches_mpmath_on_grid():
    x, mu, _, _ = _grid(with_zi=False)
    ref = [_mp_log_poisson(a, b) for a, b in zip(x, mu, strict=True)]
    got = log_poisson(t(x), t(mu)).numpy()
    _assert_close_to_ref(got, ref, "log_poisson (float64)")


def test_log_nb_matches_mpmath_on_grid():
    x, mu, theta, _ = _grid(with_zi=False)
    ref = [_mp_log_nb(a, b, c) for a, b, c in zip(x, mu, theta, strict=True)]
    got = log_nb_positive(t(x), t(mu), t(theta)).numpy()
    _assert_close_to_ref(got, ref, "log_nb_positive (float64)")


@pytest.mark.parametrize("dtype", [T64, torch.float32])
def test_log_gamma_ratio_matches_mpmath_on_both_branches(dtype):
    """log Gamma(x + theta) - log Gamma(theta): lgamma below theta = 10, Stirling from 10 on;
    float32 error grows with x only (the lgamma difference lost ~6e-8 theta log theta)."""
    xs = [0.0, 0.3, 1.0, 5.0, 17.0, 1e3, 1e6]
    thetas = [1e-6, 0.5, 9.999, 10.0, 10.001, 1e3, 1e5, 1e8]
    x, theta = (
        np.array(a, dtype=np.float64) for a in zip(*itertools.product(xs, thetas), strict=True)
    )
    ref = np.array(
        [float(mp.loggamma(mp.mpf(a) + b) - mp.loggamma(b)) for a, b in zip(x, theta, strict=True)]
    )
    got = log_gamma_ratio(t(x, dtype), t(theta, dtype)).double().numpy()
    if dtype == T64:
        _assert_close_to_ref(got, ref, "log_gamma_ratio (float64), eq. (56)")
    else:  # float32: rounding of x log(x + theta) and of the inputs, not of theta log theta
        tol = 1e-5 * np.maximum(1.0, np.abs(ref)) + 4e-7 * x * np.log(x + theta + 2)
        bad = np.abs(got - ref) > tol
        assert not bad.any(), f"log_gamma_ratio (float32) off at x={x[bad]}, theta={theta[bad]}"


def test_log_zinb_matches_mpmath_on_grid():
    x, mu, theta, zi = _grid(with_zi=True)
    keep = (x <= 1e3) | (zi == 0.0)  # the NB part is covered on the full x grid above
    x, mu, theta, zi = x[keep], mu[keep], theta[keep], zi[keep]
    ref = [_mp_log_zinb(*p) for p in zip(x, mu, theta, zi, strict=True)]
    got = log_zinb_positive(t(x), t(mu), t(theta), t(zi)).numpy()
    _assert_close_to_ref(got, ref, "log_zinb_positive (float64), eq. (58) corrected")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_pmfs_finite_values_and_gradients_on_grid(dtype):
    x, mu, theta, zi = _grid(with_zi=True)
    x_ = t(x, dtype)
    mu_ = t(mu, dtype).requires_grad_(True)
    theta_ = t(theta, dtype).requires_grad_(True)
    zi_ = t(zi, dtype).requires_grad_(True)
    for name, fn in [
        ("zinb", lambda: log_zinb_positive(x_, mu_, theta_, zi_)),
        ("nb", lambda: log_nb_positive(x_, mu_, theta_)),
        ("poisson", lambda: log_poisson(x_, mu_)),
    ]:
        for p in (mu_, theta_, zi_):
            p.grad = None
        out = fn()
        assert torch.isfinite(out).all(), f"{name} ({dtype}): non-finite log-pmf on the grid"
        out.sum().backward()
        for pname, p in [("mu", mu_), ("theta", theta_), ("zi_logits", zi_)]:
            if p.grad is not None:
                bad = ~torch.isfinite(p.grad)
                assert not bad.any(), (
                    f"{name} ({dtype}): non-finite d/d{pname} at "
                    f"x={x[bad.numpy()][:3]}, mu={mu[bad.numpy()][:3]}, "
                    f"theta={theta[bad.numpy()][:3]}"
                )


# ----------------------------------------------------------------------- ZINB properties
@pytest.mark.parametrize("mu,theta,zi", [(3.0, 0.7, -0.5), (40.0, 5.0, 1.2), (0.2, 20.0, 2.0)])
def test_zinb_pmf_sums_to_one(mu, theta, zi):
    x = np.arange(0, 5000, dtype=np.float64)
    p = torch.exp(log_zinb_positive(t(x), t(mu), t(theta), t(zi))).sum().item()
    assert abs(p - 1.0) < 1e-10, f"ZINB pmf sums to {p}, not 1 (eq. (58))"


def test_zinb_zero_mass_is_pi_plus_one_minus_pi_nb0():
    """eq. (58), corrected: P(0) = pi + (1 - pi) NB(0), pi = sigmoid(zi_logits) (technical zero)."""
    for mu, theta, zi in [(3.0, 0.7, -2.0), (40.0, 5.0, 1.2), (0.2, 20.0, 3.0), (10.0, 1.0, 0.0)]:
        pi = 1.0 / (1.0 + np.exp(-zi))
        nb0 = stats.nbinom.pmf(0, n=theta, p=theta / (theta + mu))
        got = np.exp(log_zinb_positive(t(0.0), t(mu), t(theta), t(zi)).item())
        assert np.isclose(got, pi + (1 - pi) * nb0, rtol=1e-12), (
            f"ZINB P(0) = {got}, expected pi + (1-pi) NB(0) = {pi + (1 - pi) * nb0}: the "
            "zero-inflation weights are swapped (eq. (58) mixes them; ledger (58))"
        )
        got5 = np.exp(log_zinb_positive(t(5.0), t(mu), t(theta), t(zi)).item())
        nb5 = stats.nbinom.pmf(5, n=theta, p=theta / (theta + mu))
        assert np.isclose(got5, (1 - pi) * nb5, rtol=1e-12), "ZINB P(x>0) = (1-pi) NB(x), eq. (58)"


def test_zinb_tends_to_nb_as_logits_to_minus_infinity():
    x = t(np.arange(0, 60))
    nb = log_nb_positive(x, t(6.0), t(1.5))
    for zi in (-20.0, -40.0, -100.0):
        zinb = log_zinb_positive(x, t(6.0), t(1.5), t(zi))
        assert torch.allclose(zinb, nb, atol=100 * np.exp(zi) + 1e-14, rtol=0)


def test_larger_zi_logits_give_more_zeros():
    p0 = [
        torch.exp(log_zinb_positive(t(0.0), t(20.0), t(2.0), t(zi))).item()
        for zi in (-3.0, 0.0, 3.0)
    ]
    assert p0[0] < p0[1] < p0[2], "sigmoid(zi_logits) must be P(technical zero) (ledger (58))"


def test_nb_tends_to_poisson_as_theta_grows():
    """log NB - log Poisson = ((x - mu)^2 - x) / (2 theta) + O(theta^-2): like 1/theta."""
    xs = np.arange(0, 80, dtype=np.float64)
    x, mu = t(xs), 12.0
    pois = log_poisson(x, t(mu))
    for theta in (1e4, 1e6, 1e8):
        err = (log_nb_positive(x, t(mu), t(theta)) - pois).abs().max().item()
        first_order = np.max(np.abs((xs - mu) ** 2 - xs)) / (2 * theta)
        assert err <= 1.1 * first_order, f"theta={theta}: |NB - Poisson| = {err} > {first_order}"
        assert err >= 0.5 * first_order  # and not accidentally zero


# ------------------------------------------------------------------------------- Normal
def test_log_normal_matches_scipy():
    x = np.linspace(-5, 5, 21)
    got = log_normal(t(x), t(0.3), t(1.7)).numpy()
    np.testing.assert_allclose(got, stats.norm.logpdf(x, 0.3, 1.7), rtol=1e-12)


KL_CASES = [(0.0, 1.0, 0.0, 1.0), (0.5, 0.3, -1.0, 2.0), (3.0, 2.5, 0.0, 1.0), (-2.0, 0.05, 1, 0.7)]


@pytest.mark.parametrize("m1,s1,m2,s2", KL_CASES)
def test_kl_normal_matches_torch_and_quadrature(m1, s1, m2, s2):
    """eq. (63)."""
    got = kl_normal(t(m1), t(s1), t(m2), t(s2)).item()
    ref_torch = torch.distributions.kl_divergence(
        torch.distributions.Normal(t(m1), t(s1)), torch.distributions.Normal(t(m2), t(s2))
    ).item()
    p, q = stats.norm(m1, s1), stats.norm(m2, s2)
    ref_quad, _ = integrate.quad(
        lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), m1 - 40 * s1, m1 + 40 * s1, limit=200
    )
    msg = "KL of Gaussians, eq. (63): log(s2/s1) - 1/2 + (s1^2 + (m1-m2)^2) / (2 s2^2)"
    assert np.isclose(got, ref_torch, rtol=1e-12, atol=1e-12), f"{msg}: {got} vs torch {ref_torch}"
    assert np.isclose(got, ref_quad, rtol=1e-7, atol=1e-9), f"{msg}: {got} vs quad {ref_quad}"


@pytest.mark.parametrize("m1,s1,m2,s2", KL_CASES)
def test_kl_lognormal_matches_quadrature_over_positive_reals(m1, s1, m2, s2):
    """eq. (65): the KL of log-normals, integrated over y in (0, inf), equals the Gaussian KL."""
    got = kl_lognormal(t(m1), t(s1), t(m2), t(s2)).item()
    p = stats.lognorm(s=s1, scale=np.exp(m1))
    q = stats.lognorm(s=s2, scale=np.exp(m2))
    lo, hi = p.ppf(1e-15), p.isf(1e-15)
    # integrate in log-spaced pieces: the density is concentrated near exp(m1)
    edges = np.geomspace(lo, hi, 40)
    ref = sum(
        integrate.quad(lambda y: p.pdf(y) * (p.logpdf(y) - q.logpdf(y)), a, b, limit=200)[0]
        for a, b in itertools.pairwise(edges)
    )
    assert np.isclose(got, ref, rtol=1e-6, atol=1e-8), (
        f"KL of log-normals, eq. (65): {got} vs quadrature over (0, inf) {ref}"
    )


# ------------------------------------------------------------------------------ samplers
ALPHA = 1e-3  # significance level of the goodness-of-fit tests (fixed seeds: deterministic)


def _chi2_pvalue(samples: np.ndarray, pmf: np.ndarray) -> float:
    """Chi-square GOF of integer samples vs pmf on 0..K-1, with a tail bin, bins merged to >=5."""
    n = samples.size
    k = pmf.size
    obs = np.bincount(np.minimum(samples, k).astype(int), minlength=k + 1)[: k + 1]
    exp = np.append(pmf, max(0.0, 1 - pmf.sum())) * n
    # merge small expected bins from the right
    o_m, e_m, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(obs[::-1], exp[::-1], strict=True):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5:
            o_m.append(acc_o)
            e_m.append(acc_e)
            acc_o = acc_e = 0.0
    o_m[-1] += acc_o
    e_m[-1] += acc_e
    return stats.chisquare(np.array(o_m), np.array(e_m)).pvalue


@pytest.mark.parametrize("mu,theta", [(5.0, 2.0), (30.0, 0.5), (1.0, 50.0)])
def test_sample_nb_goodness_of_fit_and_moments(mu, theta):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    n = 40000
    s = sample_nb(torch.full((n,), mu, dtype=T64), torch.full((n,), theta, dtype=T64), gen)
    s = s.numpy()
    pmf = stats.nbinom.pmf(np.arange(400), n=theta, p=theta / (theta + mu))
    pval = _chi2_pvalue(s, pmf)
    assert pval > ALPHA, f"sample_nb fails chi-square GOF at alpha={ALPHA}: p={pval}"
    var = mu + mu**2 / theta  # eq. (57): Var = mu + mu^2 / theta
    assert abs(s.mean() - mu) < 5 * np.sqrt(var / n)
    assert abs(s.var() / var - 1) < 0.1


@pytest.mark.parametrize("mu,theta,zi", [(5.0, 2.0, 0.0), (12.0, 3.0, -1.0)])
def test_sample_zinb_goodness_of_fit(mu, theta, zi):
    torch.manual_seed(2)
    gen = torch.Generator().manual_seed(3)
    n = 40000
    full = lambda v: torch.full((n,), v, dtype=T64)  # noqa: E731
    s = sample_zinb(full(mu), full(theta), full(zi), gen).numpy()
    x = np.arange(400)
    pmf = np.exp(log_zinb_positive(t(x), t(mu), t(theta), t(zi)).numpy())
    pi = 1 / (1 + np.exp(-zi))
    ref = (1 - pi) * stats.nbinom.pmf(x, n=theta, p=theta / (theta + mu))
    ref[0] += pi
    np.testing.assert_allclose(pmf, ref, rtol=1e-10, atol=1e-300)
    pval = _chi2_pvalue(s, ref)
    assert pval > ALPHA, f"sample_zinb fails chi-square GOF at alpha={ALPHA}: p={pval}"
    mean = (1 - pi) * mu
    assert abs(s.mean() - mean) < 5 * np.sqrt(s.var() / n)


# --------------------------------------------------------------------- property tests
FAST = settings(max_examples=50, deadline=None, derandomize=True, database=None)
mus = st.floats(1e-3, 200.0)
thetas = st.floats(1e-2, 1e3)
zis = st.floats(-8.0, 8.0)


@FAST
@given(mu=mus, theta=thetas, zi=zis)
def test_property_zinb_pmf_sums_to_one(mu, theta, zi):
    hi = int(stats.nbinom.isf(1e-14, n=theta, p=theta / (theta + mu))) + 10
    x = t(np.arange(0, hi))
    total = torch.exp(log_zinb_positive(x, t(mu), t(theta), t(zi))).sum().item()
    assert abs(total - 1) < 1e-8, f"ZINB pmf sums to {total} (eq. (58))"


@FAST
@given(
    x=st.integers(0, 10**6).map(float),
    mu=st.floats(0.0, 1e6),
    theta=st.floats(1e-6, 1e8),
    zi=st.floats(-100, 100),
)
def test_property_log_pmfs_nonpositive(x, mu, theta, zi):
    for v in (
        log_zinb_positive(t(x), t(mu), t(theta), t(zi)),
        log_nb_positive(t(x), t(mu), t(theta)),
        log_poisson(t(x), t(mu)),
    ):
        assert v.item() <= 1e-12


@FAST
@given(m1=st.floats(-5, 5), s1=st.floats(0.05, 5), m2=st.floats(-5, 5), s2=st.floats(0.05, 5))
def test_property_kl_nonnegative_and_zero_iff_equal(m1, s1, m2, s2):
    kl = kl_normal(t(m1), t(s1), t(m2), t(s2)).item()
    assert kl >= -1e-12, f"KL < 0 (eq. (63)): {kl}"
    assert abs(kl_normal(t(m1), t(s1), t(m1), t(s1)).item()) < 1e-12, "KL(p||p) = 0, eq. (63)"
    if abs(m1 - m2) > 1e-3 or abs(np.log(s1 / s2)) > 1e-3:
        assert kl > 0, "KL(p||q) > 0 for p != q, eq. (63)"
    assert kl_lognormal(t(m1), t(s1), t(m2), t(s2)).item() >= -1e-12, "eq. (65)"
