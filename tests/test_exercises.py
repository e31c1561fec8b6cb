"""check_exercise_ch5 accepts the right answer (computed independently) and rejects wrong ones."""

import numpy as np
import pytest
from scipy import stats

from scvi_edu.exercises import EXERCISE_CH5, check_exercise_ch5


def _right() -> float:
    m, s, rho = EXERCISE_CH5["ql_loc"], EXERCISE_CH5["ql_scale"], EXERCISE_CH5["rho"]
    # scipy's log-normal: shape s, scale exp(m)
    return rho * stats.lognorm(s, scale=np.exp(m)).mean()


def test_right_answer_passes():
    assert check_exercise_ch5(_right()) is None  # a wrong answer raises AssertionError


def test_monte_carlo_answer_passes():
    m, s, rho = EXERCISE_CH5["ql_loc"], EXERCISE_CH5["ql_scale"], EXERCISE_CH5["rho"]
    rng = np.random.default_rng(0)
    draws = np.exp(rng.normal(m, s, size=4_000_000))
    assert check_exercise_ch5(rho * draws.mean()) is None  # MC error ~ 0.03% < 0.1% tolerance


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (EXERCISE_CH5["rho"] * EXERCISE_CH5["ql_loc"], "exponentiate"),
        (EXERCISE_CH5["rho"] * np.exp(EXERCISE_CH5["ql_loc"]), "median"),
        (1e4 * EXERCISE_CH5["rho"], "not E_q"),
        (float("nan"), "finite"),
    ],
)
def test_wrong_answers_fail(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        check_exercise_ch5(wrong)
