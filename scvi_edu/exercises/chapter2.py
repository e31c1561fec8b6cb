"""Chapter 2 exercise checks (raise ``AssertionError`` with a hint if wrong).

Both exercises are about the linear Gaussian VAE of tutorial eqs. (47)-(54): data
x ~ N(0, C), C = w w^T + gamma I, w = (1, 2); encoder q(z | x) = N(a . x, gamma / (5 + gamma))
and decoder p(x | z) = N(b z, gamma I) with fixed variances (eq. (50)).

``check_beta_vae`` (exercise 1, the beta-VAE optimum). Weighting the KL of the ELBO (31) by beta
multiplies only the code penalty (a . x)^2 / 2 of the loss (52); the ridge |b|^2 / (2 (5 + gamma))
comes from the reconstruction term and keeps its weight. The population loss is then minimised
(derivation in the chapter's solution) by

    a = b / ((5 + gamma) sqrt(beta)),  b = sqrt(s / 5) w,  s = (5 + gamma) sqrt(beta) - beta gamma,

which is the tutorial's optimum at beta = 1 and collapses (s = 0) at beta = ((5 + gamma) / gamma)^2.

``check_noise_saddle_curvature`` (exercise 2, the extra stationary points are saddles). With
a = b / (gamma + |b|^2) the loss (52) becomes the profile
P(b) = |b|^2 / (2 (5 + gamma)) - b^T C b / (2 gamma (gamma + |b|^2)) + tr C / (2 gamma).
Rotating b at fixed length from the noise point b = beta_n u2 towards u1 (u1 = w / sqrt5,
u2 = (2, -1) / sqrt5), b(t) = beta_n (cos t u2 + sin t u1), gives
d^2 P / dt^2 (0) = -5 beta_n^2 / (gamma (gamma + beta_n^2)) < 0,
beta_n^2 = sqrt(gamma (5 + gamma)) - gamma.
"""

from __future__ import annotations

import math

__all__ = [
    "EXERCISE_CH2_BETA",
    "EXERCISE_CH2_SADDLE",
    "beta_vae_optimum",
    "check_beta_vae",
    "check_noise_saddle_curvature",
]

# The numbers of the two exercises.
EXERCISE_CH2_BETA = {"gamma": 1.0, "beta": 4.0}
EXERCISE_CH2_SADDLE = {"gamma": 1.0}


def _number(answer: object) -> float:
    try:
        value = float(answer)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the answer must be a number, got {answer!r}") from err
    if not math.isfinite(value):
        raise AssertionError(f"the answer must be a finite number, got {value}")
    return value


def beta_vae_optimum(gamma: float, beta: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(a, b) minimising the population beta-VAE loss, the branch with a1 > 0 (see module doc).

    Returns a = b = (0, 0) beyond the collapse, beta >= ((5 + gamma) / gamma)^2.
    """
    gamma, beta = float(gamma), float(beta)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma (the noise variance) must be positive, got {gamma}")
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta (the KL weight) must be positive, got {beta}")
    s = (5 + gamma) * math.sqrt(beta) - beta * gamma
    if s <= 0:
        return (0.0, 0.0), (0.0, 0.0)
    b1 = math.sqrt(s / 5)
    a1 = b1 / ((5 + gamma) * math.sqrt(beta))
    return (a1, 2 * a1), (b1, 2 * b1)


def check_beta_vae(answer: float) -> None:
    """Exercise 1: the encoder weight a1 > 0 of the beta-VAE optimum (``EXERCISE_CH2_BETA``)."""
    value = _number(answer)
    gamma, beta = EXERCISE_CH2_BETA["gamma"], EXERCISE_CH2_BETA["beta"]
    (a1, _), _ = beta_vae_optimum(gamma, beta)
    if math.isclose(abs(value), 1 / (5 + gamma), rel_tol=1e-6):
        raise AssertionError(
            "that is the beta = 1 optimum 1/(5 + gamma): the KL weight beta changes the code "
            "penalty, so a changes"
        )
    if math.isclose(abs(value), a1, rel_tol=1e-6) and value < 0:
        raise AssertionError("right size, but the exercise asks for the branch with a1 > 0")
    assert math.isclose(value, a1, rel_tol=1e-6), (
        f"{value:.6g} is not a1 at the beta-VAE optimum. Hint: grad_a gives "
        "a = b / (beta gamma + |b|^2); beta multiplies only the code penalty, not the ridge on b."
    )
    print(f"Correct: a1 = {a1:.6f} (at beta = 1 it would be {1 / (5 + gamma):.6f}).")


def check_noise_saddle_curvature(answer: float) -> None:
    """Exercise 2: d^2 P / dt^2 at t = 0 along the rotation of b (module doc), at gamma = 1."""
    value = _number(answer)
    gamma = EXERCISE_CH2_SADDLE["gamma"]
    beta_n2 = math.sqrt(gamma * (5 + gamma)) - gamma
    expected = -5 * beta_n2 / (gamma * (gamma + beta_n2))
    if math.isclose(value, -expected, rel_tol=1e-6):
        raise AssertionError(
            "right size, wrong sign: rotating b towards the top eigenvector of C increases "
            "b^T C b, which enters the profile loss with a minus sign"
        )
    assert math.isclose(value, expected, rel_tol=1e-6), (
        f"{value:.6g} is not the curvature. Hint: at fixed |b|^2 = beta_n^2 only "
        "b^T C b = beta_n^2 (gamma cos^2 t + (5 + gamma) sin^2 t) varies along the rotation."
    )
    print(f"Correct: d2P/dt2 = {expected:.4f} < 0, so the noise-direction points are saddles.")
