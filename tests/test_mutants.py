"""The named tutorial mutants of scripts/mutants.py still apply to the code.

``scripts/mutation_test.py`` (not part of the test run: it copies the repository once per
mutant) checks that each mutant is killed with a message naming its equation. A mutant whose
``find`` text no longer occurs in the code would be reported as not applicable instead, and
the check it stands for would silently disappear when the code is rewritten; this test fails
first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from mutants import MISTAKES  # noqa: E402


@pytest.mark.parametrize("mutant", MISTAKES, ids=[m["name"] for m in MISTAKES])
def test_named_mutant_applies_exactly_once(mutant):
    text = (ROOT / mutant["path"]).read_text()
    count = text.count(mutant["find"])
    assert count == 1, (
        f"mutant {mutant['name']} (tutorial {mutant['equation']}): its find text occurs {count} "
        f"times in {mutant['path']}; update scripts/mutants.py to the current code"
    )
    assert mutant["replace"] != mutant["find"]
