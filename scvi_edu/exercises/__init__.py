"""Check functions of the chapters' exercises, one module per chapter.

A reader calls ``check_...(answer)``: it returns quietly when the answer is right and raises
``AssertionError`` with a hint when it is wrong (naming the likely mistake where it can). Each
check is tested with a right and a wrong answer in ``tests/test_exercises*.py``.
"""

from .chapter4 import EXERCISE_CH4, check_cell_elbo, check_warmup_optimum
from .chapter5 import EXERCISE_CH5, check_exercise_ch5
from .chapter6 import EXERCISE_CH6, check_zero_probability

__all__ = [
    "EXERCISE_CH4",
    "EXERCISE_CH5",
    "EXERCISE_CH6",
    "check_cell_elbo",
    "check_exercise_ch5",
    "check_warmup_optimum",
    "check_zero_probability",
]
