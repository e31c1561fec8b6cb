"""Chapter 1 exercise checks (raise ``AssertionError`` with a hint if wrong).

Both exercises use the data of eq. (3), which lie on the line x2 = 2 x1, so that the
reconstruction error (5) is ``gamma * |v - s b|^2`` with ``v = (1, 2)``, ``s = a1 + 2 a2`` and
``gamma = mean(x1**2) = 77/180``.

Exercise 1 (``check_exercise_ch1_penalties``): the l2 penalty of eq. (16) with different weights
on the encoder and the decoder, ``lam_a |a|^2 + lam_b |b|^2``. At the nonzero minimiser
``a = alpha v``, ``b = beta v``; the stationary conditions give the balance
``lam_a alpha^2 = lam_b beta^2`` and the reconstruction gain ``x~ = g x`` with
``g = 5 alpha beta = 1 - sqrt(lam_a lam_b) / (5 gamma)``: only the geometric mean of the two
weights matters. The reader gives ``a1 / b1`` and ``g``.

Exercise 2 (``check_exercise_ch1_endpoint``): unpenalised gradient flow conserves
``p = a . (2, -1)`` and ``c = |a|^2 - |b|^2``, so its end point on the manifold (14) is
``a = (s v + p w) / 5``, ``b = v / s`` (``w = (2, -1)``) with
``s^2 = (5c - p^2 + sqrt((p^2 - 5c)^2 + 100)) / 2``; from the exercise's start ``s`` keeps
its sign (tests/test_exercises_chapter1.py confirms it by gradient descent).
The reader gives the end point (a1, a2, b1, b2) for the start ``EXERCISE_CH1_START``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "EXERCISE_CH1_PENALTIES",
    "EXERCISE_CH1_START",
    "check_exercise_ch1_endpoint",
    "check_exercise_ch1_penalties",
]

GAMMA = 77 / 180  # mean of x1^2 over the nine samples of eq. (3)

# Exercise 1: the encoder's and the decoder's penalty weights.
EXERCISE_CH1_PENALTIES = {"lam_a": 0.1, "lam_b": 0.9}

# Exercise 2: the start (a1, a2, b1, b2) of gradient descent.
EXERCISE_CH1_START = (0.6, 0.1, -0.3, 0.5)


def _finite(values, n: int, what: str) -> np.ndarray:
    p = np.asarray(values, dtype=np.float64).reshape(-1)
    if p.shape != (n,) or not np.all(np.isfinite(p)):
        raise ValueError(f"{what} must be {n} finite numbers, got {values!r}")
    return p


def check_exercise_ch1_penalties(ratio: float, gain: float) -> None:
    """Check ``a1 / b1`` and the gain ``g`` of the minimiser with weights EXERCISE_CH1_PENALTIES."""
    ratio, gain = _finite([ratio, gain], 2, "(ratio, gain)")
    lam_a, lam_b = EXERCISE_CH1_PENALTIES["lam_a"], EXERCISE_CH1_PENALTIES["lam_b"]
    ratio_ok = math.sqrt(lam_b / lam_a)
    gain_ok = 1 - math.sqrt(lam_a * lam_b) / (5 * GAMMA)
    if math.isclose(abs(ratio), 1 / ratio_ok, rel_tol=1e-3):
        raise AssertionError(
            "a1/b1 is inverted: lam_a a^2 = lam_b b^2, so the more penalised side is smaller"
        )
    if math.isclose(abs(ratio), 1.0, rel_tol=1e-3):
        raise AssertionError("a1 = b1 holds for equal weights only: multiply the two conditions")
    assert math.isclose(abs(ratio), ratio_ok, rel_tol=1e-3), (
        f"a1/b1 = {ratio:.4f} is not right: compare alpha x (first condition) with "
        "beta x (second condition)"
    )
    mean_gain = 1 - (lam_a + lam_b) / 2 / (5 * GAMMA)
    if math.isclose(gain, mean_gain, rel_tol=1e-3):
        raise AssertionError("the gain does not depend on the arithmetic mean of the weights")
    assert math.isclose(gain, gain_ok, rel_tol=1e-3), (
        f"gain {gain:.4f} is not right: write g = 5 alpha beta and use the balance condition"
    )


def gradient_flow_endpoint(start) -> np.ndarray:
    """The end point of unpenalised gradient flow from ``start`` = (a1, a2, b1, b2), eq. (14)."""
    a, b = np.asarray(start[:2], dtype=np.float64), np.asarray(start[2:], dtype=np.float64)
    v, w = np.array([1.0, 2.0]), np.array([2.0, -1.0])
    p, c, s0 = a @ w, a @ a - b @ b, a @ v
    q = p**2 - 5 * c
    s = math.copysign(math.sqrt((-q + math.sqrt(q**2 + 100)) / 2), s0)
    return np.concatenate([(s * v + p * w) / 5, v / s])


def check_exercise_ch1_endpoint(params) -> None:
    """Check the predicted end point (a1, a2, b1, b2) of gradient flow from EXERCISE_CH1_START."""
    p = _finite(params, 4, "params (a1, a2, b1, b2)")
    s = p[0] + 2 * p[1]
    assert s != 0 and np.allclose(p[2:], np.array([1.0, 2.0]) / s, atol=1e-3), (
        "not a point of (14): the end point reconstructs perfectly, b = (1, 2) / (a1 + 2 a2)"
    )
    a0 = np.asarray(EXERCISE_CH1_START[:2])
    assert abs(p[0] * 2 - p[1] - (a0 @ [2.0, -1.0])) < 1e-3, (
        "a . (2, -1) must keep its starting value: the gradient in a is parallel to (1, 2)"
    )
    best = gradient_flow_endpoint(EXERCISE_CH1_START)
    assert np.allclose(p, best, atol=1e-3), (
        f"{np.round(p, 4)} is on (14) but not the end point: which other quantity does gradient "
        "flow conserve? Compare d|a|^2/dt with d|b|^2/dt"
    )
