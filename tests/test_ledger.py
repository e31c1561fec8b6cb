"""The equation ledger covers (1)-(70) exactly once, and every check computes its verdict."""

import math

import pytest

from derivations.ledger import TIERS, TIERS_OF_VERDICT, VERDICTS, Entry, all_entries

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


# --- severity tiers ---------------------------------------------------------------------------

NON_OK = [e for e in ENTRIES if e.verdict != "ok"]


@pytest.mark.parametrize("entry", NON_OK, ids=[e.label for e in NON_OK])
def test_every_non_ok_entry_has_a_tier_that_fits_its_verdict(entry):
    assert entry.tier in TIERS_OF_VERDICT[entry.verdict]
    assert entry.tier in TIERS
    # a slip is exactly a typo with an obvious reading; the two others are verdict "wrong"
    assert (entry.tier == "slip") == (entry.verdict == "slip")


def test_ok_entries_have_no_tier():
    assert {e.tier for e in ENTRIES if e.verdict == "ok"} == {""}


BREAKS = [e for e in ENTRIES if e.tier == "breaks computation"]


@pytest.mark.parametrize("entry", BREAKS, ids=[e.label for e in BREAKS])
def test_a_formula_that_breaks_computation_gives_different_numbers(entry):
    printed, correct = entry.consequence()
    assert math.isfinite(correct)
    # not a rounding difference: at least 10 % of the correct value (or 0.1 absolute)
    assert abs(printed - correct) > max(0.1 * abs(correct), 0.1), (entry.label, printed, correct)


def test_the_tiers_named_in_the_issue_of_consequence():
    breaks = {e.label for e in BREAKS}
    assert {"(25)", "(26)", "(58)", "(59)", "(62)", "(69)"} <= breaks
    assert any(label.startswith("Fig. 3") for label in breaks)
    statements = {e.label for e in ENTRIES if e.tier == "wrong statement"}
    assert "text after (23): gamma ~ 1" in statements
    assert {"text after (46): unsolvable", "text after (54): unsolvable"} <= statements


def test_a_wrong_statement_is_a_claim_of_the_prose():
    for e in ENTRIES:
        if e.tier == "wrong statement":
            assert e.number is None, e.label  # not a numbered formula
            assert e.consequence is None


def test_the_prose_slips_after_44_are_in_the_ledger():
    labels = {e.label: e for e in ENTRIES}
    for label in ("text after (44): one more term", "text after (44): encoder"):
        assert labels[label].verdict == "slip" and labels[label].tier == "slip"


def test_entry_refuses_a_tier_that_does_not_fit():
    check = lambda: "wrong"  # noqa: E731
    with pytest.raises(ValueError, match="tier"):
        Entry("(1)", "t", "p", "wrong", "c", "h", check)  # a wrong entry needs a tier
    with pytest.raises(ValueError, match="tier"):
        Entry("(1)", "t", "p", "slip", "c", "h", check, tier="wrong statement")
    with pytest.raises(ValueError, match="tier"):
        Entry("(1)", "t", "p", "ok", "", "h", check, tier="slip")
    with pytest.raises(ValueError, match="consequence"):
        Entry("(1)", "t", "p", "wrong", "c", "h", check, tier="breaks computation")
    with pytest.raises(ValueError, match="consequence"):
        Entry("(1)", "t", "p", "wrong", "c", "h", check, tier="wrong statement",
              consequence=lambda: (1.0, 2.0))  # fmt: skip
    assert Entry("(1)", "t", "p", "slip", "c", "h", check).tier == "slip"
