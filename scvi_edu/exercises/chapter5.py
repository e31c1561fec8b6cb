"""Chapter 5 exercise checks (raise ``AssertionError`` with a hint if wrong).

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

__all__ = ["EXERCISE_CH5", "check_exercise_ch5"]

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
