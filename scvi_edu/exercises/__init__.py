"""Check functions of the chapters' exercises, one module per chapter.

A reader calls ``check_...(answer)``: it returns quietly when the answer is right and raises
``AssertionError`` with a hint when it is wrong (naming the likely mistake where it can). Each
check is tested with a right and a wrong answer in ``tests/test_exercises*.py``.
"""

# One module per chapter; each lists its checks in its own __all__.
from . import chapter1, chapter2, chapter3, chapter4, chapter5, chapter6
from .chapter1 import *  # noqa: F403
from .chapter2 import *  # noqa: F403
from .chapter3 import *  # noqa: F403
from .chapter4 import *  # noqa: F403
from .chapter5 import *  # noqa: F403
from .chapter6 import *  # noqa: F403

__all__ = [
    *chapter1.__all__,
    *chapter2.__all__,
    *chapter3.__all__,
    *chapter4.__all__,
    *chapter5.__all__,
    *chapter6.__all__,
]
