"""The equation ledger: every numbered equation (1)-(70) of the tutorial, with a computed verdict.

Each :class:`Entry` records what the tutorial prints, a verdict and, where the print is not right,
the corrected statement. Its ``check`` *computes* the verdict with sympy or numerics (solving,
integrating, differentiating, evaluating) and returns it; a test asserts that the computed verdict
equals the recorded one, so a ledger entry can never drift from the mathematics.

Verdicts
--------
``ok``
    the printed statement is proved.
``slip``
    the printed statement is false as printed, but an obvious reading of it (a typo, a dropped
    factor that the next line restores) is proved and nothing downstream depends on the slip.
``wrong``
    the printed statement is false and no typographic reading repairs it; the correction is proved.

Severity tiers
--------------
Every entry that is not ``ok`` also carries a ``tier``: what the mistake costs a reader who uses
the tutorial (:data:`TIERS`, most serious first).

``breaks computation``
    a printed formula that gives wrong numbers if it is used. Such an entry has the verdict
    ``wrong`` and a ``consequence``: a function returning the number the printed formula gives
    and the number the correct one gives, at one concrete input; the test asserts they differ.
``wrong statement``
    a false claim of the prose ("cannot be solved", "gamma ~ 1"): nothing is computed from it,
    but a reader who believes it learns something false. Verdict ``wrong``, a prose label.
``slip``
    a typo, a sign ambiguity or an approximate statement (an imprecision) with an obvious reading
    that is proved: exactly the verdict ``slip``.

Use :func:`classify` inside a check: it turns the two computed facts into the verdict.
Chapters register their entries in the modules listed in ``_CHAPTER_MODULES``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

VERDICTS = ("ok", "slip", "wrong")
TIERS = ("breaks computation", "wrong statement", "slip")
# the tiers each verdict allows ("" = no tier: the statement is proved)
TIERS_OF_VERDICT = {"ok": ("",), "slip": ("slip",), "wrong": TIERS[:2]}

# One module per chapter, each defining ``ENTRIES: list[Entry]``.
_CHAPTER_MODULES = (
    "derivations.ledger_autoencoder",  # (1)-(28)
    "derivations.ledger_vae",  # (29)-(54)
    "derivations.ledger_scvi",  # (55)-(70) and the Fig. 3 softmax
)


@dataclass(frozen=True)
class Entry:
    """One equation (or one unnumbered claim) of the tutorial.

    label: ``"(25)"`` for a numbered equation, ``"text after (14)"`` (any text without a bare
    ``(n)`` pattern at the start) for a claim of the prose.
    """

    label: str
    topic: str
    printed: str  # what the tutorial prints (LaTeX or words)
    verdict: str  # "ok" | "slip" | "wrong"
    correction: str  # corrected statement (LaTeX); "" when the verdict is "ok"
    how: str  # how check() verifies it, one sentence
    check: Callable[[], str]  # computes and returns the verdict
    demo: str = ""  # for "wrong": what goes wrong if the printed formula is used
    tier: str = ""  # one of TIERS for a non-ok entry; a "slip" verdict gets the tier "slip"
    # for "breaks computation": () -> (value of the printed formula, value of the correct one)
    consequence: Callable[[], tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"{self.label}: verdict {self.verdict!r} not in {VERDICTS}")
        if self.verdict != "ok" and not self.correction:
            raise ValueError(f"{self.label}: a {self.verdict!r} entry needs a correction")
        if self.verdict == "slip" and not self.tier:
            object.__setattr__(self, "tier", "slip")  # the only tier a slip can have
        if self.tier not in TIERS_OF_VERDICT[self.verdict]:
            allowed = TIERS_OF_VERDICT[self.verdict]
            raise ValueError(
                f"{self.label}: tier {self.tier!r} does not fit the verdict {self.verdict!r}"
                f" (allowed: {allowed})"
            )
        if (self.tier == "breaks computation") != (self.consequence is not None):
            raise ValueError(
                f"{self.label}: a 'breaks computation' entry, and only one, needs a consequence"
            )

    @property
    def number(self) -> int | None:
        """The equation number for ``"(n)"`` labels, else ``None`` (a claim of the prose)."""
        m = re.fullmatch(r"\((\d+)\)", self.label)
        return int(m.group(1)) if m else None


def classify(printed_holds: bool, reading_holds: bool = False) -> str:
    """Verdict from two computed facts.

    printed_holds: the statement as printed is proved true.
    reading_holds: the obvious typographic reading is proved true (only consulted when the
    printed statement is false); leave False for a mathematical error.
    """
    if bool(printed_holds):
        return "ok"
    return "slip" if bool(reading_holds) else "wrong"


def all_entries() -> list[Entry]:
    """Every entry of every chapter, in tutorial order."""
    entries: list[Entry] = []
    for name in _CHAPTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # a chapter not written yet
            if err.name != name:
                raise
            continue
        entries.extend(module.ENTRIES)
    return entries


def by_label(label: str) -> Entry:
    """The entry with this label; ``ValueError`` if there is none."""
    for entry in all_entries():
        if entry.label == label:
            return entry
    raise ValueError(f"no ledger entry labelled {label!r}")
