"""Chapter 1 exercise checks, each with a right and a wrong answer.

References: the right answers are computed here independently of the check functions:
scipy.optimize on eq. (5) plus unequal l2 penalties (exercise 1), and plain gradient descent
(numpy) with a small learning rate from the exercise's start (exercise 2).
"""

import numpy as np
import pytest
from scipy import optimize

from scvi_edu.exercises import (
    EXERCISE_CH1_PENALTIES,
    EXERCISE_CH1_START,
    check_exercise_ch1_endpoint,
    check_exercise_ch1_penalties,
)

X = np.array(
    [[v, 2 * v] for v in (-1.5, -0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5, 1.0)], dtype=np.float64
)  # eq. (3), typed independently of the package


def _penalised_minimiser(lam_a, lam_b):
    def loss(p):
        z = X @ p[:2]
        rec = np.mean(np.sum((X - z[:, None] * p[None, 2:]) ** 2, axis=1))
        return rec + lam_a * p[:2] @ p[:2] + lam_b * p[2:] @ p[2:]

    best = min(
        (
            optimize.minimize(loss, x0, method="BFGS", options={"gtol": 1e-12})
            for x0 in np.random.default_rng(0).normal(size=(8, 4))
        ),
        key=lambda r: r.fun,
    )
    return best.x


def test_penalties_right_and_wrong():
    p = _penalised_minimiser(EXERCISE_CH1_PENALTIES["lam_a"], EXERCISE_CH1_PENALTIES["lam_b"])
    ratio, gain = p[0] / p[2], 5 * p[0] * p[2]  # x~ = b (a . x) = 5 a1 b1 x on the line
    check_exercise_ch1_penalties(ratio, gain)
    with pytest.raises(AssertionError, match="equal weights"):
        check_exercise_ch1_penalties(1.0, gain)  # the equal-penalty balance a1 = b1
    with pytest.raises(AssertionError, match="inverted"):
        check_exercise_ch1_penalties(1 / ratio, gain)
    with pytest.raises(AssertionError, match="arithmetic mean"):
        check_exercise_ch1_penalties(ratio, 1 - 0.5 / (5 * np.mean(X[:, 0] ** 2)))
    with pytest.raises(AssertionError):
        check_exercise_ch1_penalties(ratio, gain + 0.01)
    with pytest.raises(ValueError):
        check_exercise_ch1_penalties(float("nan"), gain)


def test_endpoint_right_and_wrong():
    # plain gradient descent on eq. (5), small steps (the flow's end point to ~1e-3)
    p = np.array(EXERCISE_CH1_START, dtype=np.float64)
    for _ in range(10000):
        z = X @ p[:2]
        r = z[:, None] * p[None, 2:] - X
        grad_a = 2 * np.mean((r @ p[2:])[:, None] * X, axis=0)
        grad_b = 2 * np.mean(r * z[:, None], axis=0)
        p = p - 0.005 * np.concatenate([grad_a, grad_b])
    end = p
    z = X @ end[:2]
    assert np.mean(np.sum((z[:, None] * end[None, 2:] - X) ** 2, axis=1)) < 1e-12
    check_exercise_ch1_endpoint(end)
    s = end[0] + 2 * end[1]
    with pytest.raises(AssertionError, match="not a point of"):
        check_exercise_ch1_endpoint(end + np.array([0, 0, 0.05, 0]))
    with pytest.raises(AssertionError, match=r"a \. \(2, -1\)"):
        check_exercise_ch1_endpoint([s, 0.0, 1 / s, 2 / s])  # on (14), a . (2, -1) changed
    # on (14) with a . (2, -1) right, but a different s: conserving only one quantity
    p = 2 * EXERCISE_CH1_START[0] - EXERCISE_CH1_START[1]
    s2 = s * 1.2
    a = (s2 * np.array([1.0, 2.0]) + p * np.array([2.0, -1.0])) / 5
    with pytest.raises(AssertionError, match="conserve"):
        check_exercise_ch1_endpoint([a[0], a[1], 1 / s2, 2 / s2])
    with pytest.raises(ValueError):
        check_exercise_ch1_endpoint([1.0, 2.0])
