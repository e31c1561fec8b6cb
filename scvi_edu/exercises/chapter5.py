"""Chapter 5 exercise checks (raise ``AssertionError`` with a hint if wrong).

Three exercises: the expected count under the library posterior (``check_exercise_ch5``),
the lag of BatchNorm's running statistics (``check_batchnorm_lag``) and the zero probability
of the negative binomial (``check_nb_zero_probability``).

Chapter 5 (``check_exercise_ch5``): with the latent library size, ``library`` is *log* l and
q(log l | x) = N(ql_loc, ql_scale**2) (eq. (61)), so l is log-normal under the posterior. The
expected count of gene g at the cell's own depth, averaged over the library posterior (for a
fixed rho = f_w(z, s)), is

    E_q[l rho_g] = rho_g E_q[l] = rho_g exp(ql_loc + ql_scale**2 / 2),

not ``rho_g * ql_loc`` (the log library used as a library) and not ``rho_g * exp(ql_loc)``
(the median of l, which is below its mean).
"""

from __future__ import annotations

import math

__all__ = [
    "EXERCISE_CH5",
    "EXERCISE_CH5_BATCHNORM",
    "EXERCISE_CH5_ZEROS",
    "check_batchnorm_lag",
    "check_exercise_ch5",
    "check_nb_zero_probability",
]

# The numbers of the chapter 5 exercise: one cell, one gene.
EXERCISE_CH5 = {"ql_loc": 7.6, "ql_scale": 0.5, "rho": 0.012}


def check_exercise_ch5(answer: float) -> None:
    """Check E_q[l rho_g] for the numbers of ``EXERCISE_CH5`` (relative tolerance 1e-3)."""
    m, s, rho = EXERCISE_CH5["ql_loc"], EXERCISE_CH5["ql_scale"], EXERCISE_CH5["rho"]
    answer = float(answer)
    if not math.isfinite(answer):
        raise AssertionError(f"the answer must be a finite number, got {answer}")
    expected = rho * math.exp(m + s**2 / 2)
    if math.isclose(answer, rho * m, rel_tol=1e-3):
        raise AssertionError("ql_loc is the mean of log l, not a library size: exponentiate")
    if math.isclose(answer, rho * math.exp(m), rel_tol=1e-3):
        raise AssertionError(
            "exp(ql_loc) is the median of the log-normal l; its mean is larger (variance term)"
        )
    assert math.isclose(answer, expected, rel_tol=1e-3), (
        f"{answer:.4g} is not E_q[l] * rho: l is log-normal with log-mean {m} and log-sd {s}"
    )


# ---------------------------------------------------------------------------------------------
# Exercise 2: the lag of BatchNorm's running statistics.
#
# A running statistic is updated at every training step as r <- (1 - m) r + m * b_t with
# momentum m. After T steps the initial value keeps the weight (1 - m)**T; it falls below a
# fraction f after ceil(log f / log(1 - m)) steps.
EXERCISE_CH5_BATCHNORM = {"momentum": 0.01, "steps": 160, "fraction": 0.01}


def check_batchnorm_lag(weight_after_steps: float, steps_below_fraction: int) -> None:
    """Check (1 - m)**T and the first T with (1 - m)**T < f for ``EXERCISE_CH5_BATCHNORM``."""
    m = EXERCISE_CH5_BATCHNORM["momentum"]
    steps = EXERCISE_CH5_BATCHNORM["steps"]
    f = EXERCISE_CH5_BATCHNORM["fraction"]
    weight = float(weight_after_steps)
    expected = (1 - m) ** steps
    if math.isclose(weight, m * steps, rel_tol=1e-3) or math.isclose(
        weight, 1 - m * steps, rel_tol=1e-3
    ):
        raise AssertionError("the update is multiplicative: each step multiplies the old value")
    if not math.isfinite(weight) or not 0 <= weight <= 1:
        raise AssertionError(f"a weight is a number in [0, 1], got {weight_after_steps}")
    assert math.isclose(weight, expected, rel_tol=1e-3), (
        f"{weight:.4g} is not the weight left on the initial value after {steps} steps"
    )
    if int(steps_below_fraction) != steps_below_fraction:
        raise AssertionError(f"a number of steps is an integer, got {steps_below_fraction}")
    t_needed = math.ceil(math.log(f) / math.log(1 - m))
    if steps_below_fraction == round(1 / m):
        raise AssertionError("1/momentum is the time constant (weight 1/e), not the 1 % time")
    assert steps_below_fraction == t_needed, (
        f"after {steps_below_fraction} steps the weight is {(1 - m) ** steps_below_fraction:.4g}"
        f"; find the first T with (1 - m)**T < {f}"
    )


# ---------------------------------------------------------------------------------------------
# Exercise 3: how many zeros an NB makes by itself.
#
# NB(mu, theta) puts P(X = 0) = (theta / (theta + mu))**theta on zero (eq. (57) at x = 0),
# more than a Poisson of the same mean, exp(-mu). A ZINB with zero probability pi adds
# pi * (1 - P_NB(0)).
EXERCISE_CH5_ZEROS = {"mu": 0.8, "theta": 0.5}


def check_nb_zero_probability(answer: float) -> None:
    """Check P(X = 0) for X ~ NB(mu, theta) with the numbers of ``EXERCISE_CH5_ZEROS``."""
    mu, theta = EXERCISE_CH5_ZEROS["mu"], EXERCISE_CH5_ZEROS["theta"]
    answer = float(answer)
    if not math.isfinite(answer) or not 0 <= answer <= 1:
        raise AssertionError(f"a probability is a number in [0, 1], got {answer}")
    expected = (theta / (theta + mu)) ** theta
    if math.isclose(answer, math.exp(-mu), rel_tol=1e-3):
        raise AssertionError("exp(-mu) is the Poisson's zero probability; the NB has more zeros")
    if math.isclose(answer, (mu / (theta + mu)) ** theta, rel_tol=1e-3):
        raise AssertionError("in P(X = 0) the success ratio is theta / (theta + mu), not mu / ...")
    assert math.isclose(answer, expected, rel_tol=1e-3), (
        f"{answer:.4g} is not P(X = 0) of NB(mu={mu}, theta={theta}): set x = 0 in eq. (57)"
    )
