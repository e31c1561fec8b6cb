"""Chapter 6 exercises: each check accepts the right answer and refuses wrong ones."""

import math

import numpy as np
import pytest
import sympy as sp
from _grading import failure  # tests/ is on sys.path
from scipy import integrate, stats

from derivations import errata
from derivations.errata import m_q, s_q, x_obs
from scvi_edu.exercises import EXERCISE_CH6, check_zero_probability


def _zinb_zero_reference() -> float:
    mu, theta, f = EXERCISE_CH6["mu"], EXERCISE_CH6["theta"], EXERCISE_CH6["f_h"]
    keep = 1 / (1 + math.exp(-f))
    nb0 = stats.nbinom.pmf(0, theta, theta / (theta + mu))  # scipy's size/prob form
    return (1 - keep) + keep * nb0


def test_zero_probability_right_answer():
    problem = failure(check_zero_probability, _zinb_zero_reference())
    assert problem is None, problem


def test_zero_probability_wrong_answers():
    mu, theta, f = EXERCISE_CH6["mu"], EXERCISE_CH6["theta"], EXERCISE_CH6["f_h"]
    keep = 1 / (1 + math.exp(-f))
    nb0 = (theta / (theta + mu)) ** theta
    with pytest.raises(AssertionError, match="swapped"):
        check_zero_probability(keep + (1 - keep) * nb0)  # the printed (58)
    with pytest.raises(AssertionError, match="dropout"):
        check_zero_probability(nb0)
    with pytest.raises(AssertionError):
        check_zero_probability(0.5)
    with pytest.raises(AssertionError, match="probability"):
        check_zero_probability(1.5)


def _bounds_by_quadrature(x: float, m: float, s: float) -> tuple[float, float, float]:
    """log p(x), E_q log p(x|z) and KL(q || p) for the toy, by scipy quadrature."""
    q = stats.norm(m, s)
    e_loglik = integrate.quad(lambda z: q.pdf(z) * stats.norm.logpdf(x, z, 1), -30, 30)[0]
    kl = integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - stats.norm.logpdf(z)), m - 30 * s,
                        m + 30 * s)[0]  # fmt: skip
    return stats.norm.logpdf(x, 0, math.sqrt(2)), e_loglik, kl


def test_toy_bounds_match_quadrature():
    b = errata.toy_bounds()
    for x, m, s in [(1.0, 0.3, 0.8), (-2.0, 1.5, 0.2), (0.5, 0.25, math.sqrt(0.5))]:
        log_px, e_loglik, kl = _bounds_by_quadrature(x, m, s)
        at = {x_obs: x, m_q: m, s_q: s}
        assert float(b["log_px"].subs(at)) == pytest.approx(log_px, abs=1e-9)
        assert float(b["correct"].subs(at)) == pytest.approx(e_loglik - kl, abs=1e-7)
        assert float(b["printed"].subs(at)) == pytest.approx(e_loglik + kl, abs=1e-7)
        assert e_loglik - kl <= log_px + 1e-9


def test_printed_bound_right_answer():
    x, m, s = x_obs, m_q, s_q
    by_hand = -sp.log(2 * sp.pi) / 2 - ((x - m) ** 2 + s**2) / 2 + (m**2 + s**2 - 1) / 2 - sp.log(s)
    errata.check_printed_bound(by_hand)
    # and the simplified form
    errata.check_printed_bound(-sp.log(2 * sp.pi) / 2 + x * m - x**2 / 2 - sp.Rational(1, 2)
                               - sp.log(s))  # fmt: skip
    # it exceeds log p(x) as s -> 0 (checked numerically, independent of sympy's limit)
    log_px = stats.norm.logpdf(1.0, 0, math.sqrt(2))
    assert float(by_hand.subs({x: 1.0, m: 0.5, s: 1e-3})) > log_px


def test_printed_bound_wrong_answers():
    x, m, s = x_obs, m_q, s_q
    e_loglik = -sp.log(2 * sp.pi) / 2 - ((x - m) ** 2 + s**2) / 2
    kl = (m**2 + s**2 - 1) / 2 - sp.log(s)
    with pytest.raises(AssertionError, match="correct bound"):
        errata.check_printed_bound(e_loglik - kl)
    with pytest.raises(AssertionError, match="not the printed bound"):
        errata.check_printed_bound(e_loglik + kl + sp.log(s))  # KL without the log term
    with pytest.raises(AssertionError, match="symbols"):
        errata.check_printed_bound(sp.Symbol("y") + e_loglik + kl)
    assert np.isfinite(float((e_loglik + kl).subs({x: 0, m: 0, s: 1})))
