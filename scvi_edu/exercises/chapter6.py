"""Chapter 6 exercise checks (raise ``AssertionError`` with a hint if wrong).

``check_zero_probability``: the probability of a zero count under the scVI model (55). With
h ~ Bernoulli(sigmoid(f_h)) the count is kept (x = y) when h = 1 and is 0 when h = 0, so

    P(x = 0) = sigmoid(-f_h) + sigmoid(f_h) * NB(0 | mu, theta),
    NB(0 | mu, theta) = (theta / (theta + mu)) ** theta,        mu = l * rho,

the corrected first line of (58). The printed (58) swaps the two weights.
"""

from __future__ import annotations

import math

__all__ = ["EXERCISE_CH6", "check_zero_probability"]

# mean l * rho, dispersion theta, keep logit f_h: the numbers of the chapter 6 exercise
EXERCISE_CH6 = {"mu": 6.0, "theta": 1.7, "f_h": 0.8}


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


def check_zero_probability(answer: float) -> None:
    """Check P(x = 0) under (55) for the numbers of ``EXERCISE_CH6`` (relative tolerance 1e-4)."""
    mu, theta, f = EXERCISE_CH6["mu"], EXERCISE_CH6["theta"], EXERCISE_CH6["f_h"]
    answer = float(answer)
    if not (math.isfinite(answer) and 0.0 <= answer <= 1.0):
        raise AssertionError(f"a probability lies in [0, 1], got {answer}")
    nb0 = (theta / (theta + mu)) ** theta
    expected = _sigmoid(-f) + _sigmoid(f) * nb0
    if math.isclose(answer, _sigmoid(f) + _sigmoid(-f) * nb0, rel_tol=1e-4):
        raise AssertionError(
            "that is the printed (58): the weights are swapped. sigmoid(f_h) is the probability "
            "of KEEPING the count, so the dropout weight is sigmoid(-f_h)"
        )
    if math.isclose(answer, nb0, rel_tol=1e-4):
        raise AssertionError("that is NB(0) alone: a zero also comes from dropout (h = 0)")
    assert math.isclose(answer, expected, rel_tol=1e-4), (
        f"{answer:.4g} is not P(x=0): add the dropout probability and the kept-but-zero one"
    )
