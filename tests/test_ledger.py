"""The equation ledger covers (1)-(70) exactly once, and every check computes its verdict."""

import pytest

from derivations.ledger import VERDICTS, all_entries

ENTRIES = all_entries()


def test_every_numbered_equation_exactly_once():
    numbers = [e.number for e in ENTRIES if e.number is not None]
    missing = sorted(set(range(1, 71)) - set(numbers))
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    extra = sorted(set(numbers) - set(range(1, 71)))
    assert not missing, f"equations missing from the ledger: {missing}"
    assert not repeated, f"equations in the ledger more than once: {repeated}"
    assert not extra, f"the tutorial has no equations {extra}"


def test_labels_are_unique():
    labels = [e.label for e in ENTRIES]
    assert len(labels) == len(set(labels))


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.label for e in ENTRIES])
def test_check_computes_the_recorded_verdict(entry):
    computed = entry.check()
    assert computed in VERDICTS, f"{entry.label}: check() returned {computed!r}, not a verdict"
    assert computed == entry.verdict, (
        f"ledger {entry.label} ({entry.topic}): recorded {entry.verdict!r}, computed {computed!r}"
    )
