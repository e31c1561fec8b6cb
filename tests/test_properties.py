"""Hypothesis property tests of scvi_edu.distributions that tests/test_distributions.py lacks.

Audit of test_distributions.py (property = a hypothesis test over a range, not a few points):
pmf sums to one (ZINB only: NB and Poisson added here), log-probs <= 0 (float64 only: float32
added here, with float32 agreeing with float64), KL >= 0 and = 0 iff equal (present), NB ->
Poisson as theta -> infinity and ZINB -> NB as zi -> -infinity (fixed points only: properties
with explicit error bounds added here), finite gradients across the stable range (a fixed grid
only: random points added here, float32 and float64).

References are independent of the code under test: scipy.stats, mpmath-free closed forms
(asymptotic expansions derived below), float64 evaluations. Deterministic: derandomize=True.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from scvi_edu.distributions import log_nb_positive, log_poisson, log_zinb_positive

FAST = settings(max_examples=50, deadline=None, derandomize=True, database=None)
T64 = torch.float64


def t(a, dtype=T64):
    return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)


def log_uniform(lo: float, hi: float):
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


# the documented stable range of scvi_edu.distributions
counts = st.integers(0, 10**6).map(float)
means = st.one_of(st.just(0.0), log_uniform(1e-6, 1e6))
thetas = log_uniform(1e-6, 1e8)
logits = st.floats(-100.0, 100.0)


# ----------------------------------------------------------------------- pmf sums to one
@FAST
@given(mu=log_uniform(1e-3, 200.0), theta=log_uniform(1e-2, 1e3))
def test_nb_pmf_sums_to_one(mu, theta):
    hi = int(stats.nbinom.isf(1e-14, n=theta, p=theta / (theta + mu))) + 10
    total = torch.exp(log_nb_positive(t(np.arange(hi)), t(mu), t(theta))).sum().item()
    assert abs(total - 1) < 1e-8, f"NB pmf (eq. (56)) sums to {total}"


@FAST
@given(mu=log_uniform(1e-3, 500.0))
def test_poisson_pmf_sums_to_one(mu):
    hi = int(stats.poisson.isf(1e-14, mu)) + 10
    total = torch.exp(log_poisson(t(np.arange(hi)), t(mu))).sum().item()
    assert abs(total - 1) < 1e-10, f"Poisson pmf sums to {total}"


# ------------------------------------------------------------ log-probs <= 0, also float32
def _all_log_pmfs(x, mu, theta, zi, dtype):
    x_, mu_, th_, zi_ = (t(v, dtype) for v in (x, mu, theta, zi))
    return {
        "zinb": log_zinb_positive(x_, mu_, th_, zi_),
        "nb": log_nb_positive(x_, mu_, th_),
        "poisson": log_poisson(x_, mu_),
    }


@FAST
@given(x=counts, mu=means.filter(lambda m: m > 0), theta=thetas, zi=logits)
def test_float32_log_pmfs_are_nonpositive_and_agree_with_float64(x, mu, theta, zi):
    """Training runs in float32: a log-pmf above 0 (pmf > 1) is an error the optimiser can
    exploit. The tolerance scales with the terms every count pmf has (x log mu, mu, log x!)."""
    lp32 = _all_log_pmfs(x, mu, theta, zi, torch.float32)
    lp64 = _all_log_pmfs(x, mu, theta, zi, T64)
    scale = 1.0 + x * abs(math.log(mu)) + mu + math.lgamma(x + 1)
    for name in lp32:
        v32, v64 = lp32[name].item(), lp64[name].item()
        assert v32 <= 1e-6 * scale, f"{name}: float32 log-pmf {v32} > 0 (theta={theta})"
        assert abs(v32 - v64) <= 1e-5 * scale, (
            f"{name}: float32 {v32} vs float64 {v64} at x={x}, mu={mu}, theta={theta}"
        )


# --------------------------------------------------------------------- NB -> Poisson
@FAST
@given(x=st.integers(0, 50), mu=log_uniform(1e-2, 50.0), theta=log_uniform(1e3, 1e6))
def test_nb_tends_to_poisson_with_the_derived_rate(x, mu, theta):
    """log NB - log Poisson = sum_{k<x} log(1 + k/theta) - theta log(1 + mu/theta) + mu
    - x log(1 + mu/theta). Expanding each log to second order in 1/theta:
    first order ((x - mu)^2 - x) / (2 theta), second order
    (-S2/2 - mu^3/3 + x mu^2/2) / theta^2 with S2 = sum_{k<x} k^2; the rest is O(theta^-3)."""
    diff = log_nb_positive(t(float(x)), t(mu), t(theta)).item() - stats.poisson.logpmf(x, mu)
    s2 = (x - 1) * x * (2 * x - 1) / 6
    first = ((x - mu) ** 2 - x) / (2 * theta)
    second = (-s2 / 2 - mu**3 / 3 + x * mu**2 / 2) / theta**2
    rest = 2 * (x**4 + mu**4 + x * mu**3) / theta**3 + 1e-9
    assert abs(diff - first - second) <= rest, (x, mu, theta, diff, first, second)


# ------------------------------------------------------------------------- ZINB -> NB
@FAST
@given(x=st.integers(0, 200), mu=log_uniform(1e-2, 1e3), theta=log_uniform(1e-2, 1e3),
       zi=st.floats(-60.0, -5.0))  # fmt: skip
def test_zinb_tends_to_nb_as_logits_go_to_minus_infinity(x, mu, theta, zi):
    """pi = sigmoid(zi) ~ e^zi. x > 0: log ZINB - log NB = log(1 - pi) exactly;
    x = 0: log(pi + (1 - pi) p0) - log p0 = log1p(pi (1/p0 - 1)) <= pi / p0. Both -> 0."""
    nb = log_nb_positive(t(float(x)), t(mu), t(theta)).item()
    zinb = log_zinb_positive(t(float(x)), t(mu), t(theta), t(zi)).item()
    pi = 1.0 / (1.0 + math.exp(-zi))
    if x > 0:
        exact = math.log1p(-pi)
        bound = 2 * math.exp(zi)
    else:
        log_p0 = stats.nbinom.logpmf(0, n=theta, p=theta / (theta + mu))
        exact = math.log1p(pi * math.expm1(-log_p0))
        bound = 2 * math.exp(zi - log_p0)
    rounding = 1e-13 * max(1.0, abs(nb))  # zinb - nb subtracts two numbers of size |nb|
    assert abs((zinb - nb) - exact) <= 1e-9 * abs(exact) + rounding
    assert abs(zinb - nb) <= bound + rounding


# ------------------------------------------------------------------- finite gradients
@FAST
@given(x=counts, mu=means, theta=thetas, zi=logits, float32=st.booleans())
def test_finite_values_and_gradients_across_the_stable_range(x, mu, theta, zi, float32):
    dtype = torch.float32 if float32 else T64
    mu_ = t(mu, dtype).requires_grad_(True)
    th_ = t(theta, dtype).requires_grad_(True)
    zi_ = t(zi, dtype).requires_grad_(True)
    x_ = t(x, dtype)
    for name, value in [
        ("zinb", log_zinb_positive(x_, mu_, th_, zi_)),
        ("nb", log_nb_positive(x_, mu_, th_)),
        ("poisson", log_poisson(x_, mu_)),
    ]:
        assert torch.isfinite(value), f"{name} {dtype}: log-pmf {value.item()}"
        grads = torch.autograd.grad(value, [mu_, th_, zi_], allow_unused=True)
        for pname, g in zip(("mu", "theta", "zi_logits"), grads, strict=True):
            assert g is None or torch.isfinite(g), f"{name} {dtype}: d/d{pname} = {g}"
