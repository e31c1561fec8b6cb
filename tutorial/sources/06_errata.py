# %% [markdown]
# # 6 Errata: every equation accounted for
#
# The tutorial numbers its equations (1)–(70). Chapters 1–4 re-derived each of them; every one has
# an entry in the **equation ledger** (`derivations/ledger.py`): what the tutorial prints, a
# verdict, the corrected statement, and a `check()` that *computes* the verdict with sympy or
# numerics — it solves, integrates, differentiates or evaluates; it never compares strings.
#
# | verdict | meaning |
# |---|---|
# | `ok` | the printed statement is proved |
# | `slip` | false as printed; an obvious typographic reading is proved, nothing depends on it |
# | `wrong` | a mathematical error; the correction is proved inside the check |
#
# This chapter holds no verdict of its own: the tables below are generated from the ledger
# (`derivations/errata.py`), and every check is run again here, live.

# %%
import random
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, "..")  # derivations/ (the sympy side) is read from the checkout

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from derivations import errata
from derivations.ledger import VERDICTS, all_entries

torch.manual_seed(0)
rng = np.random.default_rng(0)
random.seed(0)
torch.set_num_threads(1)
# %matplotlib inline

# %% [markdown]
# ## The ledger at a glance
#
# How many entries have each verdict, and which numbered equations the ledger covers (the test
# `tests/test_ledger.py` requires each of (1)–(70) exactly once).

# %%
entries = all_entries()
counts = errata.verdict_counts(entries)
display(Markdown(errata.counts_markdown(entries)))

covered = {e.number for e in entries if e.number is not None}
missing = [n for n in range(1, 71) if n not in covered]
print(f"numbered equations in the ledger: {len(covered)} of 70")
print(f"claims of the prose: {counts['total'] - sum(e.number is not None for e in entries)}")
if missing:
    print("not yet in the ledger:", ", ".join(f"({n})" for n in missing))
assert counts["ok"] + counts["slip"] + counts["wrong"] == counts["total"]

# %% [markdown]
# One square per numbered equation, coloured by verdict (grey: not in the ledger).

# %%
colours = {"ok": "#4c9a2a", "slip": "#e69f00", "wrong": "#c0392b", None: "#cccccc"}
verdict_of = {e.number: e.verdict for e in entries if e.number is not None}
fig, ax = plt.subplots(figsize=(9, 1.8))
for n in range(1, 71):
    row, col = divmod(n - 1, 35)
    ax.add_patch(plt.Rectangle((col, -row), 0.9, 0.9, color=colours[verdict_of.get(n)]))
    ax.text(col + 0.45, -row + 0.45, str(n), ha="center", va="center", fontsize=6)
for v in (*VERDICTS, None):
    ax.scatter([], [], marker="s", color=colours[v], label=v or "missing")
ax.set_xlim(0, 35)
ax.set_ylim(-1, 1)
ax.set_axis_off()
ax.legend(ncol=4, loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False)
ax.set_title("Equations (1)-(70) of the tutorial, by verdict")
plt.show()

# %% [markdown]
# ## The real errors, re-proved live
#
# Each entry's `check()` recomputes its verdict; it must equal the recorded one. A `wrong` entry's
# check also proves its correction (an `assert` inside it), so a correction that stopped holding
# would fail here. The page re-runs the checks of the `wrong` entries; `tests/test_ledger.py`
# runs all of them (a minute of sympy, too long for a page).

# %%
wrong = [e for e in entries if e.verdict == "wrong"]
results = errata.recheck(wrong)
disagree = [(label, rec, comp) for label, rec, comp in results if rec != comp]
assert not disagree, disagree
print(f"{len(results)} wrong entries re-checked: each computed verdict is 'wrong' as recorded")

# %% [markdown]
# ## The errata
#
# Every entry whose verdict is not `ok`, in the tutorial's order (a claim of the prose follows the
# equation it names).

# %% tags=["full_width"]
table = errata.errata_table(entries)
assert len(table) == counts["slip"] + counts["wrong"]
display(Markdown(errata.errata_markdown(entries)))

# %% [markdown]
# How each of them is verified (the entry's `check()` in `derivations/ledger_*.py`):

# %%
display(Markdown(errata.verification_markdown(entries)))

# %% [markdown]
# ## What goes wrong with the printed formulas
#
# For each `wrong` entry: what happens if the printed formula is used, and, where its chapter
# offers one, a short computed demonstration.

# %%
demos = errata.demonstrations()
wrong = [e for e in errata.errata_entries(entries) if e.verdict == "wrong"]
for e in wrong:
    display(Markdown(f"**{e.label}** ({e.topic}). {e.demo}"))
    if e.label in demos:
        print(demos[e.label]())
if not wrong:
    print("no wrong entry in the ledger")

# %% [markdown]
# ## Exercise
#
# Using `all_entries()` (each entry has `.number` and `.verdict`), find the smallest equation
# number whose verdict is `wrong` (`None` if there is none), and check your answer.

# %%
wrong_numbers = [e.number for e in all_entries() if e.number and e.verdict == "wrong"]
answer = min(wrong_numbers, default=None)
errata.check_exercise_1(answer)
