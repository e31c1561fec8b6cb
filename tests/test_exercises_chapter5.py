"""The chapter 5 exercise checks accept right answers (computed independently), reject wrong."""

import math

import numpy as np
import pytest
from scipy import stats

from scvi_edu.exercises import (
    EXERCISE_CH5,
    EXERCISE_CH5_BATCHNORM,
    EXERCISE_CH5_ZEROS,
    check_batchnorm_lag,
    check_exercise_ch5,
    check_nb_zero_probability,
)


def test_library_posterior_mean_right_and_wrong():
    m, s, rho = EXERCISE_CH5["ql_loc"], EXERCISE_CH5["ql_scale"], EXERCISE_CH5["rho"]
    right = rho * stats.lognorm(s=s, scale=math.exp(m)).mean()  # scipy's log-normal mean
    assert check_exercise_ch5(right) is None
    with pytest.raises(AssertionError, match="median"):
        check_exercise_ch5(rho * math.exp(m))


def _ema_weight(momentum, steps):
    """The weight on the initial value, by running the update r <- (1 - m) r + m b with b = 0."""
    r = 1.0
    for _ in range(steps):
        r = (1 - momentum) * r + momentum * 0.0
    return r


def test_batchnorm_lag_right_and_wrong():
    m, steps, f = (EXERCISE_CH5_BATCHNORM[k] for k in ("momentum", "steps", "fraction"))
    weight = _ema_weight(m, steps)
    assert 0.19 < weight < 0.21  # the "about 20 %" of the chapter
    t = 0
    while _ema_weight(m, t) >= f:
        t += 1
    assert check_batchnorm_lag(weight, t) is None
    with pytest.raises(AssertionError, match="multiplicative"):
        check_batchnorm_lag(1 - m * steps, t)
    with pytest.raises(AssertionError):
        check_batchnorm_lag(weight, t - 1)
    with pytest.raises(AssertionError, match="time constant"):
        check_batchnorm_lag(weight, round(1 / m))


def test_nb_zero_probability_right_and_wrong():
    mu, theta = EXERCISE_CH5_ZEROS["mu"], EXERCISE_CH5_ZEROS["theta"]
    # scipy's nbinom(n, p): n = theta, p = theta / (theta + mu) has mean mu
    right = stats.nbinom(theta, theta / (theta + mu)).pmf(0)
    # and a Gamma-Poisson Monte Carlo agrees with it
    rng = np.random.default_rng(0)
    draws = rng.poisson(rng.gamma(theta, mu / theta, 400_000))
    assert abs((draws == 0).mean() - right) < 5e-3
    assert check_nb_zero_probability(right) is None
    with pytest.raises(AssertionError, match="Poisson"):
        check_nb_zero_probability(stats.poisson(mu).pmf(0))
    with pytest.raises(AssertionError):
        check_nb_zero_probability(right + 0.02)
    with pytest.raises(AssertionError, match="probability"):
        check_nb_zero_probability(1.5)
