"""The errata of the tutorial, generated from the equation ledger (:mod:`derivations.ledger`).

Nothing here records a verdict: every row is read from a ledger entry, so the errata chapter
(``tutorial/06_errata.ipynb``) can never disagree with the ledger, and the ledger's checks are
what prove it. The order is the tutorial's: numbered equations by number, a claim of the prose
next to the equation it names (``"text after (14)"`` after it, ``"text before (50)"`` before).

How a field is shown in markdown (:func:`errata_markdown`): text that already holds ``$`` is
markdown with its own math; LaTeX without delimiters (``\\hat W = \\dots``) is wrapped in
``$...$``; prose is shown as it is. A chapter module may offer a short demonstration of what goes
wrong with a printed formula: ``DEMOS: dict[str, Callable[[], str]]`` maps a label to a function
returning deterministic text (numbers rounded); :func:`demonstrations` collects them.

Every non-``ok`` entry carries a severity tier (``breaks computation``, ``wrong statement``,
``slip``; see :mod:`derivations.ledger`): :func:`by_tier` orders the errata most serious first,
and :func:`display_math` shows a formula one equation per line (wide ones as the ledger
breaks them by hand).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable

import pandas as pd
import sympy as sp

from derivations import ledger
from derivations.ledger import TIERS, VERDICTS, Entry

COLUMNS = ("equation", "topic", "printed", "verdict", "tier", "correction", "how")
HEADERS = ("Equation", "Tier", "The tutorial prints, and the correction")


def _entries(entries: Iterable[Entry] | None) -> list[Entry]:
    return ledger.all_entries() if entries is None else list(entries)


def sort_key(label: str) -> tuple[float, int, str]:
    """Tutorial order: ``"(25)"`` by number; a prose claim next to the first equation it names,
    before it for ``"text before (n)..."``, after it otherwise."""
    m = re.fullmatch(r"\((\d+)\)", label)
    if m:
        return (int(m.group(1)), 0, label)
    m = re.search(r"\((\d+)\)", label)
    side = -1 if label.lower().startswith("text before") else 1
    return (int(m.group(1)) if m else math.inf, side, label)


def errata_entries(entries: Iterable[Entry] | None = None) -> list[Entry]:
    """Every entry whose verdict is not ``ok`` (default: the whole ledger), in tutorial order."""
    return sorted(
        (e for e in _entries(entries) if e.verdict != "ok"), key=lambda e: sort_key(e.label)
    )


def by_tier(entries: Iterable[Entry] | None = None) -> list[Entry]:
    """The non-``ok`` entries, most serious tier first (:data:`TIERS`), tutorial order within."""
    return sorted(errata_entries(entries), key=lambda e: TIERS.index(e.tier))


def errata_table(entries: Iterable[Entry] | None = None) -> pd.DataFrame:
    """One row per ``slip`` or ``wrong`` entry (columns: :data:`COLUMNS`), tutorial order."""
    rows = [
        (e.label, e.topic, e.printed, e.verdict, e.tier, e.correction, e.how)
        for e in errata_entries(entries)
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def verdict_counts(entries: Iterable[Entry] | None = None) -> dict[str, int]:
    """How many entries have each verdict, plus ``total`` and ``numbered`` (distinct (1)-(70))."""
    entries = _entries(entries)
    counts = {v: sum(e.verdict == v for e in entries) for v in VERDICTS}
    counts["total"] = len(entries)
    counts["numbered"] = len({e.number for e in entries if e.number is not None})
    return counts


def tier_counts(entries: Iterable[Entry] | None = None) -> dict[str, int]:
    """How many non-``ok`` entries each tier holds (every tier present, possibly 0)."""
    entries = _entries(entries)
    return {t: sum(e.tier == t for e in entries) for t in TIERS}


def recheck(entries: Iterable[Entry] | None = None) -> list[tuple[str, str, str]]:
    """Run every check: ``(label, recorded, computed)`` verdicts per entry, tutorial order."""
    ordered = sorted(_entries(entries), key=lambda e: sort_key(e.label))
    return [(e.label, e.verdict, e.check()) for e in ordered]


def demonstrations() -> dict[str, Callable[[], str]]:
    """The ``DEMOS`` that chapter ledger modules offer, label -> function returning text."""
    demos: dict[str, Callable[[], str]] = {}
    for name in ledger._CHAPTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # a chapter not written yet
            if err.name != name:
                raise
            continue
        demos.update(getattr(module, "DEMOS", {}))
    return demos


# --- markdown --------------------------------------------------------------------------------

_COMMAND = re.compile(r"\\[A-Za-z]+(\{[^{}]*\})?")
_PROSE = re.compile(r"[A-Za-z]{2,}[,.;:]?\s+[A-Za-z]{2,}[,.;:]?\s+[A-Za-z]{2,}")


def is_latex(text: str) -> bool:
    """True for bare LaTeX (a command, ``^``, ``_`` or ``=``, and not three words of prose)."""
    if "$" in text or not re.search(r"[\\^_=]", text):
        return False
    return not _PROSE.search(_COMMAND.sub(" ", text))


def cell(text: str, maybe_latex: bool = True) -> str:
    """One field as the content of a markdown table cell (bare LaTeX wrapped, pipes escaped)."""
    text = " ".join(text.split())  # a table row is one line
    if not text:
        return ""
    if maybe_latex and is_latex(text):
        text = f"${text}$"
    elif "$" not in text:
        text = text.replace("<", "&lt;")
    # A table splits its row on '|' before any inline parsing, math included: escape every pipe
    # (the parser drops one backslash, so LaTeX's own '\|' survives as '\|').
    return text.replace("|", "\\|")


def errata_markdown(entries: Iterable[Entry] | None = None) -> str:
    """The errata as a markdown table, one row per non-``ok`` entry; a sentence when none.

    Three columns (:data:`HEADERS`), narrow enough for a book page: the label over the topic,
    the verdict, and what the tutorial prints over its correction. How each is verified is
    :func:`verification_markdown`.
    """
    table = errata_table(entries)
    if table.empty:
        return "The ledger holds no `slip` or `wrong` entry."
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in table.itertuples(index=False):
        equation = f"**{cell(row.equation, False)}**<br>{cell(row.topic, False)}"
        statements = f"printed: {cell(row.printed)}<br>correct: {cell(row.correction)}"
        lines.append(f"| {equation} | **{row.tier}** | {statements} |")
    return "\n".join(lines)


def entries_markdown(entries: Iterable[Entry] | None = None) -> str:
    """The non-``ok`` entries as blocks, one after another (for a narrow page, where a table's
    inline math cannot wrap): the label, topic and tier, then what the tutorial prints and the
    correction, each as display math broken into lines (:func:`display_math`) when it is LaTeX."""

    def field(text: str) -> str:
        if is_latex(" ".join(text.split())):
            return display_math(text)  # keeps the lines written by hand
        text = " ".join(text.split())
        return text if "$" in text else text.replace("<", "&lt;")

    blocks = [
        f"**{e.label}** ({e.topic}): *{e.tier}*\n\nprinted:\n\n{field(e.printed)}"
        f"\n\ncorrected:\n\n{field(e.correction)}"
        for e in errata_entries(entries)
    ]
    return "\n\n".join(blocks) or "The ledger holds no `slip` or `wrong` entry."


def verification_markdown(entries: Iterable[Entry] | None = None) -> str:
    """How each non-``ok`` entry is verified, as a markdown list in the table's order."""
    items = [f"- **{e.label}** ({e.tier}): {cell(e.how, False)}" for e in errata_entries(entries)]
    return "\n".join(items) or "The ledger holds no `slip` or `wrong` entry."


