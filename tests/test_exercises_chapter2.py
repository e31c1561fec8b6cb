"""Chapter 2 exercises: each check against an independent reference, right and wrong answers."""

import math

import numpy as np
import pytest
import sympy as sp
from scipy import optimize

from derivations import vae as V
from scvi_edu.exercises import (
    EXERCISE_CH2_BETA,
    EXERCISE_CH2_SADDLE,
    check_beta_vae,
    check_noise_saddle_curvature,
)
from scvi_edu.exercises.chapter2 import beta_vae_optimum
from scvi_edu.toys import vae as T


def beta_loss(params, cov, gamma, beta):
    """Population loss (52) with the KL weighted by beta: only the code penalty a'Ca/2 scales."""
    a = params[:2]
    return T.loss_fixed_numpy(params, cov, gamma) + (beta - 1) * (a @ cov @ a) / 2


def numeric_beta_optimum(gamma, beta):
    cov = np.outer(T.W_TRUE, T.W_TRUE) + gamma * np.eye(2)
    best = min(
        (
            optimize.minimize(beta_loss, x0, args=(cov, gamma, beta), method="BFGS", tol=1e-12)
            for x0 in np.random.default_rng(0).normal(size=(8, 4))
        ),
        key=lambda r: r.fun,
    )
    return best.x * np.sign(best.x[0]) if best.x[0] != 0 else best.x


@pytest.mark.parametrize(("gamma", "beta"), [(1.0, 4.0), (0.5, 0.3), (2.0, 9.0), (1.0, 1.0)])
def test_beta_vae_optimum_against_scipy(gamma, beta):
    a, b = beta_vae_optimum(gamma, beta)
    ref = numeric_beta_optimum(gamma, beta)
    np.testing.assert_allclose(np.r_[a, b], ref, atol=1e-5)
    if beta == 1.0:  # the tutorial's optimum
        np.testing.assert_allclose(a, np.array(T.W_TRUE) / (5 + gamma), rtol=1e-12)


def test_beta_vae_collapses_beyond_the_threshold():
    gamma = 1.0
    beta = 1.05 * ((5 + gamma) / gamma) ** 2
    assert beta_vae_optimum(gamma, beta) == ((0.0, 0.0), (0.0, 0.0))
    np.testing.assert_allclose(numeric_beta_optimum(gamma, beta), 0.0, atol=1e-5)


def test_check_beta_vae_right_and_wrong():
    gamma, beta = EXERCISE_CH2_BETA["gamma"], EXERCISE_CH2_BETA["beta"]
    right = numeric_beta_optimum(gamma, beta)[0]
    check_beta_vae(right)  # the scipy minimiser passes (tolerance 1e-6 relative)
    check_beta_vae(math.sqrt(8 / 5) / 12)  # the closed form at gamma = 1, beta = 4
    with pytest.raises(AssertionError, match="beta = 1"):
        check_beta_vae(1 / 6)
    with pytest.raises(AssertionError, match="a1 > 0"):
        check_beta_vae(-right)
    with pytest.raises(AssertionError, match="not a1"):
        check_beta_vae(math.sqrt(8 / 5) / 6)  # forgot the sqrt(beta): divided by (5 + gamma)
    with pytest.raises(ValueError, match="number"):
        check_beta_vae("a half")


def test_noise_saddle_curvature_against_sympy():
    # second derivative of the population loss, minimised over a, along the rotation of b
    g = sp.Integer(int(EXERCISE_CH2_SADDLE["gamma"]))
    t = sp.Symbol("t", real=True)
    bn = sp.sqrt(sp.sqrt(g * (5 + g)) - g)
    u1, u2 = V.W / sp.sqrt(5), sp.Matrix([2, -1]) / sp.sqrt(5)
    b = bn * (sp.cos(t) * u2 + sp.sin(t) * u1)
    a = b / (g + bn**2)  # argmin_a at fixed |b| (Step 1 of the chapter)
    loss = V.population_loss(g).subs(
        {V.a1: a[0], V.a2: a[1], V.b1: b[0], V.b2: b[1]}, simultaneous=True
    )
    curvature = sp.N(sp.diff(loss, t, 2).subs(t, 0), 30)
    check_noise_saddle_curvature(float(curvature))
    assert curvature < 0
    with pytest.raises(AssertionError, match="wrong sign"):
        check_noise_saddle_curvature(-float(curvature))
    with pytest.raises(AssertionError, match="not the curvature"):
        check_noise_saddle_curvature(float(curvature) / 2)


def test_noise_saddle_curvature_matches_hessian_index():
    # the rotation direction is a descent direction of the full Hessian: index >= 1 (a saddle)
    kinds = V.classify_stationary_points(sp.Integer(1))
    assert kinds["noise+"][0] == kinds["noise-"][0] == "saddle (index 1)"
