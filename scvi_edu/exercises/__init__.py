"""Check functions of the chapters' exercises, one module per chapter.

A reader calls ``check_...(answer)``: it returns quietly when the answer is right and raises
``AssertionError`` with a hint when it is wrong (naming the likely mistake where it can). Each
check is tested with a right and a wrong answer in ``tests/test_exercises.py``.
"""

from .chapter5 import (
    EXERCISE_CH5,
    EXERCISE_CH5_BATCHNORM,
    EXERCISE_CH5_ZEROS,
    check_batchnorm_lag,
    check_exercise_ch5,
    check_nb_zero_probability,
)

__all__ = [
    "EXERCISE_CH5",
    "EXERCISE_CH5_BATCHNORM",
    "EXERCISE_CH5_ZEROS",
    "check_batchnorm_lag",
    "check_exercise_ch5",
    "check_nb_zero_probability",
]