def counts_markdown(entries: Iterable[Entry] | None = None) -> str:
    """The entries by verdict and severity tier, as a small markdown table."""
    entries = _entries(entries)
    c = verdict_counts(entries)
    lines = ["| Verdict | Tier | Entries |", "|---|---|---|"]
    lines.append(f"| ok | (proved) | {c['ok']} |")
    for t in TIERS:
        n = sum(e.tier == t for e in entries)
        verdict = "slip" if t == "slip" else "wrong"
        lines.append(f"| {verdict} | {t} | {n} |")
    lines.append(f"| **total** | | {c['total']} |")
    return "\n".join(lines)


# --- wide formulas, one line per equation ------------------------------------------------------


def _top_level_splits(latex: str, separators: tuple[str, ...]) -> list[str]:
    """Split at separators that sit outside every {...}, [...], (...) group (``\\{`` is text)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(latex):
        if latex[i] == "\\" and i + 1 < len(latex) and latex[i + 1] in "{}":
            i += 2
            continue
        if latex[i] in "{[(":
            depth += 1
        elif latex[i] in "}])":
            depth -= 1
        elif depth == 0:
            for sep in separators:
                if latex.startswith(sep, i):
                    parts.append(latex[start:i])
                    start = i + len(sep)
                    i = start - 1
                    break
        i += 1
    parts.append(latex[start:])
    return [p.strip() for p in parts if p.strip()]


def _aligned_line(line: str) -> str:
    """One hand-written line of a wide formula, with its alignment point ``&``: a continuation
    (``= ...``, ``\\approx ...``) aligns its sign, a continued sum (``+ ...``, ``- ...``) is
    indented past it, an equation aligns at its first top-level ``=``; a remark starts there."""
    if line.startswith(("=", "\\approx", "\\Rightarrow")):
        return "&" + line
    if line.startswith(("+", "-")):
        return "&\\quad " + line
    mark = "\x00"  # before every "="; only the top-level ones split
    parts = _top_level_splits(line.replace("=", mark + "="), (mark,))
    if len(parts) > 1:
        return (parts[0] + " &" + " ".join(parts[1:])).replace(mark, "")
    return "&" + line


def _guard(line: str) -> str:
    """A line that starts with ``[`` gets ``{}`` first: after ``\\begin{...}`` or ``\\\\`` a
    bracket would be read as an optional argument and the line would vanish."""
    return "{}" + line if line.startswith("[") else line


def display_math(latex: str) -> str:
    """A printed formula as display math, one equation per line.

    A field written on several lines (a newline in the ledger's string) is a wide formula
    broken by hand: its lines are kept as written and aligned at ``=``
    (``\\begin{aligned}``, :func:`_aligned_line`). Otherwise the formula is split at top-level
    ``;\\ ``, ``,\\ `` and ``\\ `` (the ledger's separators between equations and between an
    equation and its remark; never inside a group such as ``\\text{...}``) into centred lines
    (``\\begin{gathered}``). Nothing is broken mechanically inside an equation.
    """
    hand = [" ".join(line.split()) for line in latex.strip().splitlines()]
    hand = [line for line in hand if line]
    if len(hand) > 1:
        body = " \\\\\n".join(_guard(_aligned_line(line)) for line in hand)
        return f"$$\n\\begin{{aligned}}\n{body}\n\\end{{aligned}}\n$$"
    lines = _top_level_splits(" ".join(latex.split()), (";\\ ", ",\\ ", "\\ "))
    body = " \\\\\n".join(_guard(line) for line in lines)
    return f"$$\n\\begin{{gathered}}\n{body}\n\\end{{gathered}}\n$$"


# --- the chapter's symbolic exercise: the printed (69) on a Gaussian toy -------------------------

# the toy: z ~ N(0, 1), x | z ~ N(z, 1), one observation x; q(z) = N(m, s^2)
x_obs, m_q = sp.symbols("x m", real=True)
s_q = sp.Symbol("s", positive=True)


def _expect_q(expr: sp.Expr, zz: sp.Symbol) -> sp.Expr:
    """E over z ~ N(m, s^2) of a polynomial in z (of degree <= 2): z = m + s eps, E eps = 0,
    E eps^2 = 1."""
    eps = sp.Symbol("eps", real=True)
    poly = sp.Poly(sp.expand(expr.subs(zz, m_q + s_q * eps)), eps)
    moments = {0: 1, 1: 0, 2: 1}
    return sp.expand(sum(c * moments[k] for (k,), c in poly.terms()))


def toy_bounds() -> dict[str, sp.Expr]:
    """The toy's log p(x) (x ~ N(0, 2)), its correct bound E_q log p(x|z) - KL(q||p) and the
    printed one (KL added, as in (69)), with the expectations taken over q."""
    zz = sp.Symbol("zz", real=True)
    loglik = -sp.log(2 * sp.pi) / 2 - (x_obs - zz) ** 2 / 2
    logprior = -sp.log(2 * sp.pi) / 2 - zz**2 / 2
    logq = -sp.log(2 * sp.pi * s_q**2) / 2 - (zz - m_q) ** 2 / (2 * s_q**2)
    e_loglik = _expect_q(loglik, zz)
    kl = sp.expand_log(_expect_q(logq - logprior, zz), force=True)
    log_px = -sp.log(4 * sp.pi) / 2 - x_obs**2 / 4
    return {"log_px": log_px, "correct": e_loglik - kl, "printed": e_loglik + kl}


def check_printed_bound(answer: sp.Expr) -> None:
    """Exercise of chapter 6: the printed bound (KL added) of the toy in closed form, as a sympy
    expression in ``x_obs``, ``m_q``, ``s_q``. Raises ``AssertionError`` on a wrong answer."""
    answer = sp.sympify(answer)
    extra = answer.free_symbols - {x_obs, m_q, s_q}
    assert not extra, f"use only the symbols x_obs, m_q, s_q (found {sorted(map(str, extra))})"
    bounds = toy_bounds()
    if sp.simplify(answer - bounds["correct"]) == 0:
        raise AssertionError("that is the correct bound (KL subtracted); (69) ADDS the KL")
    assert sp.simplify(sp.expand_log(answer - bounds["printed"], force=True)) == 0, (
        "not the printed bound: E_q log p(x|z) = -log(2 pi)/2 - ((x - m)^2 + s^2)/2 and "
        "KL(q || p) = (m^2 + s^2 - 1)/2 - log s; add them"
    )
