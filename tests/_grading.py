"""``failure(check, ...)``: a check function's verdict as a value, so a test asserts it visibly.

The checks of the exercises and the graders of the assignments return quietly on a right answer
and raise ``AssertionError`` naming the mistake on a wrong one (that is what a reader sees). A
test of a right answer writes ``assert failure(check, answer) is None``: on failure pytest shows
the check's message.
"""

from __future__ import annotations

from collections.abc import Callable


def failure(check: Callable[..., object], *args, **kwargs) -> str | None:
    """The message with which ``check`` rejects its arguments, or None when it accepts them."""
    try:
        check(*args, **kwargs)
    except AssertionError as err:
        return str(err)
    return None
