"""Check functions of the chapters' exercises, one module per chapter.

A reader calls ``check_...(answer)``: it returns quietly when the answer is right and raises
``AssertionError`` with a hint when it is wrong (naming the likely mistake where it can). Each
check is tested with a right and a wrong answer in ``tests/test_exercises*.py``.
"""

from .chapter1 import (
    EXERCISE_CH1_PENALTIES,
    EXERCISE_CH1_START,
    check_exercise_ch1_endpoint,
    check_exercise_ch1_penalties,
)
from .chapter2 import (
    EXERCISE_CH2_BETA,
    EXERCISE_CH2_SADDLE,
    check_beta_vae,
    check_noise_saddle_curvature,
)
from .chapter5 import EXERCISE_CH5, check_exercise_ch5

__all__ = [
    "EXERCISE_CH1_PENALTIES",
    "EXERCISE_CH1_START",
    "EXERCISE_CH2_BETA",
    "EXERCISE_CH2_SADDLE",
    "EXERCISE_CH5",
    "check_beta_vae",
    "check_exercise_ch1_endpoint",
    "check_exercise_ch1_penalties",
    "check_exercise_ch5",
    "check_noise_saddle_curvature",
]
